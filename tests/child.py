"""Reading a child process' output without timing luck: lines are collected on a thread, and a test
waits for the line it needs with a deadline, never with a bare ``readline()`` or a sleep."""

from __future__ import annotations

import threading
import time
from typing import Callable, TextIO


class LineReader:
    """Collects the lines of a child's text stream (its stderr or stdout) on a thread."""

    def __init__(self, stream: TextIO, name: str = "stderr") -> None:
        self.lines: list[str] = []
        self.name = name
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: TextIO) -> None:
        for line in stream:
            self.lines.append(line)

    def wait_for(self, phrase: str | Callable[[str], bool], timeout: float = 30.0) -> str:
        """The first line holding ``phrase`` (or for which ``phrase(line)`` holds); fails after ``timeout``."""
        match = phrase if callable(phrase) else (lambda line: phrase in line)
        deadline = time.monotonic() + timeout
        while True:
            for line in list(self.lines):
                if match(line):
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(f"no {phrase!r} on {self.name} within {timeout} s: {''.join(self.lines)[-2000:]}")
            time.sleep(0.02)

    def text(self, timeout: float = 10.0) -> str:
        """Everything, once the stream has closed (within ``timeout``)."""
        self._thread.join(timeout=timeout)
        return "".join(self.lines)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)
