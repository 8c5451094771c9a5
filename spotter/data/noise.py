"""Background-noise generators (pure numpy/scipy), for the synthetic corpus and for augmentation.

Every generator returns a ``float32`` array of exactly ``n`` samples, zero mean and
unit RMS, so a caller mixes it at a chosen SNR by scaling only; :func:`to_peak`
rescales to a peak level in dBFS for writing a file.

* :func:`white` - flat spectrum.
* :func:`pink` - power falls 3 dB per octave (1/f) above ``fmin``.
* :func:`brown` - power falls 6 dB per octave (1/f^2, "red"/Brownian) above ``fmin``.
* :func:`hum` - mains hum: a fundamental (50 or 60 Hz) plus decaying harmonics,
  odd ones stronger (transformer buzz), a slow wobble in level and a faint
  noise floor.
* :func:`babble` - several "talkers" made of the given speech clips, laid end to
  end with random gaps at random offsets and summed.

pink and brown are shaped in the frequency domain (exact slopes, no filter
start-up transient); below ``fmin`` (20 Hz by default) the spectrum is flat so
sub-audible drift does not swamp the audible band, and the DC bin is zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from spotter.config import SAMPLE_RATE

__all__ = ["white", "pink", "brown", "hum", "babble", "to_peak", "unit_rms"]


def unit_rms(x: np.ndarray) -> np.ndarray:
    """``x`` minus its mean, scaled to RMS 1 (all zeros stay zeros), as float32."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return x.astype(np.float32)
    x = x - x.mean()
    rms = float(np.sqrt(np.mean(x * x)))
    if rms < 1e-12:
        return np.zeros(x.shape, dtype=np.float32)
    return (x / rms).astype(np.float32)


def to_peak(x: np.ndarray, dbfs: float = -3.0) -> np.ndarray:
    """``x`` scaled so its largest absolute sample is ``dbfs`` dB re full scale (1.0)."""
    x = np.asarray(x, dtype=np.float64)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak < 1e-12:
        return np.zeros(x.shape, dtype=np.float32)
    return (x * (10.0 ** (dbfs / 20.0) / peak)).astype(np.float32)


def _check_n(n: int) -> int:
    n = int(n)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return n


def white(n: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian white noise, ``n`` samples, unit RMS."""
    n = _check_n(n)
    return unit_rms(rng.standard_normal(n))


def _power_law(n: int, rng: np.random.Generator, exponent: float, sr: int, fmin: float) -> np.ndarray:
    """Gaussian noise whose power spectrum goes as ``f ** -exponent`` above ``fmin``."""
    n = _check_n(n)
    if n < 2:
        return np.zeros(n, dtype=np.float32)
    spectrum = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    freqs = np.fft.rfftfreq(n, d=1.0 / sr)
    floor = max(float(fmin), float(freqs[1]))
    scale = np.maximum(freqs, floor) ** (-exponent / 2.0)  # amplitude ~ f^(-exponent/2)
    scale[0] = 0.0
    return unit_rms(np.fft.irfft(spectrum * scale, n=n))


def pink(n: int, rng: np.random.Generator, sr: int = SAMPLE_RATE, fmin: float = 20.0) -> np.ndarray:
    """Pink (1/f) noise: -3 dB per octave above ``fmin`` Hz, ``n`` samples, unit RMS."""
    return _power_law(n, rng, 1.0, sr, fmin)


def brown(n: int, rng: np.random.Generator, sr: int = SAMPLE_RATE, fmin: float = 20.0) -> np.ndarray:
    """Brown (1/f^2) noise: -6 dB per octave above ``fmin`` Hz, ``n`` samples, unit RMS."""
    return _power_law(n, rng, 2.0, sr, fmin)


def hum(n: int, sr: int, freq: float, rng: np.random.Generator, harmonics: int = 12,
        noise_floor_db: float = -45.0) -> np.ndarray:
    """Mains hum at ``freq`` Hz (50 or 60) with harmonics, ``n`` samples at ``sr``, unit RMS.

    The fundamental is the strongest component; harmonic ``k`` has a random level
    that falls roughly as 1/k (odd harmonics a little stronger, as in the buzz of
    a transformer or a badly earthed cable), a random phase, and the whole hum
    wobbles slowly in level. A white floor ``noise_floor_db`` below the hum keeps
    it from being digitally pure.
    """
    n = _check_n(n)
    if freq <= 0 or freq >= sr / 2:
        raise ValueError(f"hum frequency must be in (0, {sr / 2}) Hz, got {freq}")
    t = np.arange(n, dtype=np.float64) / sr
    x = np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
    for k in range(2, harmonics + 1):
        if k * freq >= sr / 2:
            break
        level = rng.uniform(0.15, 0.5) / k * (1.6 if k % 2 else 1.0)
        x += level * np.sin(2 * np.pi * k * freq * t + rng.uniform(0, 2 * np.pi))
    wobble_hz = rng.uniform(0.05, 0.5)
    x *= 1.0 + 0.15 * np.sin(2 * np.pi * wobble_hz * t + rng.uniform(0, 2 * np.pi))
    x = unit_rms(x).astype(np.float64)
    x += 10.0 ** (noise_floor_db / 20.0) * rng.standard_normal(n)
    return unit_rms(x)


def babble(clips: Sequence[np.ndarray], n: int, rng: np.random.Generator, talkers: int = 6,
           max_gap: float = 0.6, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Speech babble: ``talkers`` streams of the given clips overlapped, ``n`` samples, unit RMS.

    Each stream starts at a random offset and strings randomly chosen ``clips``
    (1-D float arrays at ``sr``, e.g. synthesised sentences) end to end with
    random gaps of up to ``max_gap`` seconds and a random gain of +-6 dB; the
    streams are summed. With a handful of talkers no single voice stays
    intelligible for long, which is what babble noise is for.
    """
    n = _check_n(n)
    usable = [np.asarray(c, dtype=np.float64) for c in clips if np.asarray(c).size > 0]
    if not usable:
        raise ValueError("babble needs at least one non-empty clip")
    usable = [unit_rms(c).astype(np.float64) for c in usable]
    out = np.zeros(n, dtype=np.float64)
    max_gap_samples = max(1, int(max_gap * sr))
    for _ in range(max(1, int(talkers))):
        pos = -int(rng.integers(0, max(1, max(len(c) for c in usable))))  # start mid-utterance
        while pos < n:
            clip = usable[int(rng.integers(len(usable)))] * 10.0 ** (rng.uniform(-6.0, 6.0) / 20.0)
            start, end = max(pos, 0), min(pos + len(clip), n)
            if end > start:
                out[start:end] += clip[start - pos:end - pos]
            pos += len(clip) + int(rng.integers(0, max_gap_samples))
    return unit_rms(out)
