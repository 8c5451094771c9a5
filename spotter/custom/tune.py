"""The detector of a custom spotter, chosen as its targets are stated.

A custom model's validation streams are dense with near misses: the keyword stream says each confusable
("likes on" for "lights on") many times in ten minutes, far more often than anyone says them in an hour.
Counted as false alarms per hour, a single one of them would use up the whole budget, and the detector
would be tuned to hear almost nothing. So :func:`choose_detector` keeps the two targets apart, as
docs/custom.md measures them:

* false alarms per hour of the validation voices' keyword-free speech, plus the keyword stream's false
  alarms on anything that is not a confusable: at most ``max_fa_per_hour``;
* the share of the confusables said in the keyword stream that fire: at most ``max_confusable_rate``
  (one in twenty);

and among the settings within both (and a median latency of at most ``max_latency_s`` when one is) it
takes the one whose *worst* keyword is found most often (then the most keywords, the fewest false alarms
and confusables, the quickest, the highest threshold). Then each keyword, the least found first, gets a
lower threshold of its own where that finds more within the same bounds: keywords differ in how sure the
model gets of them, and one threshold for all is set by the keyword with the closest confusables.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from ..config import keywords_of
from ..detector import DetectorConfig
from ..evaluation.streams import score_stream
from ..evaluation.tuning import (MIN_COUNT_GRID, SCORE_GRID, SMOOTHING_GRID, THRESHOLD_GRID, StreamPosteriors,
                                 candidates, detections_of)

#: At most one confusable phrase in this many may fire (docs/custom.md's target).
MAX_CONFUSABLE_RATE = 1 / 20


@dataclass(frozen=True)
class Choice:
    """A detector setting and how it did on the validation streams."""

    config: DetectorConfig
    recall: float
    worst_keyword_recall: float
    fa_per_hour: float
    confusables_fired: int
    confusables_said: int
    latency_median_s: float | None
    within: bool  # within the false-alarm, confusable and latency bounds
    per_keyword: dict = field(default_factory=dict)  # keyword -> recall

    def to_dict(self) -> dict:
        return {"recall": round(self.recall, 4), "worst_keyword_recall": round(self.worst_keyword_recall, 4),
                "fa_per_hour": round(self.fa_per_hour, 2), "confusables_fired": self.confusables_fired,
                "confusables_said": self.confusables_said, "latency_median_s": self.latency_median_s,
                "per_keyword_recall": {k: round(v, 4) for k, v in self.per_keyword.items()}}


def _scored(config: DetectorConfig, keywords_stream: StreamPosteriors, speech_stream: StreamPosteriors,
            labels: Sequence[str], confusable_events: list, tolerance_s: float) -> dict:
    keywords = keywords_of(labels)
    found = detections_of(keywords_stream, labels, config)
    kw = score_stream(found, keywords_stream.labels, keywords_stream.duration_s, tolerance_s=tolerance_s,
                      keywords=keywords)
    on_confusable = sum(any(e.start <= d.time <= e.end + tolerance_s for e in confusable_events) for d in found)
    speech = score_stream(detections_of(speech_stream, labels, config), speech_stream.labels,
                          speech_stream.duration_s, tolerance_s=tolerance_s, keywords=keywords)
    hours = (keywords_stream.duration_s + speech_stream.duration_s) / 3600
    other = max(0, kw.false_alarms - on_confusable)  # false alarms on other words and sentences
    return {"recall": kw.recall or 0.0, "worst": min(kw.per_keyword_recall.values(), default=0.0),
            "fa_per_hour": (speech.false_alarms + other) / hours, "fired": on_confusable,
            "latency": kw.latency_median_s, "per_keyword": dict(kw.per_keyword_recall)}


def _rank(c: "Choice") -> tuple:
    """Best first: the worst keyword's recall, then all keywords', fewer false alarms and confusables, quicker,
    a higher threshold."""
    return (c.worst_keyword_recall, c.recall, -c.fa_per_hour, -c.confusables_fired, -(c.latency_median_s or 0.0),
            c.config.threshold)


def _per_keyword(best: "Choice", evaluate, keywords: Sequence[str]) -> "Choice":
    """``best`` with keyword thresholds of their own: the least-found keyword first, each keyword's threshold
    lowered along :data:`THRESHOLD_GRID` while the setting stays within the bounds and ranks higher; repeated
    until no keyword's threshold moves. Keywords differ in how sure a model gets of them (a long phrase with
    many confusables stays below a threshold a short word passes), so one threshold for all gives up the
    hardest keyword first."""
    moved = True
    while moved:
        moved = False
        for keyword in sorted(keywords, key=lambda k: best.per_keyword.get(k, 0.0)):
            current = best.config.threshold_for(keyword)
            for threshold in sorted((t for t in THRESHOLD_GRID if t < current), reverse=True):
                trial = evaluate(replace(best.config, thresholds={**best.config.thresholds, keyword: threshold}))
                if trial.within and _rank(trial) > _rank(best):
                    best, moved = trial, True
    return best


def choose_detector(keywords_stream: StreamPosteriors, speech_stream: StreamPosteriors, labels: Sequence[str],
                    confusables: Sequence[str], max_fa_per_hour: float = 1.0,
                    max_confusable_rate: float = MAX_CONFUSABLE_RATE, max_latency_s: float | None = 0.3,
                    tolerance_s: float = 0.75, per_keyword: bool = True) -> Choice:
    """The best setting of the detector grid (see the module docstring), then (``per_keyword``) keyword
    thresholds of their own where they find a keyword more often within the bounds. ``confusables``: the
    words and phrases said in ``keywords_stream`` that must not fire (its label rows name them). When no
    setting keeps within the bounds, the one that breaks them least (fewest false alarms, then confusables)."""
    wanted = {c.lower() for c in confusables}
    confusable_events = [e for e in keywords_stream.labels if e.word.lower() in wanted]
    said = len(confusable_events)
    configs = candidates(thresholds=THRESHOLD_GRID, smoothing=SMOOTHING_GRID, min_counts=MIN_COUNT_GRID,
                         refractory=(1.0,), scores=SCORE_GRID)

    def evaluate(config: DetectorConfig) -> Choice:
        s = _scored(config, keywords_stream, speech_stream, labels, confusable_events, tolerance_s)
        quick = max_latency_s is None or (s["latency"] is not None and s["latency"] <= max_latency_s)
        within = (s["fa_per_hour"] <= max_fa_per_hour and s["fired"] <= np.floor(max_confusable_rate * said + 1e-9)
                  and quick)
        return Choice(config, s["recall"], s["worst"], s["fa_per_hour"], s["fired"], said, s["latency"], bool(within),
                      s["per_keyword"])

    choices = [evaluate(config) for config in configs]
    good = [c for c in choices if c.within]
    if good:
        best = max(good, key=_rank)
        return _per_keyword(best, evaluate, keywords_of(labels)) if per_keyword else best
    if max_latency_s is not None:  # a weak model: nothing finds keywords quickly; drop the latency bound
        return choose_detector(keywords_stream, speech_stream, labels, confusables, max_fa_per_hour,
                               max_confusable_rate, None, tolerance_s, per_keyword)
    return min(choices, key=lambda c: (c.fa_per_hour, c.confusables_fired, -c.worst_keyword_recall))
