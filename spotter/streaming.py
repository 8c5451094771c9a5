"""Incremental log-Mel features: each hop computes only the frames it has not seen.

The front end (:class:`spotter.features.LogMel`) zero-pads half a window on
each side of a 1 s clip, so of a window's 101 frames the 97 inner ones
(frames 2..98) depend only on stream audio and are the same frames, shifted,
in every window that contains them; only the two frames at each edge touch
the padding.  :class:`StreamingFeatures` therefore

* keeps a cache of the stream's inner frames (computed once, when their
  480 samples have arrived), and
* per window computes the 4 edge frames from the window's first and last
  400 samples with the zero padding,

and returns exactly what the offline front end returns for that window
(tested: equal to float32 rounding).  The stream is taken to be preceded
by one second of silence, so windows exist from the first hop on.
Frames are computed with the front end's own nnAudio layer
(:meth:`LogMel.power_frames`), so trained bases are used as they are.
"""

from __future__ import annotations

import numpy as np
import torch

from .features import LogMel


class StreamingFeatures:
    def __init__(self, frontend: LogMel, window_samples: int = 16000, max_lag: int = 16000) -> None:
        """``max_lag``: how far (samples) behind the newest sample a requested window may end."""
        cfg = frontend.config
        if cfg.n_fft != cfg.win_length or cfg.n_fft % 2 or (cfg.n_fft // 2) % 1:
            raise ValueError("StreamingFeatures needs win_length == n_fft (even)")
        self.frontend = frontend
        self.hop = cfg.hop_length
        self.n_fft = cfg.n_fft
        self.half = cfg.n_fft // 2
        self.window = window_samples
        self.max_lag = int(max_lag)
        if window_samples % self.hop:
            raise ValueError(f"window of {window_samples} samples is not a multiple of the {self.hop}-sample frame hop")
        self.n_frames = frontend.n_frames(window_samples)
        self.edge = 2 if self.half > self.hop else 1  # frames touching the padding at each end
        # Audio history in "prefixed" stream coordinates: index 0 is one window before the first sample.
        self.audio = np.zeros(window_samples, dtype=np.float32)
        self.audio_start = 0  # prefixed index of self.audio[0]
        self.total = window_samples  # prefixed samples received (the 1 s of leading silence included)
        self.frames = torch.empty(cfg.n_mels, 0)
        self.frames_start = 0  # frame index (prefixed coords) of self.frames[:, 0]
        self.device = next(iter(frontend.buffers()), torch.empty(0)).device

    @property
    def stream_samples(self) -> int:
        """Real samples received so far (the stream clock)."""
        return self.total - self.window

    def push(self, samples: np.ndarray) -> None:
        """Append new 16 kHz mono samples."""
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        if samples.size == 0:
            return
        self.audio = np.concatenate([self.audio, samples])
        self.total += samples.size
        keep = self.window + self.n_fft + self.hop + self.max_lag  # enough for any window still to be asked for
        if self.audio.size > keep * 2:
            cut = self.audio.size - keep
            self.audio = self.audio[cut:]
            self.audio_start += cut

    def skip(self, n: int) -> None:
        """Advance the stream clock over ``n`` samples that were lost (a ring-buffer overrun).

        The audio held before the gap is forgotten and taken as silence, as at
        the start of a stream, so windows after the gap never mix audio from
        both sides of it with the wrong timing.
        """
        if n <= 0:
            return
        self.total += int(n)
        self.audio = np.zeros(self.window, dtype=np.float32)
        self.audio_start = self.total - self.window
        self.frames = self.frames[:, :0]

    def _slice(self, start: int, stop: int) -> np.ndarray:
        return self.audio[start - self.audio_start: stop - self.audio_start]

    @torch.inference_mode()
    def _frames_of_pieces(self, pieces: list[np.ndarray]) -> list[torch.Tensor]:
        """Log-Mel frames of several audio pieces with ONE call of the front end's layer.

        The pieces are laid end to end; each is a whole number of hops long, so
        frames start on every piece's boundary, and the few frames straddling
        two pieces are dropped.  (A batch of short rows would cost as much as
        a whole window: the convolution's per-row overhead dominates.)
        """
        x = torch.from_numpy(np.concatenate(pieces)).to(self.device)[None]
        frames = self.frontend.compress(self.frontend.power_frames(x))[0]  # (n_mels, n)
        out, offset = [], 0
        for piece in pieces:
            count = 1 + (piece.size - self.n_fft) // self.hop
            out.append(frames[:, offset // self.hop: offset // self.hop + count])
            offset += piece.size
        return out

    @torch.inference_mode()
    def window_features(self, end: int | None = None) -> torch.Tensor:
        """Log-Mel ``(1, 1, n_mels, frames)`` of the window ending at real sample ``end`` (default: newest)."""
        end_p = self.total if end is None else end + self.window
        start_p = end_p - self.window
        if start_p % self.hop:
            raise ValueError("windows must start on a frame boundary (hop a multiple of the frame hop)")
        if end_p > self.total or start_p < self.audio_start:
            raise ValueError(f"window [{start_p}, {end_p}) outside the audio held [{self.audio_start}, {self.total})")
        first = start_p // self.hop
        inner_lo, inner_hi = first + self.edge, first + self.n_frames - self.edge  # inner frames [lo, hi)
        # Cached inner frames still useful; everything else is computed in one batch below.
        cached_end = self.frames_start + self.frames.shape[1]
        if self.frames.shape[1] == 0 or cached_end <= inner_lo or self.frames_start > inner_lo:
            self.frames = self.frames[:, :0]
            self.frames_start = cached_end = inner_lo
        else:
            self.frames = self.frames[:, inner_lo - self.frames_start:]
            self.frames_start = inner_lo
        n_new = inner_hi - cached_end
        # The edge frames touch `span` window samples; with the padding that is a whole number of hops.
        span = (self.edge - 1) * self.hop + self.n_fft - self.half
        pad = np.zeros(self.half, dtype=np.float32)
        left = np.concatenate([pad, self._slice(start_p, start_p + span)])
        right = np.concatenate([self._slice(end_p - span, end_p), pad])
        pieces = [left, right]
        if n_new > 0:
            pieces.append(self._slice(cached_end * self.hop - self.half, (inner_hi - 1) * self.hop + self.half))
        computed = self._frames_of_pieces(pieces)
        if n_new > 0:
            self.frames = torch.cat([self.frames, computed[2]], dim=1)
        inner = self.frames[:, : inner_hi - inner_lo]
        out = torch.cat([computed[0], inner, computed[1]], dim=1)
        if out.shape[1] != self.n_frames:
            raise RuntimeError(f"streaming features produced {out.shape[1]} frames, expected {self.n_frames}")
        return out[None, None]
