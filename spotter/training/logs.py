"""The training log (``OUT/logs/version_N/metrics.csv``), safe from Ctrl-C.

Lightning's CSV logger rewrites the whole file when a new column appears. A Ctrl-C or SIGTERM that
lands in that rewrite used to leave a file with its header cut off, losing the epochs logged so far;
:class:`InterruptSafeCSVLogger` holds those signals back while it writes and delivers them right after.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

from pytorch_lightning.loggers import CSVLogger

HELD_BACK = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def signals_held_back() -> Iterator[None]:
    """Run the block whole: SIGINT and SIGTERM that arrive in it take effect (their usual handler) when it ends.
    Outside the main thread, where Python cannot set handlers, the block just runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    previous = {sig: signal.signal(sig, lambda s, _frame: arrived.append(s)) for sig in HELD_BACK}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)  # None: one set outside Python
        for sig in dict.fromkeys(arrived):
            signal.raise_signal(sig)


class InterruptSafeCSVLogger(CSVLogger):
    """Lightning's CSVLogger whose writes are never cut short by Ctrl-C or SIGTERM."""

    def save(self) -> None:
        with signals_held_back():
            super().save()
