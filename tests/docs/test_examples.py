"""Every example in the Get started and Channels pages works against a running engine.

The pages mark each fenced block (`<!-- example: KIND -->` on the line before it):
- `shell`: run with bash in a copy of the project while the engine runs; it must exit 0.
- `output`: what the shell example before it prints; every line must appear in its output.
- `channel`: a whole channel file; `channel-part`: top-level keys of a channel laid over a small
  base channel. Each is checked with `simpul validate`, dropped into the running engine's channels
  folder, and must go live (its name shows in /healthz) through hot reload.
- `setup`: the install commands (`scripts/run.sh`, `scripts/test.sh`). Not run here, since they
  install packages; the engine is started with the command run.sh ends in, which is checked.
- `text`: shown output that is not run.
A block without a marker fails the test, so no example goes unchecked. Ports in the examples are
mapped to free ports and 0.0.0.0 to 127.0.0.1, since other engines may share this machine.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from tests.docs.support import DOCS, ROOT, Example, examples, load_hooks
from tests.helpers import first_admin_environment, free_port

VENV_BIN = Path(sys.executable).parent
RUN_COMMAND = "exec .venv/bin/simpul run -c config/simpul.yaml"
DOC_PORTS = (2575, 2576, 2577, 2580, 8080, 8090)
BASE_CHANNEL = {
    "source": "source:\n  mllp: {host: 127.0.0.1, port: 2599}\n",
    "destinations": "destinations:\n  - label: out\n    file: {directory: var/out/docs-examples}\n",
}
TIMEOUT = 20.0


def _pages() -> list[tuple[str, str]]:
    pages = [(str(path.relative_to(DOCS)), path.read_text(encoding="utf-8"))
             for path in [DOCS / "get-started.md", *sorted((DOCS / "channels").rglob("*.md"))]]
    for name, text in load_hooks().connector_pages().items():
        pages.append((f"channels/reference/{name} (generated)", text))
    return pages


PAGES = _pages()


class RunningEngine:
    def __init__(self, project: Path, environment: dict[str, str], ports: dict[int, int]) -> None:
        self.project, self.environment, self.ports = project, environment, ports
        self.http = f"http://127.0.0.1:{ports[8080]}"
        self.log = project / "engine.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.count = 0

    def adapt(self, text: str) -> str:
        for doc_port, port in self.ports.items():
            text = re.sub(rf"(?<!\d){doc_port}(?!\d)", str(port), text)
        return text.replace("0.0.0.0", "127.0.0.1")

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(["bash", "-c", RUN_COMMAND], cwd=self.project, env=self.environment,
                                            stdout=log, stderr=log)
        self._wait(lambda health: health.get("status") == "ok", "engine did not become healthy")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def _wait(self, ready, message: str) -> dict:
        deadline = time.monotonic() + TIMEOUT
        health: dict = {}
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"engine exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                health = httpx.get(f"{self.http}/healthz", timeout=2).json()
                if ready(health):
                    return health
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{message}; last health {health}\n{self.log_tail()}")

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def load_channel(self, example: Example) -> None:
        self.count += 1
        name = f"docs-example-{self.count}"
        text = self.adapt(example.body)
        if example.kind == "channel-part":
            keys = set(re.findall(r"^([a-z_]+):", text, re.MULTILINE))
            text = text + "".join(block for key, block in BASE_CHANNEL.items() if key not in keys)
            text = self.adapt(text)
        if re.search(r"^name:", text, re.MULTILINE):
            text = re.sub(r"^name: .*$", f"name: {name}", text, count=1, flags=re.MULTILINE)
        else:
            text = f"name: {name}\n{text}"
        path = self.project / "channels" / f"{name}.yaml"
        scratch = self.project / f"{name}.yaml"
        scratch.write_text(text, encoding="utf-8")
        checked = subprocess.run([str(VENV_BIN / "simpul"), "validate", str(scratch)], cwd=self.project,
                                 env=self.environment, capture_output=True, text=True)
        assert checked.returncode == 0, f"{example}: simpul validate refused it:\n{checked.stdout}{checked.stderr}"
        scratch.rename(path)
        self._wait(lambda health: name in health.get("channels", []), f"{example}: the engine did not load it")

    def run_shell(self, example: Example, expected: Example | None) -> None:
        script = self.adapt(example.body)
        wanted = [line.strip() for line in (expected.body if expected else "").splitlines() if line.strip()]
        deadline = time.monotonic() + TIMEOUT
        while True:
            # Mapping and delivery run behind the ACK, so a listing right after a send may need a moment.
            result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=self.project,
                                    env=self.environment, capture_output=True, text=True, timeout=60)
            missing = [line for line in wanted if line not in result.stdout]
            if result.returncode == 0 and not missing:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{example}: exit {result.returncode}, missing output {missing}\n"
                                     f"$ {script}\n{result.stdout}{result.stderr}\nengine log:\n{self.log_tail()}")
            time.sleep(0.5)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEngine]:
    project = tmp_path_factory.mktemp("docs-examples")
    for folder in ("config", "examples"):
        shutil.copytree(ROOT / folder, project / folder)
    (project / ".venv").symlink_to(Path(sys.prefix))
    certs = trustme.CA().issue_cert("localhost", "127.0.0.1")
    certs.cert_chain_pems[0].write_to_path(str(project / "lis-cert.pem"))
    certs.private_key_pem.write_to_path(str(project / "lis-key.pem"))
    ports = {port: free_port() for port in DOC_PORTS}
    # The first admin as scripts/run.sh would ask for it (the console refuses to start without one).
    environment = {**first_admin_environment(), "SIMPUL_HTTP_PORT": str(ports[8080]), "SIMPUL_LOG_FORMAT": "text",
                   # the variables the examples name in ${...}
                   "LIS_CERT": str(project / "lis-cert.pem"), "LIS_KEY": str(project / "lis-key.pem"),
                   "FHIR_BASE": "http://127.0.0.1:9/fhir", "FHIR_TOKEN": "example-token",
                   "RABBITMQ_URL": os.environ.get("SIMPUL_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")}
    running = RunningEngine(project, environment, ports)
    (project / "channels").mkdir()
    for channel in (ROOT / "channels").glob("*.yaml"):
        (project / "channels" / channel.name).write_text(running.adapt(channel.read_text()), encoding="utf-8")
    try:
        running.start()
        yield running
    finally:
        running.stop()


def test_run_sh_starts_the_engine_the_way_this_test_does():
    assert (ROOT / "scripts" / "run.sh").read_text().rstrip().splitlines()[-1] == RUN_COMMAND


def test_every_example_names_only_variables_the_test_provides():
    provided = {"LIS_CERT", "LIS_KEY", "FHIR_BASE", "FHIR_TOKEN", "RABBITMQ_URL"}
    for page, text in PAGES:
        for example in examples(page, text):
            if example.kind not in ("shell", "channel", "channel-part", "setup"):
                continue        # prose and output blocks are read, not run
            used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", example.body))
            assert used <= provided, f"{example}: add {used - provided} to the engine fixture's environment"


@pytest.mark.parametrize("page,text", PAGES, ids=[page for page, _ in PAGES])
def test_page_examples_work_against_a_running_engine(engine: RunningEngine, page: str, text: str):
    found = examples(page, text)
    for index, example in enumerate(found):
        following = found[index + 1] if index + 1 < len(found) else None
        if example.kind == "setup":
            assert "bash scripts/run.sh" in example.body, f"{example}: the setup block must name scripts/run.sh"
        elif example.kind in ("channel", "channel-part"):
            engine.load_channel(example)
        elif example.kind == "shell":
            engine.run_shell(example, following if following and following.kind == "output" else None)
        elif example.kind == "output":
            previous = found[index - 1] if index else None
            assert previous is not None and previous.kind == "shell", f"{example}: output must follow a shell block"


def test_the_indonesian_get_started_carries_the_tested_examples():
    english = examples("get-started.md", (DOCS / "get-started.md").read_text(encoding="utf-8"))
    indonesian = examples("get-started.id.md", (DOCS / "get-started.id.md").read_text(encoding="utf-8"))
    assert [(e.kind, e.body) for e in indonesian] == [(e.kind, e.body) for e in english]
