"""Shared test fixtures: real signals (tones, chirps, noise), never zeros."""

from __future__ import annotations

import signal

import numpy as np
import pytest
import torch

from spotter.config import SAMPLE_RATE

torch.set_num_threads(2)

# A shell starts a background job (`pytest ... &`) with SIGINT ignored, and the `spotter` processes the tests
# spawn would inherit that and never see the Ctrl-C the tests send them. Restore Python's handler here, so
# the children start with the default disposition whatever way the suite was launched.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def tone(freq: float, seconds: float = 1.0, amp: float = 0.5, sr: int = SAMPLE_RATE) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def chirp(f0: float, f1: float, seconds: float = 1.0, amp: float = 0.5, sr: int = SAMPLE_RATE) -> np.ndarray:
    from scipy.signal import chirp as scipy_chirp

    t = np.arange(int(seconds * sr)) / sr
    return (amp * scipy_chirp(t, f0=f0, t1=seconds, f1=f1, method="logarithmic")).astype(np.float32)


def noise(seconds: float = 1.0, amp: float = 0.1, seed: int = 0, sr: int = SAMPLE_RATE) -> np.ndarray:
    return (amp * np.random.default_rng(seed).standard_normal(int(seconds * sr))).astype(np.float32)


def mixed_signal() -> np.ndarray:
    """3.35 s of quiet noise, a chirp, a tone, loud noise and a tone in noise: a stream with every kind of change."""
    parts = [noise(0.7, amp=0.02, seed=3), chirp(200, 6000, 0.8), tone(700, 0.5, amp=0.3), noise(0.9, amp=0.2, seed=4),
             tone(2500, 0.45, amp=0.6) + noise(0.45, amp=0.05, seed=5)]
    return np.concatenate(parts).astype(np.float32)


@pytest.fixture
def signals() -> dict[str, np.ndarray]:
    return {
        "tone_440": tone(440.0),
        "tone_3k": tone(3000.0, amp=0.2),
        "chirp": chirp(100.0, 7000.0),
        "noise": noise(),
        "tone_plus_noise": tone(1000.0) + noise(amp=0.01, seed=1),
    }
