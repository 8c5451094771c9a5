"""The silence gate: in a quiet room the network is not run at all.

A keyword spotter listens all day and most of the day nothing is said. The gate follows the
room's noise floor and lets the network score a window only when something in the window rises
above it; otherwise the hop scores as silence (:meth:`SilenceGate.silence`) and costs a few
microseconds instead of a forward pass.

* **Levels** are those of 20 ms blocks of the 1 s window (mean square, dBFS): short enough that
  the loudest syllable of a word stands out of steady noise, long enough that steady noise reads
  steady (about +-0.5 dB from block to block for white noise).
* **The noise floor** falls at once to the quietest block of each new hop and rises slowly
  (``rise_db_per_s``) when the room gets louder, so a word never lifts it, a fan that starts does
  within seconds.
* **Open** when the window's loudest block is ``margin_db`` above the floor (or the floor is not
  known yet, for the first second): then the network runs. Steady noise keeps the gate shut;
  speech, even quiet speech (a keyword at -40 dBFS in a room at -70), opens it; babble keeps it
  open, which costs time but never a detection.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import SAMPLE_RATE

BLOCK_SAMPLES = SAMPLE_RATE // 50  # 20 ms
FLOOR_DB = -120.0  # digital silence reads as this (log of zero)


@dataclass(frozen=True)
class GateConfig:
    margin_db: float = 8.0  # the window's loudest block must be this far above the noise floor to open the gate
    rise_db_per_s: float = 3.0  # how fast the floor follows a room that gets louder

    def __post_init__(self) -> None:
        if not self.margin_db > 0 or not self.rise_db_per_s > 0:
            raise ValueError("the silence gate's margin_db and rise_db_per_s must be positive")


def block_levels_db(audio: np.ndarray) -> np.ndarray:
    """Mean-square level (dBFS, full scale = 1.0) of each whole 20 ms block of ``audio``."""
    n = audio.size // BLOCK_SAMPLES * BLOCK_SAMPLES
    blocks = np.asarray(audio[audio.size - n:], dtype=np.float32).reshape(-1, BLOCK_SAMPLES)
    power = np.einsum("ij,ij->i", blocks, blocks, dtype=np.float64)
    power /= BLOCK_SAMPLES
    np.log10(np.maximum(power, 1e-30, out=power), out=power)
    power *= 10.0
    return np.maximum(power, FLOOR_DB, out=power)


class SilenceGate:
    """Decides, window by window, whether the network needs to run. It keeps the levels of the window's
    blocks (``window_samples``, the model's window), so each hop costs the levels of its own few blocks."""

    def __init__(self, config: GateConfig | None = None, window_samples: int = SAMPLE_RATE) -> None:
        self.config = config or GateConfig()
        self.levels = np.full(window_samples // BLOCK_SAMPLES, FLOOR_DB)  # the window's blocks, oldest first
        self._pending = np.zeros(0, dtype=np.float32)  # samples of a block not complete yet
        self.floor_db: float | None = None
        self.seen = 0  # real samples the floor has followed

    def update(self, new: np.ndarray) -> bool:
        """Follow the floor over the window's newest samples ``new``; True when the network should
        score this window (the gate is open)."""
        audio = np.concatenate([self._pending, np.asarray(new, dtype=np.float32)]) if self._pending.size else new
        whole = audio.size // BLOCK_SAMPLES * BLOCK_SAMPLES
        if whole < audio.size or self._pending.size:
            self._pending = np.array(audio[whole:], dtype=np.float32)
        if whole:
            fresh = block_levels_db(audio[:whole])[-self.levels.size:]
            self.levels = np.concatenate([self.levels[fresh.size:], fresh])
            if self.floor_db is None:
                self.floor_db = float(fresh.min())
            else:
                risen = self.floor_db + self.config.rise_db_per_s * fresh.size * BLOCK_SAMPLES / SAMPLE_RATE
                self.floor_db = min(risen, float(fresh.min()))
        self.seen += int(np.asarray(new).size)
        if self.floor_db is None or self.seen < self.levels.size * BLOCK_SAMPLES:
            return True  # the floor has not followed a whole window yet
        return float(self.levels.max()) >= self.floor_db + self.config.margin_db

    @staticmethod
    def silence(labels: tuple[str, ...]) -> np.ndarray:
        """The probabilities a gated hop scores: all on ``silence``."""
        probs = np.zeros(len(labels), dtype=np.float32)
        probs[labels.index("silence")] = 1.0
        return probs
