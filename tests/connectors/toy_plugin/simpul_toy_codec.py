"""Stands in for a heavy optional library (zeep, pydicom, aio-pika) that a connector needs.

The registry tests check it is imported only once a channel uses the toy connector.
"""
from __future__ import annotations

import base64


def encode(payload: bytes) -> bytes:
    return base64.b64encode(payload)
