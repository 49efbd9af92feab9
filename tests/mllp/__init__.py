"""Tests of simpul.mllp: framing, MSH reader, ACKs, listener and sender on loopback sockets."""
