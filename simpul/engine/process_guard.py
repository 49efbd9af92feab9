"""Child processes of the engine die with it, even when it is killed with SIGKILL.

A spawned child (the ingest process, a mapping worker) otherwise outlives a killed parent:
an orphaned ingest process would keep the MLLP port, an orphaned mapping worker a few MB.
"""
from __future__ import annotations

import ctypes
import os
import signal
import threading
import time

PR_SET_PDEATHSIG = 1
WATCHDOG_INTERVAL = 0.1


def die_with_parent() -> None:
    """Call first thing in the child: the kernel's parent-death signal, plus a watchdog for a
    parent that died before the call (or a platform without prctl)."""
    parent = os.getppid()
    try:

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass

    def watchdog() -> None:
        # Not every kernel honours PR_SET_PDEATHSIG (gVisor sandboxes ignore it), so this is
        # what actually frees the MLLP port quickly after a kill -9 there: check often.
        while True:
            time.sleep(WATCHDOG_INTERVAL)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watchdog, name="simpul-parent-watchdog", daemon=True).start()
