"""Which audio frames a streamed window needs computed: the bookkeeping of incremental features.

No torch here: both runtimes use it, the torch one (:class:`spotter.streaming.StreamingFeatures`)
and the exported ONNX one (:mod:`spotter.exported`).

The front end zero-pads half a frame on each side of a 1 s window, so of a window's 101 frames
the 97 inner ones depend only on stream audio: they are the same frames, shifted, in every window
that holds them, and are computed once and cached by the caller. Only the 2 frames at each edge
touch the padding and are computed per window. :class:`WindowFramer` keeps the stream's recent
audio and, for a window, cuts out the audio of those edge frames and of the inner frames not yet
cached (:class:`FramePlan`). The stream is taken to be preceded by one second of silence, so
windows exist from the first hop on; windows are asked for in increasing order.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .errors import SpotterError


class StreamingError(SpotterError, ValueError):
    """A front end or window the streaming features cannot serve; the message says why."""


class FramePlan(NamedTuple):
    """The frames one window needs computed, each row ``n_fft`` samples of audio."""

    left: np.ndarray   # (edge, n_fft): the window's first frames, zero padding included
    right: np.ndarray  # (edge, n_fft): its last frames
    new: np.ndarray    # (n_new, n_fft): inner frames not cached yet, in order, ending with the window's last
    restart: bool      # True: the cache held nothing of use (stream start, after a gap); ``new`` is all inner frames


class WindowFramer:
    """Recent stream audio, and for each window the audio of the frames it still needs."""

    def __init__(self, n_fft: int, hop: int, window_samples: int = 16000, max_lag: int = 16000) -> None:
        """``max_lag``: how far (samples) behind the newest sample a requested window may end."""
        if n_fft % 2:
            raise StreamingError(f"this model's front end (n_fft {n_fft}) cannot stream: listening needs an "
                                 "even n_fft; use a model trained with such a front end")
        if window_samples % hop:
            raise StreamingError(f"a window of {window_samples} samples is not a multiple of the model's "
                                 f"{hop}-sample frame hop")
        self.n_fft, self.hop, self.half = n_fft, hop, n_fft // 2
        self.window = window_samples
        self.max_lag = int(max_lag)
        self.n_frames = 1 + window_samples // hop
        self.edge = 2 if self.half > hop else 1  # frames touching the padding at each end
        self.n_inner = self.n_frames - 2 * self.edge
        # Audio in "prefixed" stream coordinates: index 0 is one window before the first sample.
        # Audio held: self._buf[:self._used], a preallocated array appended to in place.
        self._buf = np.zeros(4 * (window_samples + n_fft + hop + self.max_lag), dtype=np.float32)
        self._used = window_samples
        self.audio_start = 0  # prefixed index of self._buf[0]
        self.total = window_samples  # prefixed samples received (the 1 s of leading silence included)
        self.cached_end: int | None = None  # frame index (prefixed) one past the last inner frame handed out
        self._frame_index: dict[int, np.ndarray] = {}  # frame count -> (count, n_fft) sample indices

    @property
    def stream_samples(self) -> int:
        """Real samples received so far (the stream clock)."""
        return self.total - self.window

    def push(self, samples: np.ndarray) -> None:
        """Append new 16 kHz mono samples."""
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        n = samples.size
        if n == 0:
            return
        if self._used + n > self._buf.size:
            # Keep what a window may still ask for; move it to the front (amortised: rarely).
            keep = min(self._used, self.window + self.n_fft + self.hop + self.max_lag)
            tail = self._buf[self._used - keep: self._used].copy()
            if keep + n > self._buf.size:
                self._buf = np.zeros(2 * (keep + n), dtype=np.float32)
            self._buf[:keep] = tail
            self.audio_start += self._used - keep
            self._used = keep
        self._buf[self._used: self._used + n] = samples
        self._used += n
        self.total += n

    def skip(self, n: int) -> None:
        """Advance the stream clock over ``n`` samples that were lost (a ring-buffer overrun).

        The audio held before the gap is forgotten and taken as silence, as at the start of a
        stream, so windows after the gap never mix audio from both sides of it with the wrong timing.
        """
        if n <= 0:
            return
        self.total += int(n)
        self._buf[: self.window] = 0.0
        self._used = self.window
        self.audio_start = self.total - self.window
        self.cached_end = None

    def window_audio(self, end: int | None = None) -> np.ndarray:
        """The 1 s of audio of the window ending at real sample ``end`` (default: newest); a view."""
        end_p = self.total if end is None else end + self.window
        return self._slice(end_p - self.window, end_p)

    def _slice(self, start: int, stop: int) -> np.ndarray:
        if start < self.audio_start or stop > self.total:
            raise ValueError(f"audio [{start}, {stop}) outside the audio held [{self.audio_start}, {self.total})")
        return self._buf[start - self.audio_start: stop - self.audio_start]

    def _frames(self, audio: np.ndarray, count: int) -> np.ndarray:
        """The first ``count`` frames of ``audio`` (frame starts ``hop`` apart): a ``(count, n_fft)`` copy.
        ``audio`` holds at least those frames' (count - 1) * hop + n_fft samples."""
        if count <= 0:
            return np.zeros((0, self.n_fft), dtype=np.float32)
        index = self._frame_index.get(count)
        if index is None:  # one gather per frame count (a hop's, a restart's, the edges'): cheaper each hop than strides
            index = np.arange(count)[:, None] * self.hop + np.arange(self.n_fft)
            self._frame_index[count] = index
        return audio[index]

    def plan(self, end: int | None = None) -> FramePlan:
        """What the window ending at real sample ``end`` (default: the newest) needs computed; the
        caller appends ``plan.new`` to its cache of inner frames (or starts it anew when
        ``plan.restart``), whose last ``n_inner`` frames are then the window's inner frames."""
        end_p = self.total if end is None else end + self.window
        start_p = end_p - self.window
        if start_p % self.hop:
            raise ValueError("windows must start on a frame boundary (hop a multiple of the frame hop)")
        first = start_p // self.hop
        inner_lo, inner_hi = first + self.edge, first + self.n_frames - self.edge  # inner frames [lo, hi)
        if self.cached_end is not None and self.cached_end > inner_hi:
            raise ValueError("windows must be asked for in increasing order")
        restart = self.cached_end is None or self.cached_end <= inner_lo
        new_lo = inner_lo if restart else self.cached_end
        new_start = new_lo * self.hop - self.half
        new = self._frames(self._slice(new_start, (inner_hi - 1) * self.hop + self.half), inner_hi - new_lo)
        self.cached_end = inner_hi
        # The edge frames touch `span` window samples; with the padding that is a whole number of hops.
        span = (self.edge - 1) * self.hop + self.n_fft - self.half
        pad = np.zeros(self.half, dtype=np.float32)
        left = np.concatenate([pad, self._slice(start_p, start_p + span)])
        right = np.concatenate([self._slice(end_p - span, end_p), pad])
        return FramePlan(self._frames(left, self.edge), self._frames(right, self.edge), new, restart)
