"""Streaming accuracy: a detector's keyword detections on a long recording against its labels.

Scoring follows TensorFlow's ``test_streaming_accuracy``, adapted to labels that
give each utterance's start and end (see :mod:`spotter.data.labels` for the CSV):

* a keyword utterance's window runs from its start to its end plus
  ``tolerance_s`` (a detector fires after the word, once it has heard it);
* detections are taken in time order. One inside a window whose utterance has
  no detection yet takes that utterance (the earliest such when windows
  overlap): the same keyword counts as *matched*, another one as *wrong*;
* a detection inside windows that are all taken is a *duplicate* (the detector
  firing twice on one word), neither right nor a false alarm;
* a detection inside no keyword window is a *false alarm*; those that fall
  inside an ``unknown`` word or a ``speech`` sentence (same window rule) are
  counted as well;
* a keyword utterance with no detection is *missed*: matched + wrong + missed
  = keywords;
* latency = detection time - utterance end, over matched utterances (negative
  when the detector fires before the word ends).

Nothing here reads audio or runs a model: give it the detections of a run
(:class:`spotter.events.Detection` objects or ``(keyword, time)`` pairs).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence

import numpy as np

from ..config import KEYWORDS, UNKNOWN
from ..data.labels import SPEECH, LabelEvent

__all__ = ["StreamScore", "score_stream"]

@dataclass(frozen=True)
class StreamScore:
    """Counts and rates of one scored stream (see the module docstring for the rules)."""

    matched: int
    wrong: int
    missed: int
    false_alarms: int
    duplicates: int
    fa_in_speech: int
    fa_in_unknown: int
    keywords: int
    recall: float | None              # matched / keywords; None without keyword utterances
    fa_per_hour: float
    latency_mean_s: float | None      # None when nothing matched
    latency_median_s: float | None
    latency_p95_s: float | None
    duration_s: float
    tolerance_s: float
    per_keyword_recall: dict[str, float] = field(default_factory=dict)
    per_keyword_total: dict[str, int] = field(default_factory=dict)
    latencies_s: tuple[float, ...] = field(default=(), repr=False)  # each matched utterance's, in time order
    found: tuple[bool, ...] = field(default=(), repr=False)  # each keyword utterance, in time order: matched?

    def to_dict(self) -> dict:
        out = asdict(self)
        del out["latencies_s"], out["found"]
        return out

    def format_table(self) -> str:
        """A small plain-text report."""
        def pct(x: float | None) -> str:
            return "-" if x is None else f"{100 * x:.1f} %"

        def sec(x: float | None) -> str:
            return "-" if x is None else f"{x:.3f} s"

        lines = [
            f"stream {self.duration_s:.1f} s ({self.duration_s / 3600:.3f} h), tolerance {self.tolerance_s:.2f} s",
            f"  keywords      {self.keywords:6d}",
            f"  matched       {self.matched:6d}   recall {pct(self.recall)}",
            f"  wrong         {self.wrong:6d}",
            f"  missed        {self.missed:6d}",
            f"  false alarms  {self.false_alarms:6d}   {self.fa_per_hour:.2f} per hour "
            f"({self.fa_in_speech} in speech, {self.fa_in_unknown} in unknown words)",
            f"  duplicates    {self.duplicates:6d}",
            f"  latency       mean {sec(self.latency_mean_s)}, median {sec(self.latency_median_s)}, "
            f"p95 {sec(self.latency_p95_s)}",
        ]
        if self.per_keyword_total:
            lines.append("  per keyword:")
            lines += [f"    {kw:<8s} {round(self.per_keyword_recall[kw] * n):4d}/{n:<4d} "
                      f"{pct(self.per_keyword_recall[kw])}" for kw, n in self.per_keyword_total.items()]
        return "\n".join(lines)


def _pairs(detections: Iterable) -> list[tuple[str, float]]:
    out = []
    for d in detections:
        keyword, time = (d.keyword, d.time) if hasattr(d, "keyword") else d
        out.append((str(keyword), float(time)))
    return sorted(out, key=lambda kt: kt[1])


def _windows(labels: Sequence[LabelEvent], tolerance_s: float) -> tuple[np.ndarray, np.ndarray]:
    return (np.array([e.start for e in labels], dtype=np.float64),
            np.array([e.end + tolerance_s for e in labels], dtype=np.float64))


def score_stream(detections: Iterable, labels: Sequence[LabelEvent], duration_s: float,
                 tolerance_s: float = 0.5, keywords: Sequence[str] = KEYWORDS) -> StreamScore:
    """Score ``detections`` (objects with ``.keyword`` and ``.time``, or ``(keyword, time)`` pairs)
    against ``labels`` of a ``duration_s`` long stream; rows whose label is in ``keywords`` are the
    keyword utterances."""
    if duration_s <= 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    if tolerance_s < 0:
        raise ValueError(f"tolerance_s must be >= 0, got {tolerance_s}")
    utterances = sorted((e for e in labels if e.label in keywords), key=lambda e: (e.start, e.end))
    starts, ends = _windows(utterances, tolerance_s)
    others = {name: _windows([e for e in labels if e.label == name], tolerance_s) for name in (SPEECH, UNKNOWN)}
    taken = np.zeros(len(utterances), dtype=bool)
    correct = np.zeros(len(utterances), dtype=bool)
    latencies: list[float] = []
    wrong = duplicates = false_alarms = fa_in_speech = fa_in_unknown = 0
    for keyword, t in _pairs(detections):
        inside = np.flatnonzero((starts <= t) & (t <= ends))
        free = inside[~taken[inside]]
        if len(free):
            i = int(free[0])
            taken[i] = True
            if keyword == utterances[i].label:
                correct[i] = True
                latencies.append(t - utterances[i].end)
            else:
                wrong += 1
        elif len(inside):
            duplicates += 1
        else:
            false_alarms += 1
            lo, hi = others[SPEECH]
            if np.any((lo <= t) & (t <= hi)):
                fa_in_speech += 1
            else:
                lo, hi = others[UNKNOWN]
                fa_in_unknown += int(np.any((lo <= t) & (t <= hi)))
    per_keyword_total = {kw: n for kw in keywords if (n := sum(e.label == kw for e in utterances))}
    per_keyword_recall = {kw: sum(bool(c) for c, e in zip(correct, utterances) if e.label == kw) / n
                          for kw, n in per_keyword_total.items()}
    matched = int(correct.sum())
    return StreamScore(
        matched=matched, wrong=wrong, missed=int((~taken).sum()), false_alarms=false_alarms,
        duplicates=duplicates, fa_in_speech=fa_in_speech, fa_in_unknown=fa_in_unknown,
        keywords=len(utterances), recall=matched / len(utterances) if utterances else None,
        fa_per_hour=false_alarms / (duration_s / 3600.0),
        latency_mean_s=float(np.mean(latencies)) if latencies else None,
        latency_median_s=float(np.median(latencies)) if latencies else None,
        latency_p95_s=float(np.percentile(latencies, 95)) if latencies else None,
        duration_s=float(duration_s), tolerance_s=float(tolerance_s),
        per_keyword_recall=per_keyword_recall, per_keyword_total=per_keyword_total,
        latencies_s=tuple(latencies), found=tuple(bool(c) for c in correct))
