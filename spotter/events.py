"""What the engine tells the world: detections and posterior updates, as plain data.

Both are frozen dataclasses with a ``to_json()`` giving the one-line JSON
objects ``spotter listen --json`` prints; the UI subscribes to the same
objects.  Times are seconds of stream time from the first sample (file time
for a WAV replay).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Detection:
    """A keyword the detector accepted."""

    keyword: str
    confidence: float  # the detector's score when it fired: the smoothed posterior of the keyword, or of any keyword
    time: float  # stream time (s) of the end of the window that fired

    def to_dict(self) -> dict:
        return {"event": "detection", "keyword": self.keyword, "time": round(self.time, 3),
                "confidence": round(float(self.confidence), 4)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


@dataclass(frozen=True)
class PosteriorUpdate:
    """One hop's class probabilities (raw and smoothed) with the engine's health figures."""

    time: float
    labels: tuple[str, ...]
    probs: tuple[float, ...]
    smoothed: tuple[float, ...]
    level_dbfs: float  # RMS level of the newest hop of audio
    inference_ms: float  # features + model for this window
    dropped_windows: int = 0
    overflows: int = 0
    gated: bool = False  # the silence gate scored this hop as silence; the network did not run
    screened: bool = False  # an ensemble's first member alone gave ``probs`` (it ruled a keyword out)
    skipped: bool = False  # not scored (the windows on both sides ruled a keyword out): the hop before's ``probs``
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"event": "posteriors", "time": round(self.time, 3),
                "probs": {k: round(float(p), 4) for k, p in zip(self.labels, self.probs)},
                "smoothed": {k: round(float(p), 4) for k, p in zip(self.labels, self.smoothed)},
                "level_dbfs": round(self.level_dbfs, 1), "inference_ms": round(self.inference_ms, 2),
                "dropped_windows": self.dropped_windows, "overflows": self.overflows, "gated": self.gated,
                "screened": self.screened, "skipped": self.skipped}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())
