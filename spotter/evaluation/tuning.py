"""Choosing the detector's settings on data: replay the detector over stored posteriors.

The model's per-hop posteriors of a stream do not depend on the detector, so a
stream is scored once (:func:`stream_posteriors`) and every candidate
:class:`~spotter.detector.DetectorConfig` is then replayed over the stored
posteriors (:func:`detections_of`), which costs milliseconds, not a model
run.  :func:`grid_search` scores each candidate on keyword streams (recall)
and on keyword-free speech (false alarms per hour) and ranks them: the best
is the one with the highest recall among those within the false-alarm
budget.  ``spotter tune`` is the command-line front of this (:func:`tune`).
"""

from __future__ import annotations

import hashlib
import itertools
import pickle
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..compute import float32_convolutions
from ..config import SAMPLE_RATE, TUNE_OBJECTIVES, keywords_of
from ..data.labels import LabelEvent, read_labels
from ..detector import SCORES, DetectorConfig, detect_offline
from ..events import PosteriorUpdate
from ..pipeline import EngineConfig, replay_file
from .streams import score_stream


@dataclass
class StreamPosteriors:
    """A stream's per-hop model output and its labels."""

    name: str
    times: np.ndarray  # (hops,) stream time of each window's end
    probs: np.ndarray  # (hops, classes)
    labels: list[LabelEvent]
    duration_s: float


def stream_posteriors(model, wav: str | Path, hop_ms: float = 100.0, batched: bool = False,
                      batch_size: int = 256) -> StreamPosteriors:
    """Run the model once over a stream (WAV + its ``.csv`` labels beside it).

    By default through the streaming engine, exactly as ``listen --wav`` runs. ``batched=True``
    scores the same windows (ending every hop, the first ones zero-padded on the left as the
    engine pads them) offline in batches: several times faster for long streams, and equal to
    the engine's posteriors to float precision (streaming features equal offline ones, see
    tests/test_tuning.py). Batches run on the model's device, in float32 (not TF32) on a GPU."""
    labels = read_labels(Path(wav).with_suffix(".csv"))
    if not batched:
        events, summary = replay_file(model, wav, EngineConfig(hop_ms=hop_ms, screen=False, guard=False))  # all members: re-scored
        updates = [e for e in events if isinstance(e, PosteriorUpdate)]
        return StreamPosteriors(Path(wav).name, np.array([u.time for u in updates]),
                                np.array([u.probs for u in updates]), labels, summary["seconds"])
    import soundfile as sf
    import torch

    audio, rate = sf.read(str(wav), dtype="float32", always_2d=True)
    if rate != SAMPLE_RATE:
        raise ValueError(f"{wav}: {rate} Hz; batched scoring needs {SAMPLE_RATE} Hz (the engine resamples: use batched=False)")
    audio = audio.mean(axis=1)
    hop = int(round(hop_ms * SAMPLE_RATE / 1000))
    window = model.frontend.config.window_samples
    padded = np.concatenate([np.zeros(window, dtype=np.float32), audio])
    ends = np.arange(hop, audio.size + 1, hop)
    windows = np.lib.stride_tricks.sliding_window_view(padded, window)[ends]
    probs = []
    model = model.eval()
    device = next(model.parameters()).device  # batches go where the model is (a GPU scores hours in seconds)
    with torch.inference_mode(), float32_convolutions():
        for i in range(0, len(ends), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(windows[i:i + batch_size])).to(device)
            probs.append(torch.softmax(model(batch).float(), dim=-1).cpu().numpy())
    return StreamPosteriors(Path(wav).name, ends / SAMPLE_RATE, np.concatenate(probs), labels, audio.size / SAMPLE_RATE)


def detections_of(stream: StreamPosteriors, labels: Sequence[str], config: DetectorConfig) -> list:
    """What the detector fires over a stream's stored posteriors (the same as feeding a
    :class:`~spotter.detector.Detector` hop by hop, computed at once: :func:`~spotter.detector.detect_offline`)."""
    return detect_offline(labels, config, stream.times, stream.probs)


def candidates(thresholds: Iterable[float], smoothing: Iterable[int], min_counts: Iterable[int],
               refractory: Iterable[float], scores: Iterable[str] = ("class",)) -> list[DetectorConfig]:
    return [DetectorConfig(threshold=t, smoothing_hops=s, min_count=m, refractory_s=r, score=c)
            for c, t, s, m, r in itertools.product(scores, thresholds, smoothing, min_counts, refractory)
            if m <= s + 2]


def _rank(row: dict, objective: str) -> tuple:
    """Sort key of a row within the budget: best first by ``objective``, then pooled recall, fewer false
    alarms, lower latency."""
    first = row["worst_recall"] if objective == "worst-stream" else row["recall"]
    return -(first or 0), -(row["recall"] or 0), row["fa_per_hour"], row["latency_mean_s"] or 0


def grid_search(streams: Sequence[StreamPosteriors], labels: Sequence[str], configs: Sequence[DetectorConfig],
                tolerance_s: float = 0.75, max_fa_per_hour: float = 2.0, objective: str = "pooled") -> list[dict]:
    """One row per config: recall over all keyword utterances, false alarms per hour over all audio,
    keywords detected as another keyword (``wrong``), and the lowest recall of a stream with keywords
    (``worst_recall``, on ``worst_stream``).

    Rows are sorted best first: within the false-alarm budget by ``objective`` (``TUNE_OBJECTIVES``; ties
    by pooled recall), then the rest by false alarms.
    """
    if objective not in TUNE_OBJECTIVES:
        raise ValueError(f"objective {objective!r}: one of {', '.join(TUNE_OBJECTIVES)}")
    rows = []
    for config in configs:
        matched = keywords = false_alarms = wrong = 0
        seconds = 0.0
        latencies: list[float] = []
        per_stream: list[tuple[float, str]] = []  # (recall, name) of each stream with keywords
        for stream in streams:
            dets = detections_of(stream, labels, config)
            score = score_stream(dets, stream.labels, stream.duration_s, tolerance_s=tolerance_s,
                                 keywords=keywords_of(labels))
            matched += score.matched
            keywords += score.keywords
            false_alarms += score.false_alarms
            wrong += score.wrong
            seconds += stream.duration_s
            latencies += score.latencies_s
            if score.keywords:
                per_stream.append((score.matched / score.keywords, stream.name))
        worst_recall, worst_stream = min(per_stream) if per_stream else (None, None)
        rows.append({"config": config, "recall": matched / keywords if keywords else None,
                     "worst_recall": worst_recall, "worst_stream": worst_stream,
                     "false_alarms": false_alarms, "fa_per_hour": false_alarms / (seconds / 3600), "wrong": wrong,
                     "latency_mean_s": float(np.mean(latencies)) if latencies else None,
                     "latency_median_s": float(np.median(latencies)) if latencies else None})
    within = [r for r in rows if r["fa_per_hour"] <= max_fa_per_hour]
    within.sort(key=lambda r: _rank(r, objective))
    beyond = sorted((r for r in rows if r["fa_per_hour"] > max_fa_per_hour), key=lambda r: r["fa_per_hour"])
    return within + beyond


def keyword_thresholds(streams: Sequence[StreamPosteriors], labels: Sequence[str], base: DetectorConfig,
                       grid: Iterable[float], tolerance_s: float = 0.75, max_fa_per_hour: float = 2.0,
                       keywords: Sequence[str] | None = None, margin_steps: int = 0) -> DetectorConfig:
    """``base`` with one threshold per keyword: the most keyword hits within the false-alarm budget.

    A keyword's detections depend on its own threshold only (the detector follows the top class;
    only the refractory period couples keywords), so each threshold of ``grid`` is replayed once
    and its detections are split by keyword: hits and errors (false alarms and wrong-keyword
    detections) per keyword and threshold. A knapsack over keywords then picks the thresholds
    with the most hits whose errors stay within ``max_fa_per_hour`` of all the streams' audio;
    among equal choices it keeps the higher thresholds. ``margin_steps`` charges each threshold the
    errors of the one that many grid steps below it: false alarms on speech are rare events, and a
    threshold just above the validation speech's highest score is below some unseen speech's (on
    the shipped model, thresholds chosen without a margin kept 1.3 false alarms per hour on
    validation and gave 8 in an hour of test speech).
    """
    keywords = keywords_of(labels) if keywords is None else keywords
    grid = sorted(set(float(t) for t in grid), reverse=True)
    hours = sum(s.duration_s for s in streams) / 3600
    budget = int(np.floor(max_fa_per_hour * hours + 1e-9))
    hits = {k: [0] * len(grid) for k in keywords}
    errors = {k: [0] * len(grid) for k in keywords}
    for i, t in enumerate(grid):
        config = replace(base, threshold=t, thresholds={})
        for stream in streams:
            found = detections_of(stream, labels, config)
            for k in keywords:
                score = score_stream([d for d in found if d.keyword == k], stream.labels, stream.duration_s,
                                     tolerance_s=tolerance_s, keywords=keywords)
                hits[k][i] += round(score.per_keyword_recall.get(k, 0.0) * score.per_keyword_total.get(k, 0))
                errors[k][i] += score.false_alarms + score.wrong
    if margin_steps:  # a threshold costs the errors of the one margin_steps below it: room for unseen speech
        errors = {k: [e[min(i + margin_steps, len(grid) - 1)] for i in range(len(grid))] for k, e in errors.items()}
    budget = max(budget, sum(min(e) for e in errors.values()))  # never worse than each keyword's fewest errors
    # best[b] = (hits, thresholds chosen so far) using at most b errors
    best = [(0, ()) for _ in range(budget + 1)]
    for k in keywords:
        nxt: list[tuple[int, tuple[int, ...]] | None] = [None] * (budget + 1)
        for b in range(budget + 1):
            for i in range(len(grid)):
                cost = errors[k][i]
                if cost > b or best[b - cost] is None:
                    continue
                total, chosen = best[b - cost]
                cand = (total + hits[k][i], chosen + (i,))
                # more hits first; then higher thresholds (smaller grid indices) for equal hits
                if nxt[b] is None or (cand[0], [-j for j in cand[1]]) > (nxt[b][0], [-j for j in nxt[b][1]]):
                    nxt[b] = cand
        best = nxt
    _, chosen = max((c for c in best if c is not None), key=lambda c: (c[0], [-j for j in c[1]]))
    thresholds = {k: grid[i] for k, i in zip(keywords, chosen)}
    return replace(base, threshold=max(thresholds.values()), thresholds=thresholds)


__all__ = ["StreamPosteriors", "stream_posteriors", "detections_of", "candidates", "grid_search", "keyword_thresholds"]


# What `spotter tune` searches: 2 scores x 15 thresholds x 5 smoothing windows x 3 minimum counts = 450.
SCORE_GRID = SCORES
THRESHOLD_GRID = (0.5, 0.6, 0.7, 0.8, 0.85, 0.88, 0.9, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99)
SMOOTHING_GRID = (1, 2, 3, 4, 5)
MIN_COUNT_GRID = (1, 2, 3)
#: The thresholds one keyword may get with ``--per-keyword``.
KEYWORD_GRID = (0.7, 0.75, 0.8, 0.85, 0.88, 0.9, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99, 0.995)


def checkpoint_key(path: str | Path, model) -> str:
    """A name for a model's cached posteriors: its checkpoint's file name and a digest of its weights.
    A checkpoint retrained in place never reuses the posteriors of its old weights; the same weights
    share them under any path, relative or absolute, and after `spotter tune --save` rewrote the file."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return f"{Path(path).stem}-{digest.hexdigest()[:12]}"


def cached_posteriors(model, wav: str | Path, folder: str | Path | None = None, key: str = "model",
                      batched: bool = True) -> StreamPosteriors:
    """:func:`stream_posteriors`, kept in ``folder`` as ``<key>-<stream>.pkl`` when a folder is given and
    reused while it is newer than the WAV (``key`` names the model, so two models never share a file)."""
    if not folder:
        return stream_posteriors(model, wav, batched=batched)
    path = Path(folder) / f"{key}-{Path(wav).stem}.pkl"
    if path.is_file() and path.stat().st_mtime > Path(wav).stat().st_mtime:
        with open(path, "rb") as f:
            return pickle.load(f)
    path.parent.mkdir(parents=True, exist_ok=True)
    result = stream_posteriors(model, wav, batched=batched)
    with open(path, "wb") as f:
        pickle.dump(result, f)
    return result


@dataclass
class TuneResult:
    """What :func:`tune` found: every global setting scored, best first, and (with per-keyword
    thresholds) the best per-keyword row of each smoothing / minimum count."""

    settings: int
    hours: float
    rows: list[dict]
    per_keyword_rows: list[dict]

    @property
    def best(self) -> DetectorConfig | None:
        """The setting to use: the best per-keyword row when there is one, else the best global row."""
        ranked = self.per_keyword_rows or self.rows
        return ranked[0]["config"] if ranked else None


def tune(streams: Sequence[StreamPosteriors], labels: Sequence[str], max_fa_per_hour: float = 2.0,
         tolerance_s: float = 0.75, max_latency_s: float | None = None, per_keyword: bool = False,
         margin_steps: int = 2, objective: str = "pooled") -> TuneResult:
    """Search the detector grid (:data:`THRESHOLD_GRID` x :data:`SMOOTHING_GRID` x :data:`MIN_COUNT_GRID` x
    both scores) on ``streams``: the highest recall (pooled, or of the worst keyword stream: ``objective``)
    within ``max_fa_per_hour`` (and, when given, a median latency of at most ``max_latency_s``) first.
    ``per_keyword`` then gives each keyword its own threshold from :data:`KEYWORD_GRID` for every score /
    smoothing / minimum count (:func:`keyword_thresholds`)."""
    configs = candidates(thresholds=THRESHOLD_GRID, smoothing=SMOOTHING_GRID, min_counts=MIN_COUNT_GRID,
                         refractory=(1.0,), scores=SCORE_GRID)

    def fast_enough(row: dict) -> bool:
        return max_latency_s is None or (row["latency_median_s"] is not None
                                         and row["latency_median_s"] <= max_latency_s)

    rows = [r for r in grid_search(streams, labels, configs, tolerance_s, max_fa_per_hour, objective)
            if fast_enough(r)]
    tuned_rows = []
    if per_keyword:
        for score, smoothing, min_count in sorted({(c.score, c.smoothing_hops, c.min_count) for c in configs}):
            base = DetectorConfig(smoothing_hops=smoothing, min_count=min_count, refractory_s=1.0, score=score)
            tuned = keyword_thresholds(streams, labels, base, grid=KEYWORD_GRID, tolerance_s=tolerance_s,
                                       max_fa_per_hour=max_fa_per_hour, margin_steps=margin_steps)
            row = grid_search(streams, labels, [tuned], tolerance_s, max_fa_per_hour, objective)[0]
            if fast_enough(row):
                tuned_rows.append(row)
        tuned_rows.sort(key=lambda r: _rank(r, objective))
    hours = sum(s.duration_s for s in streams) / 3600
    return TuneResult(len(configs), hours, rows, tuned_rows)


def format_header(worst: bool = False) -> str:
    """The column names above :func:`format_row`'s lines."""
    lead = f"{'worst':>6} {'on stream':<18} " if worst else ""
    return f"{lead}{'recall':>7} {'FA/h':>6} {'wrong':>5} {'latency':>15}  settings"


def format_row(row: dict, worst: bool = False) -> str:
    """One line of ``spotter tune``'s table: recall, false alarms per hour, wrong names, latency, setting;
    with ``worst``, the lowest recall of a keyword stream and that stream first."""
    latency = (f"{row['latency_median_s']:.2f}/{row['latency_mean_s']:.2f} s" if row["latency_mean_s"] is not None
               else "-")
    lead = f"{row['worst_recall']:>6.1%} {row['worst_stream'][:18]:<18} " if worst else ""
    return (f"{lead}{row['recall']:>7.1%} {row['fa_per_hour']:>6.1f} {row['wrong']:>5} {latency:>15}  "
            f"{row['config'].describe()}")
