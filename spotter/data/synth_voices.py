"""Which voices a synthetic corpus gets: how many per engine, their deterministic specs, and which
split (training, validation, testing) each whole voice goes to."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from spotter.data.tts import festival
from spotter.data.tts.engines import engine_module

__all__ = ["assign_splits", "make_voices", "split_counts"]


def split_counts(n_per_engine: dict[str, float], total: int) -> dict[str, int]:
    """``total`` voices shared among the engines in proportion to their weights (largest remainders),
    every engine getting at least one when there are enough."""
    weights = {e: float(w) for e, w in n_per_engine.items()}
    s = sum(weights.values())
    exact = {e: total * w / s for e, w in weights.items()}
    counts = {e: int(math.floor(v)) for e, v in exact.items()}
    for e in sorted(exact, key=lambda e: (counts[e] - exact[e], list(exact).index(e)))[:total - sum(counts.values())]:
        counts[e] += 1
    # every engine asked for gets at least one voice when there are enough
    if total >= len(counts):
        for e in counts:
            if counts[e] == 0:
                donor = max(counts, key=lambda k: counts[k])
                counts[donor] -= 1
                counts[e] += 1
    return counts


def make_voices(n_per_engine: dict[str, int], seed: int,
                festival_voices: Sequence[str] = festival.FESTIVAL_DEFAULT_VOICES) -> list[dict]:
    """Deterministic voice specs, engine after engine; speaker ids unique and underscore-free."""
    voices: list[dict] = []
    used: set[str] = set()
    for e_index, (engine, count) in enumerate(n_per_engine.items()):
        rng = np.random.default_rng([seed, 0x701CE, e_index])
        if not count:
            continue
        if engine == "festival":
            voices += festival.draw_voices(rng, count, used, festival_voices)
        else:
            voices += engine_module(engine).draw_voices(rng, count, used)
    return voices


def assign_splits(voices: list[dict], holdout_fraction: float, seed: int) -> None:
    """Give each voice a split; engines are spread evenly over the splits."""
    n = len(voices)
    n_hold = 0
    if holdout_fraction > 0 and n >= 3:
        n_hold = min(max(1, round(holdout_fraction * n)), (n - 1) // 2)
    rng = np.random.default_rng([seed, 0x5B117])
    keyed = []
    engines = list(dict.fromkeys(v["engine"] for v in voices))
    for e_index, engine in enumerate(engines):
        members = [i for i, v in enumerate(voices) if v["engine"] == engine]
        for rank, pos in enumerate(rng.permutation(len(members))):
            keyed.append(((rank + 0.5) / len(members), e_index, members[pos]))
    keyed.sort()
    for order, (_, _, i) in enumerate(keyed):
        voices[i]["split"] = ("validation" if order < n_hold else
                              "testing" if order < 2 * n_hold else "training")
