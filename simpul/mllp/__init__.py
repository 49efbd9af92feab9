"""MLLP transport for HL7 v2: framing, ACKs, the listener and the sender (ER7 syntax: simpul.v2).

    framing.py   bytes <-> MLLP frames (no I/O)
    ack.py       build_ack() / read_ack()
    listener.py  start_mllp_server(handler) -> MllpServer
    sender.py    open_mllp_connection() -> MllpConnection.send()
    tls.py       TlsSettings, server_ssl_context(), client_ssl_context()
"""
from .ack import build_ack, read_ack
from .framing import END_BLOCK, START_BLOCK, FrameDecoder, frame
from .listener import ListenerEvents, ListenerSettings, MllpServer, start_mllp_server
from .sender import MllpConnection, open_mllp_connection
from .tls import TlsSettings, client_ssl_context, server_ssl_context

__all__ = [
    "START_BLOCK",
    "END_BLOCK",
    "frame",
    "FrameDecoder",
    "build_ack",
    "read_ack",
    "ListenerSettings",
    "ListenerEvents",
    "MllpServer",
    "start_mllp_server",
    "MllpConnection",
    "open_mllp_connection",
    "TlsSettings",
    "server_ssl_context",
    "client_ssl_context",
]
