"""From an engine's raw output to 16 kHz float audio: reading its WAV bytes, resampling with a
vocal-tract shift, and trimming the silence around the speech.

Each clip is resampled to 16 kHz (``scipy.signal.resample_poly``) as if recorded at ``rate * tract``
(``tract`` = k / :data:`TRACT_STEPS`), then leading/trailing 10 ms frames more than :data:`TRIM_DB` dB
below the loudest are cut (weak final bursts and fricatives such as the p of "up" stay).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy.signal import resample_poly

from spotter.config import SAMPLE_RATE

from .errors import SynthError

__all__ = ["TRACT_STEPS", "TRIM_DB", "deal", "draw_tract", "parse_wav", "to_16k", "trim"]

TRACT_STEPS = 441             # tract factors are k / 441 (exact ratios with 22050 Hz)
TRIM_DB = 55.0               # trim frames this far below the loudest (keeps weak bursts and fricatives)


def draw_tract(rng: np.random.Generator, bounds: tuple[float, float]) -> int:
    """A random tract step k (factor k / :data:`TRACT_STEPS`) within the factor ``bounds``."""
    return int(rng.integers(round(TRACT_STEPS * bounds[0]), round(TRACT_STEPS * bounds[1]) + 1))


def deal(rng: np.random.Generator, n: int, count: int) -> list[int]:
    """``count`` indices into ``n`` choices (voices, families) in random rounds: each index repeats only
    once every one has been dealt."""
    order: list[int] = []
    while len(order) < count:
        order.extend(rng.permutation(n).tolist())
    return order[:count]


def parse_wav(data: bytes, source: str = "espeak-ng") -> tuple[np.ndarray, int]:
    """PCM16 mono WAV bytes (espeak-ng --stdout leaves the sizes unset) -> float64 array, rate."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise SynthError(f"{source} did not write a WAV file")
    pos, sr, bits, channels = 12, None, None, None
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        body = pos + 8
        if cid == b"fmt ":
            channels = int.from_bytes(data[body + 2:body + 4], "little")
            sr = int.from_bytes(data[body + 4:body + 8], "little")
            bits = int.from_bytes(data[body + 14:body + 16], "little")
            pos = body + size + (size & 1)
        elif cid == b"data":
            if sr is None or bits != 16 or channels != 1:
                raise SynthError(f"unexpected {source} WAV format: {channels} ch, {bits} bit")
            pcm = data[body:]
            pcm = pcm[:len(pcm) // 2 * 2]
            return np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0, sr
        else:
            pos = body + size + (size & 1)
    raise SynthError(f"{source} WAV output has no data chunk")


def to_16k(x: np.ndarray, sr: int, tract: float = 1.0) -> np.ndarray:
    """Resample ``x`` (at ``sr``) to 16 kHz, treating it as recorded at ``sr * tract``.

    ``tract`` > 1 raises pitch and formants (a smaller vocal tract) and speeds up.
    """
    src = int(round(sr * tract))
    ratio = Fraction(SAMPLE_RATE, src).limit_denominator(4000)
    if ratio == 1:
        return x.astype(np.float64)
    return resample_poly(x, ratio.numerator, ratio.denominator)


def trim(x: np.ndarray, floor_db: float = TRIM_DB, margin: float = 0.02) -> np.ndarray:
    """Cut leading/trailing stretches more than ``floor_db`` below the loudest 10 ms frame."""
    hop = SAMPLE_RATE // 100
    n_frames = len(x) // hop
    if n_frames == 0:
        return x
    frames = x[:n_frames * hop].reshape(n_frames, hop)
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    top = float(rms.max())
    if top <= 1e-9:
        return x[:0]
    loud = np.flatnonzero(rms > top * 10.0 ** (-floor_db / 20.0))
    pad = int(margin * SAMPLE_RATE)
    start = max(0, loud[0] * hop - pad)
    end = min(len(x), (loud[-1] + 1) * hop + pad)
    return x[start:end]
