"""A preallocated single-producer / single-consumer ring buffer of audio frames.

The producer is an audio callback thread: :meth:`RingBuffer.write` must not
allocate a buffer, block or wait for the consumer, so it copies the block into
the preallocated array with at most two slice assignments and then advances a
counter.  The consumer (:meth:`read_new`, :meth:`read_latest`) copies out what
it needs.  There is no lock; two monotonic counters say what is where:

* ``claimed`` - frames the producer has *started* writing (set before the copy);
* ``written`` - frames whose copy has *finished* (set after the copy).

Frame ``i`` (absolute index, counted from the first frame ever written) lives
in slot ``i % capacity``.  Memory ordering: the producer stores ``claimed``,
copies, then stores ``written``; in CPython each store of an attribute is a
single bytecode executed under the GIL, so a consumer that sees ``written``
advanced also sees the data copied before it.  The consumer reads ``written``,
copies frames below it, then reads ``claimed``: any frame whose slot the
producer may have touched meanwhile (index < ``claimed - capacity``) is torn,
so it is dropped and counted as lost exactly like frames overwritten before
the read began.  A consumer that falls more than ``capacity`` frames behind
therefore skips ahead to the oldest intact frame and the loss is reported in
``overruns`` (events) and ``overrun_frames`` (frames), never hidden.
"""

from __future__ import annotations

import numpy as np


class RingBuffer:
    def __init__(self, capacity_frames: int, channels: int = 1, dtype=np.float32) -> None:
        if capacity_frames <= 0 or channels <= 0:
            raise ValueError("RingBuffer needs a positive capacity and channel count")
        self.capacity = int(capacity_frames)
        self.channels = int(channels)
        self._data = np.zeros((self.capacity, self.channels), dtype=dtype)
        self._claimed = 0
        self._written = 0
        self._read = 0  # absolute index of the next frame the consumer wants
        self.overruns = 0
        self.overrun_frames = 0

    @property
    def written(self) -> int:
        """Frames ever written (the producer's clock)."""
        return self._written

    @property
    def available(self) -> int:
        """Unread frames still held."""
        return self._written - max(self._read, self._written - self.capacity)

    # -- producer ---------------------------------------------------------------------------
    def write(self, block: np.ndarray) -> None:
        """Append ``block`` of shape ``(n, channels)`` (or ``(n,)`` for mono); only its newest
        ``capacity`` frames are kept if it is longer."""
        if block.ndim == 1:
            block = block.reshape(-1, 1)  # a view
        n = block.shape[0]
        end = self._written + n
        if n > self.capacity:
            block = block[n - self.capacity:]
            n = self.capacity
        self._claimed = end
        start = (end - n) % self.capacity
        first = min(n, self.capacity - start)
        self._data[start:start + first] = block[:first]
        if first < n:
            self._data[:n - first] = block[first:]
        self._written = end

    # -- consumer ---------------------------------------------------------------------------
    def _copy(self, start: int, stop: int) -> np.ndarray:
        """Copy of absolute frames [start, stop) (stop - start <= capacity), possibly torn."""
        a, b = start % self.capacity, stop % self.capacity
        if stop - start == 0:
            return self._data[:0].copy()
        if a < b:
            return self._data[a:b].copy()
        return np.concatenate([self._data[a:], self._data[:b]])

    def read_new(self, max_frames: int | None = None) -> tuple[np.ndarray, int]:
        """All unread frames (at most ``max_frames``, oldest first) and the absolute index of the first.

        Frames the producer overwrote before they were read are skipped and counted.
        """
        stop = self._written
        start = max(self._read, stop - self.capacity)
        if max_frames is not None:
            stop = min(stop, start + max_frames)
        frames = self._copy(start, stop)
        intact = max(start, self._claimed - self.capacity)  # frames below this may be torn
        if intact > start:
            frames = frames[intact - start:]  # empty when everything copied was torn
            start = intact
        if start > self._read:
            self.overruns += 1
            self.overrun_frames += start - self._read
        self._read = start + len(frames)
        return frames, start

    def read_latest(self, n: int) -> np.ndarray:
        """The newest ``n`` frames (``n <= capacity``), zero-padded at the front if fewer were written.

        Does not move the read position of :meth:`read_new`.
        """
        if not 0 <= n <= self.capacity:
            raise ValueError(f"read_latest({n}): n must be between 0 and the capacity {self.capacity}")
        while True:
            stop = self._written
            start = max(0, stop - n)
            frames = self._copy(start, stop)
            if self._claimed - self.capacity <= start:  # nothing was overwritten while copying
                break
        if len(frames) < n:
            frames = np.concatenate([np.zeros((n - len(frames), self.channels), self._data.dtype), frames])
        return frames
