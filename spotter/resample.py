"""Streaming rational-rate resampling: device rate in, 16 kHz out, chunk by chunk.

:class:`StreamResampler` is a stateful polyphase FIR resampler.  Its output,
concatenated over any chunking of the input, equals
``scipy.signal.upfirdn(h, x, up, down)`` of the whole signal (to float
rounding), where ``up/down = rate_out/rate_in`` in lowest terms and ``h`` is
the anti-aliasing filter ``scipy.signal.resample_poly`` designs (``firwin``,
Kaiser window with beta 5.0, ``half_len = 10 * max(up, down)``, gain ``up``).

Polyphase form: output sample ``n`` sits at upsampled position ``n * down``;
with ``phase = (n * down) % up`` and ``base = (n * down) // up`` it is
``y[n] = sum_j h[phase + j * up] * x[base - j]``.  ``h`` is stored as an
``(up, taps)`` matrix of its phases, and each chunk's outputs are one gather of
input samples and one row-wise dot product.  An output is produced as soon as
its newest input (``x[base]``) has arrived, so only ``taps - 1`` input samples
of history are kept; the filter's tail after the last input is never emitted,
and the output lags the input by :attr:`StreamResampler.delay_seconds`.
"""

from __future__ import annotations

import math

import numpy as np


def design_filter(up: int, down: int) -> np.ndarray:
    """The anti-aliasing FIR ``scipy.signal.resample_poly`` uses for ``up/down`` (in lowest terms)."""
    from scipy.signal import firwin  # here, not at the top: scipy.signal takes most of a second to import

    max_rate = max(up, down)
    half_len = 10 * max_rate
    return firwin(2 * half_len + 1, 1.0 / max_rate, window=("kaiser", 5.0)) * up


class StreamResampler:
    def __init__(self, rate_in: int, rate_out: int = 16000) -> None:
        if rate_in <= 0 or rate_out <= 0:
            raise ValueError(f"sample rates must be positive, got {rate_in} -> {rate_out}")
        g = math.gcd(int(rate_in), int(rate_out))
        self.rate_in, self.rate_out = int(rate_in), int(rate_out)
        self.up, self.down = self.rate_out // g, self.rate_in // g
        self.identity = self.up == self.down
        self.h = np.ones(1) if self.identity else design_filter(self.up, self.down)
        self.taps = -(-len(self.h) // self.up)  # taps per phase
        padded = np.zeros(self.up * self.taps)
        padded[: len(self.h)] = self.h
        self.phases = padded.reshape(self.taps, self.up).T  # phases[p, j] = h[p + j * up]
        self.reset()

    @property
    def delay_seconds(self) -> float:
        """Group delay of the filter: how far the output lags the input."""
        return (len(self.h) - 1) / 2 / (self.up * self.rate_in)

    def reset(self) -> None:
        """Forget all input: the next sample is treated as the first of a new stream."""
        self.history = np.zeros(self.taps - 1)  # the last taps-1 inputs, oldest first
        self.n_in = 0  # input samples consumed
        self.n_out = 0  # output samples produced

    def process(self, x: np.ndarray) -> np.ndarray:
        """Resample the next chunk (1-D float); returns the float32 outputs it completes."""
        x = np.asarray(x, dtype=np.float32).reshape(-1)
        if self.identity:
            return x.copy()
        n_in = self.n_in + x.size
        n_out = -(-n_in * self.up // self.down)  # outputs whose newest input has arrived
        n = np.arange(self.n_out, n_out)
        base = n * self.down // self.up
        phase = n * self.down - base * self.up
        ext = np.concatenate([self.history, x])  # ext[0] is input sample n_in_old - (taps - 1)
        gather = (base - (self.n_in - (self.taps - 1)))[:, None] - np.arange(self.taps)
        y = np.einsum("ij,ij->i", self.phases[phase], ext[gather])
        self.history = ext[ext.size - (self.taps - 1):]
        self.n_in, self.n_out = n_in, n_out
        return y.astype(np.float32)
