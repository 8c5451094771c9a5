"""The ``_background_noise_`` files of a synthetic corpus: white, pink and brown noise, 50/60 Hz hum, and
babble made of sentences spoken by the corpus' engines (see :mod:`spotter.data.noise`)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from spotter.config import SAMPLE_RATE
from spotter.data import noise as noise_gen
from spotter.data.synth_clips import write_wav
from spotter.data.texts import BABBLE_SENTENCES
from spotter.data.tts.engines import engine_module

__all__ = ["babble_clips", "engines_babble", "write_noise"]

NOISE_PEAK_DBFS = -3.0


def babble_clips(engines: Sequence[str], seed: int, count: int = 16) -> list[np.ndarray]:
    """Synthesised sentences (16 kHz float) from random voices of the first of espeak, piper, festival and
    then the others among ``engines``, for babble noise; flite's only in a corpus of flite alone (an
    evaluation engine's voices never become training noise)."""
    rng = np.random.default_rng([seed, 0xBAB1E])
    preferred = [e for e in ("espeak", "piper", "festival") if e in engines]
    engine = (preferred + [e for e in engines if e not in preferred and e != "flite"] + ["flite"])[0]
    clips = engine_module(engine).babble(rng, BABBLE_SENTENCES, count)
    return [c for c in clips if len(c)]


def engines_babble(engines: Sequence[str], seconds: float, seed: int, talkers: int = 6,
                   sentences_per_engine: int = 24) -> np.ndarray:
    """Babble of ``talkers`` overlapped voices drawn from every one of ``engines`` (each saying
    ``sentences_per_engine`` keyword-free sentences), ``seconds`` long, unit RMS."""
    rng = np.random.default_rng([seed, 0xBAB1E])
    clips = [c for engine in engines
             for c in engine_module(engine).babble(rng, BABBLE_SENTENCES, sentences_per_engine) if len(c)]
    return noise_gen.babble(clips, int(round(seconds * SAMPLE_RATE)), rng, talkers=talkers)


def write_noise(noise_dir: Path, engines: Sequence[str], seed: int, seconds: float) -> list[str]:
    """Write the noise files of ``seconds`` each into ``noise_dir``; return their names."""
    n = int(round(seconds * SAMPLE_RATE))
    noise_dir.mkdir(parents=True, exist_ok=True)

    def rng(i: int) -> np.random.Generator:
        return np.random.default_rng([seed, 0x4015E, i])

    makers = {
        "white_noise.wav": lambda: noise_gen.white(n, rng(0)),
        "pink_noise.wav": lambda: noise_gen.pink(n, rng(1)),
        "brown_noise.wav": lambda: noise_gen.brown(n, rng(2)),
        "hum_50hz.wav": lambda: noise_gen.hum(n, SAMPLE_RATE, 50.0, rng(3)),
        "hum_60hz.wav": lambda: noise_gen.hum(n, SAMPLE_RATE, 60.0, rng(4)),
        "babble.wav": lambda: noise_gen.babble(babble_clips(engines, seed), n, rng(5)),
    }
    for name, make in makers.items():
        write_wav(noise_dir / name, noise_gen.to_peak(make(), NOISE_PEAK_DBFS))
    return list(makers)
