"""An enrolled model with its base model beside it: the user gains, nobody else loses.

Enrollment (:mod:`spotter.enroll`) makes a model sure of its user's keywords. In other voices the same
model is sometimes sure of the *wrong* keyword, and its threshold, set high so that the user's own
conversation does not fire it, misses keywords of other voices that the base model finds
(docs/experiments.md, "The base model beside the enrolled one"). An enrolled checkpoint therefore
keeps its base model, and the engine runs both on every window:

* an enrolled model's detection stands unless the base model is sure of *another* keyword: its
  smoothed probability of one reaches ``veto`` in the last ``hops`` hops;
* the base model's detections, at its own detector settings, are added;
* no detection fires within the refractory time of the one before, whichever model fired it (in
  one hop the enrolled model's comes first);
* when the enrolled checkpoint keeps its user's voice model (:mod:`spotter.voice`), a base-model
  detection of a keyword the user enrolled, in a window the user said, is left to the enrolled model,
  which knows that voice and that word: it is dropped (the base model's false alarms in its user's
  conversation do not come back). Keywords the user did not enroll stay the base model's too.

Pure logic: :class:`Guard` is fed hop by hop (the engine), :func:`guarded_offline` replays stored
posteriors of both models at once (benchmarks, tuning); the two are tested equal.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .config import SAMPLE_RATE, keywords_of
from .detector import DetectorConfig, DetectorConfigError, detect_offline, detector_from_meta, smoothed_posteriors
from .events import Detection

if TYPE_CHECKING:  # spotter.voice imports scipy: only for a checkpoint that keeps a voice model
    from .voice import VoiceModel


@dataclass(frozen=True)
class GuardConfig:
    # Chosen on the selection persons (docs/experiments.md): the base model's smoothed probability of a
    # keyword other than the enrolled model's at which the enrolled detection is dropped
    veto: float = 0.6
    hops: int = 4  # the hops looked at: the one that fired and the three before

    def __post_init__(self) -> None:
        if not 0.0 < self.veto <= 1.0:
            raise DetectorConfigError(f"guard veto {self.veto:g}: a probability in (0, 1] is needed")
        if self.hops < 1:
            raise DetectorConfigError(f"guard hops {self.hops}: must be at least 1")

    def to_meta(self) -> dict:
        return {"veto": self.veto, "hops": self.hops}

    @classmethod
    def from_meta(cls, meta: dict | None) -> "GuardConfig":
        meta = meta or {}
        try:
            return cls(veto=float(meta.get("veto", cls.veto)), hops=int(meta.get("hops", cls.hops)))
        except (TypeError, ValueError) as err:
            raise DetectorConfigError(f"guard settings {meta!r} are unusable ({err})") from None


@dataclass
class BaseBeside:
    """What an enrolled model carries (as its ``guard`` attribute): the base model, its detector settings
    and the guard's. A plain holder, so the base model is not a submodule of the enrolled one."""

    model: object  # a KeywordModel (torch runtime) or an ExportedModel (onnx runtime)
    detector: DetectorConfig
    config: GuardConfig = GuardConfig()
    voice: VoiceModel | None = None  # the enrolled user's voice (None: every base-model detection stands)
    voice_keywords: tuple[str, ...] = ()  # the keywords the user enrolled: in their voice, the enrolled model's

    def guard_meta(self) -> dict:
        """What the enrolled checkpoint keeps as ``meta["guard"]``."""
        if self.voice is None:
            return self.config.to_meta()
        return {**self.config.to_meta(), "voice": self.voice.to_meta(), "voice_keywords": list(self.voice_keywords)}


def base_beside(base_model, guard_meta: dict | None, source: str) -> BaseBeside:
    """The :class:`BaseBeside` an enrolled model carries, from its base model (either runtime) and its
    ``meta["guard"]`` (its settings and the user's voice model); :class:`DetectorConfigError` when the stored
    settings are unusable."""
    voice, keywords = None, ()
    if isinstance(guard_meta, dict) and "voice" in guard_meta:
        from .voice import VoiceModel, VoiceModelError

        try:
            voice = VoiceModel.from_meta(guard_meta["voice"])
            keywords = tuple(str(k) for k in guard_meta.get("voice_keywords", ()))
        except (VoiceModelError, TypeError) as err:
            raise DetectorConfigError(f"the user's voice model kept beside the base model: {err}; enroll again") from None
    return BaseBeside(base_model, detector_from_meta(getattr(base_model, "meta", {}), source=source),
                      GuardConfig.from_meta(guard_meta), voice, keywords)


class Guard:
    """Merges, hop by hop, an enrolled model's detections with its base model's (module docstring).
    Stateful but pure: the same updates give the same detections."""

    def __init__(self, labels, config: GuardConfig, refractory_s: float, voice_keywords=()) -> None:
        self.labels = tuple(labels)
        self.config = config
        self.refractory_s = float(refractory_s)
        self.voice_keywords = frozenset(voice_keywords)  # whose base-model detections the user's voice leaves out
        self.keyword_index = np.array(sorted(self.labels.index(k) for k in keywords_of(self.labels)), dtype=int)
        self.reset()

    def reset(self) -> None:
        self.recent: deque[np.ndarray] = deque(maxlen=self.config.hops)  # the base model's smoothed keyword rows
        self.last_fire = -np.inf
        self.vetoed = 0  # enrolled detections the base model overruled
        self.own_voice = 0  # base-model detections dropped because the user said them

    def update(self, time: float, enrolled: list[Detection], base_smoothed: np.ndarray,
               base: list[Detection], user_voice: Callable[[], bool] | None = None) -> list[Detection]:
        """One hop: the enrolled model's detections, the base model's smoothed probabilities and its
        detections; returns the detections that stand (0 or 1). ``user_voice()``: whether the user said
        this hop's window (asked only for a base-model detection of one of ``voice_keywords`` that would
        stand; None: never asked)."""
        self.recent.append(np.asarray(base_smoothed, dtype=np.float64)[self.keyword_index])
        if not enrolled and not base:
            return []
        return self.decide(time, enrolled, base, np.array(self.recent), user_voice)

    def decide(self, time: float, enrolled: list[Detection], base: list[Detection], recent: np.ndarray,
               user_voice: Callable[[], bool] | None = None) -> list[Detection]:
        """The detections of one hop that stand; ``recent``: the base model's smoothed keyword probabilities
        (hops x keywords) of this hop and up to ``hops - 1`` before; ``user_voice`` as in :meth:`update`."""
        out: list[Detection] = []
        for detection, own in [(d, True) for d in enrolled] + [(d, False) for d in base]:
            if own:
                others = self.keyword_index != self.labels.index(detection.keyword)
                if recent[:, others].max() >= self.config.veto:  # the base model is sure of another keyword
                    self.vetoed += 1
                    continue
            if time - self.last_fire < self.refractory_s:
                continue
            if (not own and user_voice is not None and detection.keyword in self.voice_keywords
                    and user_voice()):  # the user's word in the user's voice: the enrolled model decides
                self.own_voice += 1
                continue
            out.append(detection)
            self.last_fire = time
        return out


def stream_user_voice(voice: VoiceModel, audio: np.ndarray, times) -> Callable[[int], bool]:
    """For :func:`guarded_offline`: whether the user said hop ``i``'s window of the stream ``audio`` (16 kHz;
    the second that ends at ``times[i]``, zeros before the stream's start, as the engine's windows)."""
    from .voice import WINDOW

    ends = np.round(np.asarray(times, dtype=np.float64) * SAMPLE_RATE).astype(int)
    padded = np.concatenate([np.zeros(WINDOW, dtype=np.float32), np.asarray(audio, dtype=np.float32)])
    return lambda i: voice.is_user(padded[ends[i]: ends[i] + WINDOW])


def guard_refractory(enrolled: DetectorConfig, base: DetectorConfig) -> float:
    return max(enrolled.refractory_s, base.refractory_s)


def guarded_offline(labels, enrolled: DetectorConfig, base: DetectorConfig, config: GuardConfig, times,
                    enrolled_probs, base_probs, user_voice_at: Callable[[int], bool] | None = None,
                    voice_keywords=()) -> list[Detection]:
    """What the engine fires with a :class:`Guard` over both models' stored per-hop probabilities (hops x
    classes each, at the same ``times``), computed at once (:func:`spotter.detector.detect_offline`);
    ``user_voice_at(i)``: whether the user said the window of hop ``i`` (None: the voice is not asked), for
    base-model detections of ``voice_keywords``."""
    labels = tuple(labels)
    times = np.asarray(times, dtype=np.float64)
    base_smoothed = smoothed_posteriors(base_probs, base.smoothing_hops)
    hop_of = {float(t): i for i, t in enumerate(times)}
    fired = {}  # hop -> ([enrolled], [base])
    for which, (detector, probs) in enumerate(((enrolled, enrolled_probs), (base, base_probs))):
        for d in detect_offline(labels, detector, times, probs):
            fired.setdefault(hop_of[float(d.time)], ([], []))[which].append(d)
    guard = Guard(labels, config, guard_refractory(enrolled, base), voice_keywords)
    out: list[Detection] = []
    for i in sorted(fired):
        recent = base_smoothed[max(0, i - config.hops + 1): i + 1][:, guard.keyword_index]
        ask = None if user_voice_at is None else (lambda i=i: user_voice_at(i))
        out += guard.decide(float(times[i]), *fired[i], recent, ask)
    return out
