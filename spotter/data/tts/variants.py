"""Voices made of an engine's named speakers at settings drawn from ranges (pico, mbrola, rhvoice): the
deterministic voice specs of a corpus manifest and babble of random such voices."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .audio import TRACT_STEPS, deal, draw_tract, to_16k, trim

__all__ = ["babble_of", "draw_variants"]

#: run(text, speaker name, **settings) -> (audio, rate)
Run = Callable[..., tuple[np.ndarray, int]]


def draw_variants(rng: np.random.Generator, count: int, used: set[str], engine: str, names: Sequence[str],
                  ranges: dict[str, tuple[int, int]], tags: dict[str, str],
                  tract: tuple[float, float]) -> list[dict]:
    """``count`` voice specs of ``engine`` (speaker ids not in ``used``, which gains them): ``names`` in
    random rounds, each setting of ``ranges`` an integer drawn in its range (both ends included), then a
    vocal-tract step. Speaker ids: ``<engine>-<name>-<tag><value>...-t<tract>``."""
    voices = []
    for i in deal(rng, len(names), count):
        name = names[i]
        while True:
            settings = {key: int(rng.integers(lo, hi + 1)) for key, (lo, hi) in ranges.items()}
            step = draw_tract(rng, tract)
            speaker = "-".join([engine, name.lower().replace("-", ""),
                                *(f"{tags[key]}{value}" for key, value in settings.items()), f"t{step}"])
            if speaker not in used:
                break
        voices.append({"speaker": speaker, "engine": engine, "params": {"voice": name, **settings, "tract": step}})
        used.add(speaker)
    return voices


def babble_of(run: Run, rng: np.random.Generator, sentences: Sequence[str], count: int, names: Sequence[str],
              ranges: dict[str, tuple[int, int]], tract: tuple[float, float]) -> list[np.ndarray]:
    """``count`` of ``sentences`` (in turn) said by random voices (a name, settings, a tract): 16 kHz, trimmed."""
    out = []
    for i in range(count):
        name = names[int(rng.integers(len(names)))]
        settings = {key: int(rng.integers(lo, hi)) for key, (lo, hi) in ranges.items()}
        audio, sr = run(sentences[i % len(sentences)], name, **settings)
        out.append(trim(to_16k(audio, sr, draw_tract(rng, tract) / TRACT_STEPS)))
    return out
