"""`simpul send`: an MLLP client for analysts, with a progress bar and an ACK summary."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from simpul.engine.message_files import read_message_file
from simpul.errors import MessageError, MllpError, NegativeAck


async def run_send(host: str, port: int, files: list[Path], *, timeout: float, tls: bool,
                   ca: Path | None, cert: Path | None, key: Path | None, quiet: bool) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from simpul.mllp.sender import open_mllp_connection
    from simpul.mllp.tls import client_ssl_context

    console = Console(stderr=True)
    batch: list[tuple[str, bytes]] = []
    for path in files:
        try:
            batch.extend((path.name, message) for message in read_message_file(path))
        except OSError as exc:
            console.print(f"simpul send: {path}: {exc.strerror}")
            return 2
    if not batch:
        console.print("simpul send: no HL7v2 message found in the given files")
        return 2
    ssl_context = client_ssl_context(ca=ca, cert=cert, key=key) if tls else None
    outcomes: Counter[str] = Counter()
    problems: list[str] = []
    connection = None
    with Progress(TextColumn("sending"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, disable=quiet) as progress:
        task = progress.add_task("send", total=len(batch))
        for name, message in batch:
            try:
                if connection is None or connection.closed:
                    connection = await open_mllp_connection(host, port, connect_timeout=timeout,
                                                            response_timeout=timeout, ssl=ssl_context)
                ack = await connection.send(message)
                outcomes[_ack_code(ack) if ack else "no ACK asked (MSH-15)"] += 1
            except NegativeAck as exc:
                outcomes[exc.ack_code] += 1
                problems.append(f"{name}: {exc.ack_code} {exc}")
            except MessageError as exc:       # not sent: no readable MSH to match the ACK against
                outcomes["unsent"] += 1
                problems.append(f"{name}: not sent: {exc}")
            except (MllpError, OSError) as exc:
                outcomes["error"] += 1
                problems.append(f"{name}: {type(exc).__name__}: {exc}")
                connection = None
            progress.advance(task)
    if connection is not None:
        await connection.close()
    for line in problems:
        console.print(line, markup=False, highlight=False)
    summary = ", ".join(f"{code} {count}" for code, count in sorted(outcomes.items()))
    print(f"sent {len(batch)} message(s): {summary}")
    return 0 if set(outcomes) <= {"AA", "CA", "no ACK asked (MSH-15)"} else 1


def _ack_code(ack: bytes) -> str:
    from simpul.mllp.ack import read_ack
    return read_ack(ack)[0]
