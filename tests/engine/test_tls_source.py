"""An MLLP source with TLS (and client certificates) configured in channel YAML."""
from __future__ import annotations

import asyncio
import ssl
import warnings

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


def tls_channel(tmp_path, port: int, pki, mutual: bool, min_version: str = "") -> str:
    ca_line = f"  ca: {pki['ca']}\n" if mutual else ""
    version_line = f"  min_version: '{min_version}'\n" if min_version else ""
    return channel_yaml("secure", port, f"- label: out\n  file: {{directory: {tmp_path / 'out'}}}\n",
                        extra_source=f"tls:\n  cert: {pki['cert']}\n{ca_line}{version_line}")


def client_context(pki, with_certificate: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki["ca"]))
    if with_certificate:
        context.load_cert_chain(str(pki["client"]))
    return context


def capped_client(pki, lowest: ssl.TLSVersion, highest: ssl.TLSVersion) -> ssl.SSLContext:
    """A client that offers only versions lowest..highest. For 1.0/1.1 it also lowers OpenSSL's
    security level, so the client itself is able to speak them and only the server can refuse."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(pki["ca"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)     # TLSVersion.TLSv1/TLSv1_1 are deprecated
        context.minimum_version, context.maximum_version = lowest, highest
    if lowest < ssl.TLSVersion.TLSv1_2:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


async def _send_over_tls(port: int, context: ssl.SSLContext, control_id: str) -> tuple[str, bytes]:
    """Send one framed message; returns the negotiated TLS version and the ACK."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"), 5)
    try:
        version = writer.get_extra_info("ssl_object").version()
        writer.write(b"\x0b" + adt(control_id) + b"\x1c\r")
        await writer.drain()
        data = await asyncio.wait_for(reader.readuntil(b"\x1c\r"), 5)
        return version, data[1:-2]
    finally:
        writer.close()


async def test_tls_source_acks_over_tls_1_2_or_newer(harness, tmp_path, pki):
    port = free_port()
    await harness.start({"secure.yaml": tls_channel(tmp_path, port, pki, mutual=False)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        tls_1_1 = capped_client(pki, ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await _send_over_tls(port, tls_1_1, "TLS-OLD")
    version, ack = await _send_over_tls(port, capped_client(pki, ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2),
                                        "TLS-12")
    assert version == "TLSv1.2" and segment(ack, "MSA")[1] == "AA"
    version, ack = await _send_over_tls(port, client_context(pki, False), "TLS-NEWEST")
    assert version == "TLSv1.3" and segment(ack, "MSA")[1] == "AA"
    assert sorted(r.control_id for r in harness.sql("SELECT control_id FROM messages")) == ["TLS-12", "TLS-NEWEST"]


async def test_tls_source_with_min_version_1_3_refuses_a_1_2_client(harness, tmp_path, pki):
    port = free_port()
    await harness.start({"secure.yaml": tls_channel(tmp_path, port, pki, mutual=False, min_version="1.3")})
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await _send_over_tls(port, capped_client(pki, ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2), "TLS-12")
    version, ack = await _send_over_tls(port, client_context(pki, False), "TLS-13")
    assert version == "TLSv1.3" and segment(ack, "MSA")[1] == "AA"


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
