"""The connector registry is the single source of connector names, channel keys and docs.

The toy connector (tests/connectors/toy_plugin) is added the way a third party adds one: one
module plus the `simpul.connectors` entry point its package declares. Nothing in simpul/ names it.
"""
from __future__ import annotations

import ast
import asyncio
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import httpx
import pytest

from simpul.connectors import registry
from simpul.errors import ConfigError

from tests.connectors.conformance import TOY_PLUGIN
from tests.connectors.peers.toy import ToyPeer, ToySender
from tests.helpers import (
    SIMPUL_CLI, EngineHarness, EngineProcess, adt, bearer, channel_yaml, free_port, write_settings,
)

BUILT_IN = ["bpjs_vclaim", "dicomweb", "eklaim", "erp", "events", "fhir_orders", "fhir_server", "file", "http", "mllp",
            "rabbitmq", "satusehat", "worklist"]


def install(site: Path, name: str, module: str, source: str) -> None:
    """A minimal installed distribution: one module and its entry point, as pip would leave them."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[simpul.connectors]\n{name} = {module}\n")


def test_built_ins_come_from_the_files_and_plug_ins_from_entry_points() -> None:
    assert registry.names() == BUILT_IN + ["toy"]
    assert registry.module_path("mllp") == "simpul.connectors.mllp"
    assert registry.module_path("toy") == "simpul_toy_connector"
    assert {spec.name: spec.roles for spec in registry.specs()} == {
        "bpjs_vclaim": ("destination",), "eklaim": ("destination",), "satusehat": ("destination",),
        "dicomweb": ("destination",), "erp": ("destination",), "events": ("source",), "fhir_orders": ("source",),
        "fhir_server": ("destination",), "file": ("source", "destination"), "http": ("source",),
        "mllp": ("source", "destination"), "rabbitmq": ("source", "destination"),
        "toy": ("source", "destination"), "worklist": ("destination",)}


def test_an_unknown_connector_name_suggests_the_close_one() -> None:
    with pytest.raises(ConfigError, match=r"unknown connector 'fhir_sever' \(did you mean 'fhir_server'\?\)"):
        registry.spec("fhir_sever")
    with pytest.raises(ConfigError, match="cannot be a destination"):
        registry.create_destination("http", None)


def test_a_plug_in_cannot_take_a_built_in_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install(tmp_path, "mllp", "evil_mllp", "")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.refresh()
    with pytest.raises(ConfigError, match="clashes with the built-in connector"):
        registry.names()


def test_a_plug_in_must_declare_the_name_it_is_registered_under(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    install(tmp_path, "other", "misnamed_connector", """\
        from simpul.connectors.base import ConnectorSpec
        from simpul.connectors.file import FileDestination, FileDestinationConfig
        CONNECTOR = ConnectorSpec(name="not_other", destination=FileDestinationConfig,
                                  create_destination=FileDestination)
        """)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.refresh()
    with pytest.raises(ConfigError, match="registered as 'other' but declares 'not_other'"):
        registry.spec("other")


@pytest.mark.parametrize("name", BUILT_IN + ["toy"])
def test_every_connector_documents_itself(name: str) -> None:
    """`simpul docs` is built from these: a module docstring with Features / Connection / Options,
    and config models that refuse unknown keys and describe every field."""
    spec = registry.spec(name)
    doc = sys.modules[registry.module_path(name)].__doc__ or ""
    assert doc.startswith(f"{name}: ")
    for section in ("Features", "Connection", "Options"):
        assert f"\n{section}\n" in doc, f"{name}: the docstring has no {section} section"
    for model, description in ((spec.source, spec.source_description),
                               (spec.destination, spec.destination_description)):
        if model is None:
            continue
        assert description
        assert model.model_config.get("extra") == "forbid"
        undocumented = [key for key, field in model.model_fields.items() if not field.description]
        assert undocumented == [], f"{name}: fields without a description: {undocumented}"


async def test_channel_schema_and_openapi_carry_every_connector(harness: EngineHarness, tmp_path: Path) -> None:
    port = free_port()
    engine = await harness.start({"adt.yaml": channel_yaml("adt", port, f"""\
        - label: out
          file: {{directory: {tmp_path / 'out'}}}
        """)}, http=True)
    # follow_redirects: the old /api paths may redirect to their versioned home
    assert harness.admin_token
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{engine.http_port}", timeout=5,
                                 follow_redirects=True, headers=bearer(harness.admin_token)) as client:
        schema = (await client.get("/api/channels/schema")).json()
        openapi = (await client.get("/api/openapi.json")).json()
    assert set(schema["$defs"]["Source"]["properties"]) == {"events", "fhir_orders", "file", "http", "mllp", "rabbitmq"}
    assert {"fhir_server", "file", "mllp"} <= set(schema["$defs"]["Destination"]["properties"])
    components = openapi["components"]["schemas"]
    assert components["Destination"]["properties"]["fhir_server"]["anyOf"][0] == {
        "$ref": "#/components/schemas/FhirServerConfig"}
    assert "base_url" in components["FhirServerConfig"]["properties"]


def run_python(code: str, **env: str) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "PYTHONPATH": str(TOY_PLUGIN), **env})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_toy_connector_library_loads_only_when_a_channel_uses_it(tmp_path: Path) -> None:
    (tmp_path / "adt.yaml").write_text(channel_yaml("adt", free_port(), """\
        - label: out
          file: {directory: out}
        """))
    output = run_python(f"""
        import asyncio, sys
        from pathlib import Path
        from simpul.connectors import registry
        from simpul.engine.config.channels import load_channels
        loaded, findings = load_channels([Path({str(tmp_path)!r})], environ={{}},
                                         relative_to=Path({str(tmp_path)!r}))
        assert not findings, findings
        assert "toy" in registry.names()
        print("after loading channels:", "simpul_toy_codec" in sys.modules)
        spec = registry.spec("toy")
        connector = registry.create_destination("toy", spec.destination(port=9, token="t", timeout=0.2))
        try:
            asyncio.run(connector.connect())
        except Exception as exc:
            print("connect:", type(exc).__name__)
        print("after connecting:", "simpul_toy_codec" in sys.modules)
        """)
    assert output.splitlines() == ["after loading channels: False", "connect: ConnectorUnavailable",
                                   "after connecting: True"]


def test_simpul_docs_and_validate_know_the_plug_in(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(TOY_PLUGIN)}
    docs = subprocess.run([str(SIMPUL_CLI), "docs"], capture_output=True, text=True, env=env, timeout=60)
    assert docs.returncode == 0, docs.stderr
    assert "#### `destinations.toy`" in docs.stdout and "##### `toy` (source, destination)" in docs.stdout
    assert "#### `source.toy`" in docs.stdout
    assert "| `token` | str | **required** | Shared secret sent on connect; use ${VAR}. |" in docs.stdout

    channels = tmp_path / "channels"
    channels.mkdir()
    (channels / "toy.yaml").write_text(channel_yaml("toyrun", 2599, """\
        - label: toy
          toy: {port: 2600, tokn: x}
        """))
    result = subprocess.run([str(SIMPUL_CLI), "validate", str(channels)], capture_output=True, text=True,
                            env=env, timeout=60, cwd=tmp_path)
    assert result.returncode != 0
    assert "destinations[0].toy.tokn: unknown key (did you mean 'token'?)" in result.stdout + result.stderr


async def test_a_channel_runs_through_the_toy_plug_in_both_ways(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`simpul run` with the toy installed: toy source in, raw HL7v2 out through the toy destination,
    its secret from the environment."""
    peer = ToyPeer(tmp_path)
    await peer.start()
    source_port = free_port()
    (tmp_path / "channels").mkdir()
    (tmp_path / "channels" / "toy.yaml").write_text(textwrap.dedent(f"""\
        name: toyrun
        source: {{toy: {{port: {source_port}}}}}
        destinations:
          - label: toy
            payload: raw
            toy: {{port: {peer.port}, token: "${{TOY_TOKEN}}", timeout: 2s}}
        """))
    monkeypatch.setenv("PYTHONPATH", str(TOY_PLUGIN))
    monkeypatch.setenv("TOY_TOKEN", peer.secret or "")
    settings = write_settings(tmp_path, f"sqlite:///{tmp_path / 'simpul.db'}", http_port=free_port())
    engine = EngineProcess(settings, source_port, tmp_path / "engine.log")
    await asyncio.to_thread(engine.start)
    try:
        message = adt("TOY-1")
        ack = await ToySender().send(types.SimpleNamespace(port=source_port), message, timeout=10)
        assert ack is not None and b"MSA|AA|TOY-1" in ack
        for _ in range(200):
            if peer.received():
                break
            await asyncio.sleep(0.05)
        assert peer.received() == [message]
    finally:
        await asyncio.to_thread(engine.stop)
        await peer.stop()
    assert peer.secret not in (tmp_path / "engine.log").read_text()


def test_connectors_import_only_lower_layers_and_only_at_the_top() -> None:
    """The engine imports connectors, never the other way round; a function-level import would hide
    a cycle. An optional heavy library is the one exception (aio-pika, loaded by rabbitmq only when a
    channel uses it): a late import of a library outside simpul passes, never one of simpul."""
    package = Path(registry.__file__).parent
    files = sorted(package.glob("*.py")) + [package.parent / "config_types.py"]
    allowed = ("simpul.connectors", "simpul.config_types", "simpul.errors", "simpul.mllp", "simpul.v2")
    found: list[str] = []
    for path in files:
        tree = ast.parse(path.read_text())
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                if id(node) not in top_level and any(name.startswith("simpul") for name in names):
                    found.append(f"{path.name}:{node.lineno} imports inside a function")
                found += [f"{path.name}:{node.lineno} imports {name}" for name in names
                          if name.startswith("simpul") and not name.startswith(allowed)]
    assert found == []


def test_a_plug_in_source_without_an_engine_listener_is_refused_not_ignored(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    install(site, "queue", "queue_source", '''\
        """queue: a source the engine cannot run yet."""
        from pydantic import BaseModel, ConfigDict, Field
        from simpul.connectors.base import ConnectorSpec

        class QueueSource(BaseModel):
            model_config = ConfigDict(extra="forbid")
            queue: str = Field(description="Queue name.")

        CONNECTOR = ConnectorSpec(name="queue", source=QueueSource, source_description="Read a queue.")
        ''')
    channels = tmp_path / "channels"
    channels.mkdir()
    (channels / "q.yaml").write_text(textwrap.dedent("""\
        name: q
        source: {queue: {queue: lab}}
        destinations:
          - label: out
            file: {directory: out}
        """))
    settings = write_settings(tmp_path, f"sqlite:///{tmp_path / 'simpul.db'}", http_port=free_port())
    result = subprocess.run([str(SIMPUL_CLI), "run", "-c", str(settings)], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(site)}, timeout=60, cwd=tmp_path)
    assert result.returncode != 0
    assert "the engine has no listener for a 'queue' source yet" in result.stdout + result.stderr


def test_a_connector_cannot_take_the_name_of_a_destination_key(tmp_path: Path) -> None:
    install(tmp_path, "retry", "retry_connector", """\
        from simpul.connectors.base import ConnectorSpec
        from simpul.connectors.file import FileDestination, FileDestinationConfig
        CONNECTOR = ConnectorSpec(name="retry", destination=FileDestinationConfig,
                                  create_destination=FileDestination)
        """)
    result = subprocess.run([sys.executable, "-c", "import simpul.engine.config.channel"], capture_output=True,
                            text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert result.returncode != 0
    assert "connector 'retry' has the name of a destination key; rename it" in result.stderr
