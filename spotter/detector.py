"""From posteriors to detections: pure logic, no I/O, no clocks (times come in with the data).

Per hop the detector receives the model's class probabilities and the stream
time.  It

1. smooths them with a moving average over the last ``smoothing_hops`` hops;
2. scores the hop, as ``score`` says:

   * ``"class"``: the top smoothed class, with its smoothed probability;
   * ``"any-keyword"``: the most probable keyword, with the smoothed probability
     that the window holds *a* keyword (the sum over the keyword classes,
     i.e. 1 - unknown - silence). A short keyword in noise often has its
     probability split between two keywords (up / off, no / go): neither
     reaches the threshold alone, though the model is sure a keyword was
     said. Which one is then the model's best guess;

   when the label is a keyword whose score reaches its threshold
   (``thresholds[kw]`` or ``threshold``), counts consecutive hops of it;
3. fires a :class:`~spotter.events.Detection` once the count reaches
   ``min_count``, once per run of hops above threshold, and not within
   ``refractory_s`` seconds of the previous detection (of any keyword).

Defaults were tuned on a generated validation stream (see README,
"Detector tuning").
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from .config import DETECTOR_SCORES, keywords_of
from .errors import SpotterError
from .events import Detection


class DetectorConfigError(SpotterError, ValueError):
    """Detector settings that cannot work; the message names the setting and its range."""


#: What a hop's score is (see the module docstring).
SCORES = DETECTOR_SCORES


@dataclass(frozen=True)
class DetectorConfig:
    # Tuned with `spotter tune` on held-out validation streams (README, "Detector tuning"):
    # the highest keyword recall with at most 2 false alarms per hour of continuous speech and a
    # median detection latency of at most 0.3 s after the keyword ends.
    threshold: float = 0.95
    thresholds: dict = field(default_factory=dict)  # keyword -> threshold, overriding `threshold`
    smoothing_hops: int = 1
    min_count: int = 3
    refractory_s: float = 1.0
    score: str = "class"  # one of SCORES: what is compared with the threshold (module docstring)

    def __post_init__(self) -> None:
        if self.score not in SCORES:
            raise DetectorConfigError(f"score {self.score!r}: one of {', '.join(SCORES)}")
        for name, value in (("threshold", self.threshold), *((f"thresholds[{k!r}]", v) for k, v in self.thresholds.items())):
            if not 0.0 < value <= 1.0:
                raise DetectorConfigError(f"{name.replace('_', '-')} {value:g}: a probability in (0, 1] is needed")
        for name, value in (("smoothing-hops", self.smoothing_hops), ("min-count", self.min_count)):
            if value < 1:
                raise DetectorConfigError(f"{name} {value}: must be at least 1")
        if self.refractory_s < 0:
            raise DetectorConfigError(f"refractory {self.refractory_s:g} s: must not be negative")

    def threshold_for(self, keyword: str) -> float:
        return float(self.thresholds.get(keyword, self.threshold))

    def describe(self) -> str:
        per = ""
        if self.thresholds:
            per = " (" + ", ".join(f"{k} {v:.2f}" for k, v in self.thresholds.items()) + ")"
        score = ", score any-keyword" if self.score == "any-keyword" else ""
        return (f"threshold {self.threshold:.2f}{per}{score}, smoothing {self.smoothing_hops} hops, "
                f"min count {self.min_count}, refractory {self.refractory_s:g} s")

    def to_meta(self) -> dict:
        """Plain values for a checkpoint's ``meta["detector"]`` (see :func:`detector_from_meta`)."""
        return {"threshold": self.threshold, "thresholds": dict(self.thresholds), "smoothing_hops": self.smoothing_hops,
                "min_count": self.min_count, "refractory_s": self.refractory_s, "score": self.score}


def detector_from_meta(meta: dict, source: str = "checkpoint") -> DetectorConfig:
    """The detector settings a checkpoint was tuned with (``meta["detector"]``), else the defaults.

    Settings tuned for one model do not fit another, so they travel in its checkpoint; a model
    without them gets :class:`DetectorConfig`'s defaults. Bad stored values raise a one-line error
    naming ``source``."""
    stored = (meta or {}).get("detector")
    if not stored:
        return DetectorConfig()
    known = set(DetectorConfig.__dataclass_fields__)
    try:
        if not isinstance(stored, dict) or set(stored) - known:
            raise DetectorConfigError(f"unknown keys {sorted(set(stored) - known) if isinstance(stored, dict) else stored}")
        values = {k: (dict(v) if k == "thresholds" else float(v) if k in ("threshold", "refractory_s")
                      else str(v) if k == "score" else int(v))
                  for k, v in stored.items()}
        return DetectorConfig(**values)
    except (DetectorConfigError, TypeError, ValueError) as err:
        raise DetectorConfigError(f"{source}: its stored detector settings are unusable ({err}); "
                                  "give --threshold to override them") from None


def detector_settings(meta: dict | None = None, labels=None, source: str = "model", threshold: float | None = None,
                      keyword_thresholds: dict | None = None, smoothing_hops: int | None = None,
                      min_count: int | None = None, score: str | None = None) -> DetectorConfig:
    """A model's own detector settings (its checkpoint's ``meta["detector"]``, else the defaults) with
    the user's changes on top. ``threshold`` sets one threshold for every keyword, dropping the
    model's per-keyword ones; ``keyword_thresholds`` (keyword -> threshold) then sets single keywords.
    A keyword that is not one of ``labels`` is a one-line error."""
    config = detector_from_meta(meta or {}, source=source)
    changes = {name: value for name, value in (("threshold", threshold), ("smoothing_hops", smoothing_hops),
                                               ("min_count", min_count), ("score", score)) if value is not None}
    if threshold is not None:
        changes["thresholds"] = {}
    if keyword_thresholds:
        changes["thresholds"] = {**changes.get("thresholds", config.thresholds), **keyword_thresholds}
    config = replace(config, **changes)
    unknown = sorted(set(config.thresholds) - set(labels if labels is not None else config.thresholds))
    if unknown:
        raise DetectorConfigError(f"--keyword-threshold: {', '.join(unknown)} is not a keyword of the model "
                                  f"({', '.join(labels)})")
    return config


#: Kept below the exact bound of :func:`screen_limit`, so float rounding cannot let a hop through.
SCREEN_MARGIN = 1e-4


def screen_limit(config: DetectorConfig, members: int) -> float:
    """The first member's keyword probability (summed over the keywords) below which the other members of
    an ensemble of ``members`` need not run: whatever they say, no hop whose smoothing holds this hop can
    reach a threshold, and the first member's probabilities, fed to the detector in the ensemble's
    place, cannot either; so every detection is the one the whole ensemble would give.

    Why: a hop counts towards a detection only if its smoothed score, the mean over ``n`` hops of
    ``smoothing_hops``, reaches the lowest threshold ``T``; with every other hop at most 1, that needs
    this hop's keyword sum ``s >= L = n T - (n - 1)``. The ensemble's keyword sum is the mean of its
    members', so ``s <= (s_1 + members - 1) / members``, which is below ``L`` when
    ``s_1 < members L - (members - 1)``; and that is at most ``L``, so ``s_1`` itself stays below it
    too. A score of one keyword ("class") is at most the keyword sum, so the bound holds for both
    scores. 0 (never screen) when the settings leave no room, or for a single network."""
    if members < 2:
        return 0.0
    lowest = min([config.threshold, *config.thresholds.values()])
    n = max(1, config.smoothing_hops)
    per_hop = n * lowest - (n - 1)
    return max(0.0, members * per_hop - (members - 1) - SCREEN_MARGIN)


def screen_members(first: np.ndarray, limit: float, keyword_index: np.ndarray, members: int,
                   others: Callable[[], np.ndarray]) -> tuple[np.ndarray, bool]:
    """One window of a screened ensemble: the first member's probabilities alone (and True) when its
    keyword probability stays below ``limit`` (:func:`screen_limit`; 0: never), else the mean of all
    ``members``, with ``others()`` (the other members' mean probabilities) computed only then."""
    if limit > 0 and float(first[keyword_index].sum()) < limit:
        return first, True
    return (first + (members - 1) * others()) / members, False


def _any_keyword(smoothed: np.ndarray, keyword_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``smoothed`` (hops x classes): the most probable keyword's class index and the keywords'
    summed probability, for the offline detector. The keywords are added in one fixed order (numpy's
    ``sum`` orders the additions by array shape, so one row and many rows would differ in the last bit),
    the order :func:`_any_keyword_row` keeps for the hop-by-hop detector."""
    keyword_probs = smoothed[:, keyword_index]
    total = keyword_probs[:, 0].copy()
    for j in range(1, keyword_probs.shape[1]):
        total += keyword_probs[:, j]
    return keyword_index[np.argmax(keyword_probs, axis=1)], total


def _any_keyword_row(smoothed: np.ndarray, keyword_index: np.ndarray) -> tuple[int, float]:
    """:func:`_any_keyword` of one hop's ``smoothed`` (classes,): the same additions in the same order, as
    Python floats (IEEE doubles, as the float64 arrays), without the array calls that cost a hop more."""
    values = smoothed[keyword_index].tolist()
    total = values[0]
    for value in values[1:]:
        total += value
    return int(keyword_index[values.index(max(values))]), total


def _mean_rows(rows) -> np.ndarray:
    """The mean of equal-length float64 rows, added first to last and divided once, as numpy's mean over
    axis 0 and :func:`smoothed_posteriors` do it (bit for bit), without stacking them first."""
    total = rows[0].copy()
    for i in range(1, len(rows)):
        total += rows[i]
    total /= len(rows)
    return total


class Detector:
    """Stateful but pure: the same sequence of updates gives the same detections."""

    def __init__(self, labels, config: DetectorConfig | None = None, keywords=None) -> None:
        self.labels = tuple(labels)
        self.config = config or DetectorConfig()
        keywords = keywords_of(self.labels) if keywords is None else keywords
        self.keyword_index = np.array(sorted(self.labels.index(k) for k in keywords if k in self.labels), dtype=int)
        self.reset()

    def reset(self) -> None:
        self.history: deque[np.ndarray] = deque(maxlen=max(1, self.config.smoothing_hops))
        self.run_label: int | None = None
        self.run_count = 0
        self.run_fired = False
        self.last_fire = -np.inf
        self._last_input = None  # the array object of the last update and how many updates in a row gave it
        self._repeats = 0
        self._quiet_smoothed: np.ndarray | None = None  # the last update's smoothed values, when below every threshold

    def set_threshold(self, threshold: float) -> None:
        """Change the global threshold (the UI's +/- keys); per-keyword ones move by the same amount."""
        new = float(np.clip(threshold, 0.05, 0.99))
        delta = new - self.config.threshold
        per_keyword = {k: round(float(np.clip(v + delta, 0.05, 0.99)), 4) for k, v in self.config.thresholds.items()}
        self.config = replace(self.config, threshold=new, thresholds=per_keyword)
        self._quiet_smoothed = None  # a repeated input is scored again against the new thresholds

    def update(self, time: float, probs) -> tuple[np.ndarray, list[Detection]]:
        """Feed one hop; returns the smoothed probabilities and the detections it fired (0 or 1).

        Passing the same (unchanged) array object again is the cheap case: once it fills the whole history
        and scored below every threshold, another one changes no state and gives the same result, so none
        is computed (the engine passes one silence array for every hop the silence gate scores)."""
        if probs is self._last_input:
            self._repeats += 1
            if self._repeats > self.history.maxlen and self._quiet_smoothed is not None:
                return self._quiet_smoothed, []
        else:
            self._last_input, self._repeats = probs, 1
        self.history.append(np.asarray(probs, dtype=np.float64))
        smoothed = _mean_rows(self.history)
        if self.config.score == "any-keyword" and self.keyword_index.size:
            top, score = _any_keyword_row(smoothed, self.keyword_index)
        else:
            top = int(np.argmax(smoothed))
            score = float(smoothed[top])
        label = self.labels[top]
        above = top in self.keyword_index and score >= self.config.threshold_for(label)
        if not above:
            self.run_label, self.run_count, self.run_fired = None, 0, False
            self._quiet_smoothed = smoothed
            return smoothed, []
        self._quiet_smoothed = None
        if top != self.run_label:
            self.run_label, self.run_count, self.run_fired = top, 0, False
        self.run_count += 1
        fired: list[Detection] = []
        if (not self.run_fired and self.run_count >= self.config.min_count
                and time - self.last_fire >= self.config.refractory_s):
            fired.append(Detection(label, score, float(time)))
            self.run_fired = True
            self.last_fire = time
        return smoothed, fired


def smoothed_posteriors(probs, smoothing_hops: int) -> np.ndarray:
    """Every hop's smoothed probabilities at once: the moving average a :class:`Detector` keeps
    (over the hops so far while fewer than ``smoothing_hops``), summed in the same order so the
    values are the same to the last bit."""
    probs = np.asarray(probs, dtype=np.float64)
    hops, n = len(probs), max(1, int(smoothing_hops))
    out = np.empty_like(probs)
    for t in range(min(n - 1, hops)):  # the first hops: the history is not full yet
        out[t] = np.mean(probs[: t + 1], axis=0)
    if hops >= n:
        total = probs[: hops - n + 1].copy()
        for k in range(1, n):
            total += probs[k: hops - n + 1 + k]
        out[n - 1:] = total / n
    return out


def detect_offline(labels, config: DetectorConfig, times, probs, keywords=None) -> list[Detection]:
    """The detections a fresh :class:`Detector` fires when fed ``probs`` (hops x classes) at ``times``
    one hop at a time, computed for the whole sequence at once: the smoothing and scores are array
    operations, and only the hops whose score reaches a threshold are walked. For replaying stored
    posteriors under many settings (:mod:`spotter.tuning`); tested equal to the hop-by-hop detector."""
    labels = tuple(labels)
    detector = Detector(labels, config, keywords)  # the same keyword indices and settings checks
    smoothed = smoothed_posteriors(probs, config.smoothing_hops)
    if not len(smoothed):
        return []
    rows = np.arange(len(smoothed))
    kw = detector.keyword_index
    if config.score == "any-keyword" and kw.size:
        top, score = _any_keyword(smoothed, kw)
    else:
        top = np.argmax(smoothed, axis=1)
        score = smoothed[rows, top]
    limit = np.array([config.threshold_for(label) if i in kw else np.inf for i, label in enumerate(labels)])
    above = np.flatnonzero(score >= limit[top])
    fired: list[Detection] = []
    last_fire, previous, run_label, run_count, run_fired = -np.inf, -2, -1, 0, False
    for i in above:
        if i != previous + 1 or top[i] != run_label:  # a new run: after a hop below, or another keyword
            run_label, run_count, run_fired = top[i], 0, False
        previous = i
        run_count += 1
        t = float(times[i])
        if not run_fired and run_count >= config.min_count and t - last_fire >= config.refractory_s:
            fired.append(Detection(labels[top[i]], float(score[i]), t))
            run_fired, last_fire = True, t
    return fired
