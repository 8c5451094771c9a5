"""``spotter listen --reconnect``: a lost microphone is re-opened with back-off instead of ending the run.

Two small parts:

* :class:`Backoff` - pure arithmetic: the delay before retry ``n`` is
  ``initial * factor ** (n - 1)``, capped at ``cap`` (0.5, 1, 2, 4, 8, 10, 10 ...
  seconds by default), and ``None`` once ``max_attempts`` retries have failed
  (``None``: retry forever).
* :class:`ReconnectingSource` - an :class:`~spotter.audio.AudioSource` around a
  factory of sources.  When the current source's ``read`` raises
  :class:`~spotter.audio.AudioError` (device unplugged, its server gone, the
  stream stalled), it closes that source, logs one line, and from then on
  each ``read`` waits at most its timeout and returns an empty block, trying
  the factory again whenever the back-off delay has passed; every failed retry
  logs one line.  ``read`` never blocks longer than its timeout, so a stop
  event (Ctrl-C, SIGTERM, ``q`` in the UI) still ends the run during an outage.

The stream clock goes on: blocks of a re-opened source start where the lost
one stopped plus the outage (wall time, in 16 kHz samples), so the engine sees
the outage as lost audio (``lost_seconds``, dropped windows), as for a
ring-buffer overrun, and detections keep their place in time.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Iterator

import numpy as np

from .audio import AudioError, AudioSource, Block
from .config import SAMPLE_RATE


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _what(err: Exception) -> str:
    """An error's finding without its advice (the part before the first '; '): retries give their own."""
    return str(err).split("; ")[0]


class Backoff:
    """Delays (seconds) before reconnect attempts: ``initial``, times ``factor`` each time, at most ``cap``."""

    def __init__(self, initial: float = 0.5, factor: float = 2.0, cap: float = 10.0,
                 max_attempts: int | None = None) -> None:
        if initial <= 0 or factor < 1 or cap < initial:
            raise ValueError("Backoff needs initial > 0, factor >= 1 and cap >= initial")
        if max_attempts is not None and max_attempts < 1:
            raise ValueError("max_attempts must be at least 1 (None: retry forever)")
        self.initial, self.factor, self.cap, self.max_attempts = initial, factor, cap, max_attempts

    def delay(self, attempt: int) -> float | None:
        """The wait before attempt ``attempt`` (1-based); ``None`` when no such attempt is allowed."""
        if attempt < 1:
            raise ValueError("attempts are counted from 1")
        if self.max_attempts is not None and attempt > self.max_attempts:
            return None
        exponent = min(attempt - 1, 64)  # beyond this the cap has long been reached
        return min(self.cap, self.initial * self.factor ** exponent)

    def delays(self) -> Iterator[float]:
        """Every delay in turn (endless when ``max_attempts`` is None)."""
        attempt = 1
        while (d := self.delay(attempt)) is not None:
            yield d
            attempt += 1


class ReconnectingSource:
    """An audio source that survives the loss of its device (see the module docstring).

    ``open_source(retry)`` makes a new, not yet started source: ``retry`` is 0
    for the first one (made here, so a wrong ``--device`` fails at once) and
    the attempt number afterwards.  Errors while starting the *first* source
    are not retried: they are configuration errors, reported as they are.
    """

    sample_rate = SAMPLE_RATE
    finished = False

    def __init__(self, open_source: Callable[[int], AudioSource], backoff: Backoff | None = None,
                 log: Callable[[str], None] = _stderr, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.open_source, self.backoff = open_source, backoff or Backoff()
        self.log, self.clock, self.sleep = log, clock, sleep
        self._source: AudioSource | None = open_source(0)
        self.name, self.device_rate = self._source.name, self._source.device_rate
        self.reconnects = 0  # successful re-opens
        self.retries = 0  # attempts made, failed or not
        self._closed_overflows = self._closed_overruns = 0  # counts of sources already closed
        self._offset = 0  # added to the current source's block starts
        self._position = 0  # 16 kHz index just after the last sample handed out
        self._attempt = 0  # failed attempts in the current outage
        self._lost_at: float | None = None
        self._next_try = 0.0
        self._closing = None
        self._last_audio_at = self.clock()

    # -- counters over every source used ----------------------------------------------------
    @property
    def overflows(self) -> int:
        return self._closed_overflows + (self._source.overflows if self._source else 0)

    @property
    def overruns(self) -> int:
        return self._closed_overruns + (self._source.overruns if self._source else 0)

    # -- context manager -------------------------------------------------------------------
    def __enter__(self) -> "ReconnectingSource":
        self._source.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._drop()

    def _drop(self) -> None:
        source, self._source = self._source, None
        if source is not None:
            self._closed_overflows += source.overflows
            self._closed_overruns += source.overruns
            try:
                source.__exit__(None, None, None)
            except Exception:  # noqa: BLE001 - closing a dead device may fail; it is gone either way
                pass
            self._closing = getattr(source, "closing", None)  # a MicrophoneSource's close still running

    # -- reading ---------------------------------------------------------------------------
    def _empty(self) -> Block:
        return Block(np.zeros(0, dtype=np.float32), self._position)

    def read(self, timeout: float) -> Block:
        if self._lost_at is None:
            try:
                block = self._source.read(timeout)
            except AudioError as err:
                self._lose(err)
                return self._empty()
            start = block.start + self._offset
            self._position = start + block.samples.size
            if block.samples.size:
                self._last_audio_at = self.clock()
            return Block(block.samples, start)
        wait = self._next_try - self.clock()
        if wait > 0:
            self.sleep(min(wait, timeout))
            return self._empty()
        self._retry()
        return self._empty()

    def _lose(self, err: AudioError) -> None:
        self._drop()
        self._lost_at = self.clock()
        self._attempt = 0
        delay = self.backoff.delay(1)  # never None: a Backoff allows at least one attempt
        self._next_try = self._lost_at + delay
        self.log(f"spotter: {_what(err)}; reconnecting in {delay:g} s (--reconnect)")

    def _retry(self) -> None:
        self._attempt += 1
        self.retries += 1
        source = None
        try:
            if self._closing is not None and self._closing.is_alive():  # never re-initialise PortAudio under it
                raise AudioError(f"the lost stream of '{self.name}' is still closing (its driver does not answer)")
            self._closing = None
            source = self.open_source(self._attempt)
            source.__enter__()
        except AudioError as err:
            if source is not None:
                try:
                    source.__exit__(None, None, None)
                except Exception:  # noqa: BLE001
                    pass
            delay = self.backoff.delay(self._attempt + 1)
            if delay is None:
                raise AudioError(f"audio device '{self.name}' lost and {self._attempt} reconnect attempt(s) failed "
                                 f"(last: {_what(err)}); check the device and restart") from None
            self._next_try = self.clock() + delay
            self.log(f"spotter: reconnect attempt {self._attempt} failed: {_what(err)}; next in {delay:g} s")
            return
        lost = max(0, round((self.clock() - self._last_audio_at) * SAMPLE_RATE))  # since the last audio heard
        self._offset = self._position + lost
        self._source, self._lost_at = source, None
        self.name, self.device_rate = source.name, source.device_rate
        self.reconnects += 1
        self.log(f"spotter: reconnected to '{source.name}' (attempt {self._attempt}); "
                 f"{lost / SAMPLE_RATE:.1f} s of audio lost")


def reconnecting_microphone(device: int | str | None = None, backoff: Backoff | None = None,
                            log: Callable[[str], None] = _stderr, **mic_options) -> ReconnectingSource:
    """A :class:`~spotter.audio.MicrophoneSource` on ``device`` that is re-opened when lost.

    Every retry first makes PortAudio list the devices again, so a microphone
    unplugged and plugged back in (or a restarted sound server) is found.
    """
    from .audio import MicrophoneSource, rescan_devices

    def open_source(retry: int) -> AudioSource:
        if retry:
            rescan_devices()
        return MicrophoneSource(device, **mic_options)

    return ReconnectingSource(open_source, backoff, log)
