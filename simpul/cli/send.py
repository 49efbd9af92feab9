"""`simpul send`: an MLLP client for analysts, with a progress bar and an ACK summary.

Sent and not sent are counted apart: a message is *sent* once it went out on a connection
(its outcome is the ACK code, or "no ACK"), *not sent* when it never left (no connection, no
readable MSH). Each problem is one line on stderr; the summary is one line on stdout.
"""
from __future__ import annotations

import asyncio
import socket
import ssl
from collections import Counter
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from simpul.cli.output import fail
from simpul.engine.message_files import read_message_file
from simpul.errors import MessageError, MllpError, MllpTimeout, NegativeAck
from simpul.mllp.ack import read_ack
from simpul.mllp.sender import MllpConnection, open_mllp_connection
from simpul.mllp.tls import client_ssl_context

NO_ACK_ASKED = "no ACK asked (MSH-15)"
GOOD_OUTCOMES = {"AA", "CA", NO_ACK_ASKED}


def send(target: Annotated[str, typer.Argument(help="HOST:PORT of an MLLP listener.")],
         files: Annotated[list[Path], typer.Argument(help="HL7v2 message files (several messages per file allowed).")],
         timeout: Annotated[float, typer.Option(help="Seconds to wait for each ACK.")] = 30.0,
         tls: Annotated[bool, typer.Option("--tls/--no-tls", help="Use TLS.")] = False,
         ca: Annotated[Optional[Path], typer.Option(help="CA file to verify the listener.")] = None,
         cert: Annotated[Optional[Path], typer.Option(help="Client certificate.")] = None,
         key: Annotated[Optional[Path], typer.Option(help="Client key.")] = None,
         quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False) -> None:
    """Send HL7v2 files over MLLP, one message at a time, and summarise the ACKs.

    Exit 0 when every message got AA/CA, 1 otherwise (including messages not sent), 2 on bad input.
    """
    host, _, port_text = target.rpartition(":")
    if not host or not port_text.isdigit():
        fail(f"simpul send: '{target}' is not HOST:PORT", 2)
    batch: list[tuple[str, bytes]] = []
    for path in files:
        try:
            batch.extend((path.name, message) for message in read_message_file(path))
        except OSError as exc:
            fail(f"simpul send: {path}: {exc.strerror}", 2)
    if not batch:
        fail("simpul send: no HL7v2 message found in the given files", 2)
    ssl_context = client_ssl_context(ca=ca, cert=cert, key=key) if tls or ca is not None else None
    raise typer.Exit(asyncio.run(send_batch(host, int(port_text), batch, timeout=timeout, ssl_context=ssl_context,
                                            quiet=quiet)))


async def send_batch(host: str, port: int, batch: list[tuple[str, bytes]], *, timeout: float,
                     ssl_context: ssl.SSLContext | None, quiet: bool) -> int:
    """Send every (file name, message) in order; print problems and the summary; return the exit code."""
    console = Console(stderr=True, highlight=False)
    sent: Counter[str] = Counter()
    not_sent = 0
    problems: list[str] = []
    connection: MllpConnection | None = None
    with Progress(TextColumn("sending"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, disable=quiet) as progress:
        task = progress.add_task("send", total=len(batch))
        for index, (name, message) in enumerate(batch):
            if connection is None or connection.closed:
                try:
                    connection = await open_mllp_connection(host, port, connect_timeout=timeout,
                                                            response_timeout=timeout, ssl=ssl_context)
                except (MllpError, OSError) as exc:
                    # Nothing more can go out: the rest of the batch is not sent either.
                    not_sent += len(batch) - index
                    problems.append(f"not sent: cannot connect to {host}:{port} ({connect_failure(exc)})")
                    break
            try:
                ack = await connection.send(message)
                sent[read_ack(ack)[0] if ack else NO_ACK_ASKED] += 1
            except NegativeAck as exc:
                sent[exc.ack_code] += 1
                problems.append(f"{name}: {exc.ack_code} {exc}")
            except MessageError as exc:       # never written: no readable MSH to match the ACK against
                not_sent += 1
                problems.append(f"{name}: not sent: {exc}")
            except (MllpError, OSError) as exc:
                sent["no ACK"] += 1
                problems.append(f"{name}: no ACK: {exc}")
                connection = None
            progress.advance(task)
    if connection is not None:
        await connection.close()
    for line in problems:
        console.print(" ".join(line.split()), markup=False, soft_wrap=True)
    print(summary(sent, not_sent))
    return 0 if not not_sent and set(sent) <= GOOD_OUTCOMES else 1


def summary(sent: Counter[str], not_sent: int) -> str:
    """`sent 3 message(s): AA 2, AR 1` plus `; not sent 1` when some never left."""
    line = f"sent {sum(sent.values())} message(s)"
    if sent:
        line += ": " + ", ".join(f"{code} {count}" for code, count in sorted(sent.items()))
    if not_sent:
        line += f"; not sent {not_sent}"
    return line


def connect_failure(exc: BaseException) -> str:
    """Why a connection could not be opened, in the words of `ss`/`curl` (no class names)."""
    cause = exc.__cause__ or exc
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, socket.gaierror):
        return "unknown host"
    if isinstance(exc, MllpTimeout) or isinstance(cause, TimeoutError):
        return "timed out"
    if isinstance(cause, ssl.SSLError):
        return f"TLS handshake failed: {cause.reason or cause}"
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror.lower()
    return str(exc)
