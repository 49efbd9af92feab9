"""An MLLP source with TLS (and client certificates) configured in channel YAML."""
from __future__ import annotations

import ssl

import pytest
import trustme

from simpul.errors import MllpError
from simpul.mllp.sender import open_mllp_connection
from tests.helpers import adt, channel_yaml, free_port, segment


@pytest.fixture
def pki(tmp_path):
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("lis.hospital.local")
    files = {"ca": tmp_path / "ca.pem", "cert": tmp_path / "server.pem", "client": tmp_path / "client.pem"}
    ca.cert_pem.write_to_path(files["ca"])
    server.private_key_and_cert_chain_pem.write_to_path(files["cert"])
    client.private_key_and_cert_chain_pem.write_to_path(files["client"])
    return files


def tls_channel(tmp_path, port: int, pki, mutual: bool) -> str:
    ca_line = f"  ca: {pki['ca']}\n" if mutual else ""
    return channel_yaml("secure", port, f"- label: out\n  file: {{directory: {tmp_path / 'out'}}}\n",
                        extra_source=f"tls:\n  cert: {pki['cert']}\n{ca_line}")


def client_context(pki, with_certificate: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki["ca"]))
    if with_certificate:
        context.load_cert_chain(str(pki["client"]))
    return context


async def test_tls_source_acks_over_tls_1_2_or_newer(harness, tmp_path, pki):
    port = free_port()
    await harness.start({"secure.yaml": tls_channel(tmp_path, port, pki, mutual=False)})
    connection = await open_mllp_connection("127.0.0.1", port, ssl=client_context(pki, False))
    ack = await connection.send(adt("TLS-1"))
    assert segment(ack, "MSA")[1] == "AA"
    await connection.close()


async def test_plain_tcp_client_gets_no_ack_from_a_tls_source(harness, tmp_path, pki):
    port = free_port()
    await harness.start({"secure.yaml": tls_channel(tmp_path, port, pki, mutual=False)})
    with pytest.raises(MllpError):
        connection = await open_mllp_connection("127.0.0.1", port, response_timeout=2)
        await connection.send(adt("PLAIN-1"))
    assert harness.sql("SELECT count(*) AS n FROM messages")[0].n == 0


async def test_mutual_tls_refuses_a_client_without_certificate(harness, tmp_path, pki):
    port = free_port()
    await harness.start({"secure.yaml": tls_channel(tmp_path, port, pki, mutual=True)})
    with pytest.raises((MllpError, ssl.SSLError, ConnectionError)):
        connection = await open_mllp_connection("127.0.0.1", port, ssl=client_context(pki, False),
                                                response_timeout=2)
        await connection.send(adt("NOCERT-1"))
    connection = await open_mllp_connection("127.0.0.1", port, ssl=client_context(pki, True))
    assert segment(await connection.send(adt("CERT-1")), "MSA")[1] == "AA"
    await connection.close()
    assert [r.control_id for r in harness.sql("SELECT control_id FROM messages")] == ["CERT-1"]
