"""Choosing the detector's settings on data: replay the detector over stored posteriors.

The model's per-hop posteriors of a stream do not depend on the detector, so a
stream is scored once (:func:`stream_posteriors`) and every candidate
:class:`~spotter.detector.DetectorConfig` is then replayed over the stored
posteriors (:func:`detections_of`), which costs milliseconds, not a model
run.  :func:`grid_search` scores each candidate on keyword streams (recall)
and on keyword-free speech (false alarms per hour) and ranks them: the best
is the one with the highest recall among those within the false-alarm
budget.  ``scripts/tune_detector.py`` is the command-line front of this.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .detector import Detector, DetectorConfig
from .events import PosteriorUpdate
from .pipeline import EngineConfig, replay_file
from .streameval import LabelEvent, read_labels, score_stream


@dataclass
class StreamPosteriors:
    """A stream's per-hop model output and its labels."""

    name: str
    times: np.ndarray  # (hops,) stream time of each window's end
    probs: np.ndarray  # (hops, classes)
    labels: list[LabelEvent]
    duration_s: float


def stream_posteriors(model, wav: str | Path, hop_ms: float = 100.0) -> StreamPosteriors:
    """Run the model once over a stream (WAV + its ``.csv`` labels beside it)."""
    events, summary = replay_file(model, wav, EngineConfig(hop_ms=hop_ms))
    updates = [e for e in events if isinstance(e, PosteriorUpdate)]
    return StreamPosteriors(Path(wav).name, np.array([u.time for u in updates]), np.array([u.probs for u in updates]),
                            read_labels(Path(wav).with_suffix(".csv")), summary["seconds"])


def detections_of(stream: StreamPosteriors, labels: Sequence[str], config: DetectorConfig) -> list:
    detector = Detector(labels, config)
    found = []
    for t, p in zip(stream.times, stream.probs):
        found += detector.update(float(t), p)[1]
    return found


def candidates(thresholds: Iterable[float], smoothing: Iterable[int], min_counts: Iterable[int],
               refractory: Iterable[float]) -> list[DetectorConfig]:
    return [DetectorConfig(threshold=t, smoothing_hops=s, min_count=m, refractory_s=r)
            for t, s, m, r in itertools.product(thresholds, smoothing, min_counts, refractory) if m <= s + 2]


def grid_search(streams: Sequence[StreamPosteriors], labels: Sequence[str], configs: Sequence[DetectorConfig],
                tolerance_s: float = 0.75, max_fa_per_hour: float = 2.0) -> list[dict]:
    """One row per config: recall over all keyword utterances, false alarms per hour over all audio.

    Rows are sorted best first: within the false-alarm budget by recall, then the rest by false alarms.
    """
    rows = []
    for config in configs:
        matched = keywords = false_alarms = 0
        seconds = 0.0
        latencies: list[float] = []
        for stream in streams:
            dets = detections_of(stream, labels, config)
            score = score_stream(dets, stream.labels, stream.duration_s, tolerance_s=tolerance_s)
            matched += score.matched
            keywords += score.keywords
            false_alarms += score.false_alarms
            seconds += stream.duration_s
            latencies += score.latencies_s
        rows.append({"config": config, "recall": matched / keywords if keywords else None,
                     "false_alarms": false_alarms, "fa_per_hour": false_alarms / (seconds / 3600),
                     "latency_mean_s": float(np.mean(latencies)) if latencies else None,
                     "latency_median_s": float(np.median(latencies)) if latencies else None})
    within = [r for r in rows if r["fa_per_hour"] <= max_fa_per_hour]
    within.sort(key=lambda r: (-(r["recall"] or 0), r["fa_per_hour"], r["latency_mean_s"] or 0))
    beyond = sorted((r for r in rows if r["fa_per_hour"] > max_fa_per_hour), key=lambda r: r["fa_per_hour"])
    return within + beyond


def describe(config: DetectorConfig) -> str:
    return (f"threshold {config.threshold:.2f}, smoothing {config.smoothing_hops} hops, "
            f"min count {config.min_count}, refractory {config.refractory_s:g} s")


__all__ = ["StreamPosteriors", "stream_posteriors", "detections_of", "candidates", "grid_search", "describe"]
