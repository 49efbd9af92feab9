"""The docs site builds with `mkdocs build --strict`, its reference pages come from the code, and
the engine serves the built site at /docs-site when `http.docs_site` names it."""
from __future__ import annotations

import html
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import typer.main

from simpul.connectors import registry
from simpul.cli import app as cli_app
from simpul.engine.config.settings import ENV_OVERRIDES
from simpul.api import create_app
from tests.docs.support import ROOT
from tests.helpers import first_admin_environment, free_port

SIMPUL = str(Path(sys.executable).parent / "simpul")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(target)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    return target


def page(site: Path, path: str) -> str:
    return html.unescape((site / path / "index.html").read_text(encoding="utf-8"))


def test_every_connector_has_a_generated_page_with_every_key(site: Path):
    for spec in registry.destinations():
        assert spec.destination is not None
        text = page(site, f"channels/reference/destinations/{spec.name}")
        for field_name, field in spec.destination.model_fields.items():
            assert f"{field.alias or field_name}" in text and (field.description or "") in text
    for name in ("mllp", "http"):
        assert "Keys" in page(site, f"channels/reference/sources/{name}")


def test_cli_page_lists_every_command_of_the_app(site: Path):
    text = page(site, "cli")
    root = typer.main.get_command(cli_app)
    context = root.context_class(root)
    for name in root.list_commands(context):
        command = root.get_command(context, name)
        if hasattr(command, "list_commands"):
            for sub in command.list_commands(command.context_class(command)):
                assert f"simpul {name} {sub}" in text
        else:
            assert f"simpul {name}" in text


def test_api_page_lists_every_route_of_the_app(site: Path):
    text = page(site, "api")
    for path, operations in create_app(None).openapi()["paths"].items():
        for method in operations:
            assert f"{method.upper()} {path}" in text
    assert (site / "api" / "openapi.json").is_file()


def test_settings_page_names_every_environment_variable(site: Path):
    text = page(site, "operate/settings")
    for variable in ENV_OVERRIDES:
        assert variable in text


def test_pages_load_nothing_from_the_network(site: Path):
    # On-call staff may read the site from the engine on a hospital network without internet.
    for path in site.rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r'<(script|link|img)[^>]+(src|href)="(https?:)?//', text), path


def test_search_diagram_and_indonesian_pages_are_built(site: Path):
    index = (site / "search" / "search_index.json").read_text(encoding="utf-8")
    assert "dead-letters replay" in index
    assert "<svg" in page(site, "architecture")
    assert "Mulai" in page(site, "id/get-started")
    assert "Panduan piket" in page(site, "id/operate")


@pytest.fixture
def engine_with_docs(site: Path, tmp_path: Path) -> Iterator[str]:
    (tmp_path / "channels").mkdir()
    settings = tmp_path / "simpul.yaml"
    settings.write_text(f"database: {{url: 'sqlite:///{tmp_path}/simpul.db'}}\nchannels_dir: {tmp_path}/channels\n")
    port = free_port()
    environment = {**first_admin_environment(), "SIMPUL_HTTP_PORT": str(port), "SIMPUL_DOCS_SITE": str(site)}
    with open(tmp_path / "engine.log", "wb") as log:
        process = subprocess.Popen([SIMPUL, "run", "-c", str(settings)], env=environment, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "engine.log").read_text()
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(20)


def test_engine_serves_the_built_site_at_docs_site(engine_with_docs: str):
    home = httpx.get(f"{engine_with_docs}/docs-site/")
    assert home.status_code == 200 and "Simpul" in home.text
    reference = httpx.get(f"{engine_with_docs}/docs-site/channels/reference/destinations/fhir_server/")
    assert reference.status_code == 200 and "base_url" in reference.text
    assert httpx.get(f"{engine_with_docs}/docs-site/search/search_index.json").status_code == 200


def test_engine_refuses_a_docs_site_folder_without_a_built_site(tmp_path: Path):
    (tmp_path / "channels").mkdir()
    settings = tmp_path / "simpul.yaml"
    settings.write_text(f"database: {{url: 'sqlite:///{tmp_path}/simpul.db'}}\nchannels_dir: {tmp_path}/channels\n"
                        f"http: {{port: {free_port()}, docs_site: {tmp_path}/nothing-built}}\n")
    result = subprocess.run([SIMPUL, "run", "-c", str(settings)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "http.docs_site" in result.stderr and "mkdocs build" in result.stderr
