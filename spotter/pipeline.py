"""The one place the parts are joined: source -> features -> model -> detector -> events.

:class:`Engine` is pure computation on 16 kHz samples: it is fed audio and
returns events, the same way for a microphone and a WAV file.  :func:`run`
is the consumer loop that pulls audio from an :class:`spotter.audio.AudioSource`
and hands each event to a sink (JSON lines, plain text, the UI).

Two modes:

* **every window** (``skip_stale=False``; WAV replay without ``--realtime``):
  every hop's window is scored - deterministic, and identical whatever the
  block size the audio arrives in;
* **live** (``skip_stale=True``; microphone, real-time replay): when more
  than one hop of audio is waiting (inference fell behind), only the newest
  window is scored and the skipped ones are counted as dropped, so latency
  never builds up.

In a live run, once the silence gate has scored a second of windows as silence,
:func:`run` dozes: it wakes every :data:`DOZE_SECONDS` instead of every block and
scores the hops that arrived meanwhile, each of them (none is dropped), so a silent
room costs a third of the wake-ups and every detection is the one it would have
been. The first speech opens the gate and ends the doze.

A live engine leaves out, in calm speech, each window between two that could not lead to a
detection: it holds the window until the next one is scored (:meth:`Engine._resolve_held`).
In speech a live run also dozes lightly: once every window of a second could not lead to a detection
(the silence gate shut, or a screened ensemble's first member sure no keyword is near:
:func:`spotter.detector.screen_limit`), it wakes every :data:`CALM_DOZE_SECONDS` and scores
the hops that arrived, each of them, until a window could lead to one. The detector's
smoothing and ``min_count`` leave more hops between that window and the earliest detection
than a light doze holds back, so every detection is announced when it would have been
awake (:meth:`Engine.calm_doze_allowed`).
"""

from __future__ import annotations

import math
import signal
import threading
import time
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from .config import SAMPLE_RATE
from .detector import Detector, DetectorConfig, detector_from_meta, screen_limit
from .events import PosteriorUpdate
from .errors import SpotterError
from .gate import GateConfig, SilenceGate
from .guard import Guard, guard_refractory


class EngineConfigError(SpotterError, ValueError):
    """Engine settings that cannot work (e.g. a hop that is not a multiple of the frame hop)."""


LONGEST_BLOCK_MS = 100.0
DOZE_AFTER_SECONDS = 1.0  # of windows the silence gate scored as silence, before a live run dozes
DOZE_SECONDS = 0.3  # a dozing run wakes this often; a word takes longer than this to be detected
CALM_AFTER_SECONDS = 1.0  # of windows that could not lead to a detection, before a live run dozes lightly
CALM_DOZE_SECONDS = 0.2  # a lightly dozing run (speech without a keyword near) wakes this often


def source_block_ms(hop_ms: float, frame_ms: float = 10.0) -> float:
    """The audio block a live source should deliver for ``hop_ms``: the longest whole number of
    ``frame_ms`` spectrogram frames, at most :data:`LONGEST_BLOCK_MS`, that divides the hop (100 ms
    at the 100 ms hop, 50 ms at 150 ms, 30 ms at 30 ms).

    A window is scored when the block holding its last sample arrives, so blocks that divide the
    hop score every window as early as smaller ones would; longer blocks wake the capture and the
    engine fewer times (at the 100 ms hop, 10 times a second instead of 50 with 20 ms blocks:
    about 1% of one core less, measured on a 2-core CPU). Blocks of whole 10 ms frames are whole
    numbers of samples at every device rate that is a multiple of 100 Hz."""
    frames = hop_ms / frame_ms if math.isfinite(hop_ms) else 0.0
    if frames < 1 or abs(frames - round(frames)) > 1e-6:
        return 20.0  # a hop the engine refuses, with its own message
    frames = round(frames)
    most = max(1, int(LONGEST_BLOCK_MS // frame_ms))
    return frame_ms * max(d for d in range(1, min(frames, most) + 1) if frames % d == 0)


@dataclass(frozen=True)
class EngineConfig:
    hop_ms: float = 100.0
    skip_stale: bool = False
    # None: the model's own settings (its checkpoint's meta "detector"), else DetectorConfig's defaults
    detector: DetectorConfig | None = None
    # The silence gate (spotter.gate): None scores every window with the network (``listen --no-gate``).
    # It applies to models with a "silence" class.
    gate: GateConfig | None = None
    # Screening an ensemble (in the onnx runtime when its screening pair was exported): the other members run
    # only when the first one's keyword probability could lead to a detection (spotter.detector.screen_limit);
    # the same detections. False runs every member on every window (``listen --no-screen``; posteriors kept
    # to be scored under other detector settings).
    screen: bool = True
    # An enrolled model's base model beside it (spotter.guard), when its checkpoint keeps one: both run on every
    # window. False runs the enrolled model alone (``listen --no-base``).
    guard: bool = True

    @property
    def hop_samples(self) -> int:
        return int(round(self.hop_ms * SAMPLE_RATE / 1000))


@dataclass
class EngineStats:
    windows: int = 0
    gated_windows: int = 0  # windows the silence gate scored as silence without running the network
    screened_windows: int = 0  # windows an ensemble's first member scored alone (see EngineConfig.screen)
    skipped_windows: int = 0  # windows not scored between two calm ones (Engine._resolve_held)
    dropped_windows: int = 0
    detections: int = 0
    samples: int = 0  # samples received
    lost_samples: int = 0  # samples the source lost (overruns): gaps in the stream clock
    inference_ms_total: float = 0.0
    inference_ms_last: float = 0.0
    inference_ms_max: float = 0.0

    @property
    def inference_ms_mean(self) -> float:
        """Mean time of the windows the network scored."""
        scored = self.windows - self.gated_windows - self.skipped_windows
        return self.inference_ms_total / scored if scored else 0.0


def window_scorer(model, max_lag: int, screen: bool = True):
    """What scores the engine's windows: an exported model's own (no torch), else the torch runtime's;
    either screens an ensemble's members when ``screen`` (and, in the onnx runtime, the pair was exported)."""
    if hasattr(model, "window_scorer"):  # spotter.exported.ExportedModel
        return model.window_scorer(max_lag, screen)
    from .streaming import TorchWindowScorer

    return TorchWindowScorer(model.eval(), max_lag, screen)


class Scored(NamedTuple):
    """One window as the engine scored it, before the detector."""

    end: int  # the stream sample where the window ends
    probs: np.ndarray
    gated: bool = False  # the silence gate gave ``probs`` (no network run)
    screened: bool = False  # an ensemble's first member alone gave them
    skipped: bool = False  # not scored: the window before's, repeated (Engine._resolve_held)
    held: bool = False  # the window waited for the one after it
    inference_ms: float = 0.0  # features + network for this window (0: gated or skipped)
    base_probs: np.ndarray | None = None  # the base model's, when one runs beside (spotter.guard)


class Engine:
    """Streaming inference: feed samples, get :class:`PosteriorUpdate` and :class:`Detection` events.

    ``model`` is a checkpoint's :class:`~spotter.model.KeywordModel` (the torch runtime) or an
    :class:`~spotter.exported.ExportedModel` (ONNX Runtime, no torch)."""

    def __init__(self, model, config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        frame_hop = model.frontend.config.hop_length
        hop = self.config.hop_samples if math.isfinite(self.config.hop_ms) else 0
        if hop <= 0 or hop % frame_hop:
            raise EngineConfigError(f"--hop-ms {self.config.hop_ms:g} must be a positive multiple of "
                             f"{1000 * frame_hop / SAMPLE_RATE:g} ms (the spectrogram's frame hop)")
        self.model = model
        self.scorer = window_scorer(model, max_lag=hop, screen=self.config.screen)  # windows end at most a hop back
        self.framer = self.scorer.framer  # the stream's audio and clock
        self.labels = tuple(model.labels)
        detector = self.config.detector
        if detector is None:
            detector = detector_from_meta(getattr(model, "meta", {}), source=getattr(model, "name", "model"))
        self.detector = Detector(self.labels, detector)
        beside = getattr(model, "guard", None) if self.config.guard else None
        self.guard = self.base_scorer = self.base_detector = self.user_voice = None
        if beside is not None:  # an enrolled model: its base model runs beside it (spotter.guard)
            if tuple(beside.model.labels) != self.labels:
                raise EngineConfigError(f"the base model kept beside {getattr(model, 'name', 'the model')} has other "
                                        f"labels ({', '.join(beside.model.labels)}): enroll it again")
            self.base_scorer = window_scorer(beside.model, max_lag=hop, screen=self.config.screen)
            self.base_detector = Detector(self.labels, beside.detector)
            self.guard = Guard(self.labels, beside.config, guard_refractory(detector, beside.detector),
                               beside.voice_keywords)
            self.user_voice = beside.voice  # the enrolled user's voice: their windows are the enrolled model's
        self._framers = [self.framer] + ([self.base_scorer.framer] if self.base_scorer else [])
        self._base_probs = None  # the base model's probabilities of the last window
        use_gate = self.config.gate is not None and "silence" in self.labels
        self.gate = SilenceGate(self.config.gate, self.framer.window) if use_gate else None
        self._silence = SilenceGate.silence(self.labels) if use_gate else None  # one array for every gated hop
        if self._silence is not None:
            self._silence.flags.writeable = False
        self._gate_end = 0  # stream sample up to which the gate has followed the noise floor
        self.stats = EngineStats()
        self.quiet_windows = 0  # windows in a row the silence gate scored as silence (the latest included)
        self.calm_windows = 0  # windows in a row that could not lead to a detection (gated or screened)
        self.next_window_end = hop  # real-sample index where the next window ends
        self.overflows = 0  # reported by the source, passed through in events
        self.paused = False
        self._last_hop_audio = np.zeros(hop, dtype=np.float32)
        self.screened = False  # the last window was scored by an ensemble's first member alone
        self._held: int | None = None  # the end of a window waiting for the one after it (live, calm speech)
        self._last_scored: np.ndarray | None = None  # the probabilities of the last window scored
        # live, and settings under which a window between two calm ones cannot change a detection
        self._hold_allowed = self.config.skip_stale and self._calm_bounds() and self._skipping_is_safe()

    def _skipping_is_safe(self) -> bool:
        """Whether a window between two calm ones can change no detection (:meth:`_resolve_held`): every
        detector smooths over 2 hops or more, and with a base model beside, its veto (which looks back
        ``hops`` hops over the base model's smoothing) cannot reach back to the window from the earliest
        enrolled detection after a calm one (``smoothing_hops + min_count - 1`` hops on)."""
        if any(d.config.smoothing_hops < 2 for _, d in self._models()):
            return False
        own = self.detector.config
        return self.guard is None or (own.smoothing_hops + own.min_count
                                      >= self.guard.config.hops + self.base_detector.config.smoothing_hops - 1)

    def _gate_shut(self, end: int) -> bool:
        """Follow the noise floor over the audio the gate has not seen up to ``end``; True when the silence
        gate scores this window as silence (counted)."""
        if self.gate is None:
            return False
        new = max(0, min(end - self._gate_end, self.framer.window))  # samples the gate has not seen
        self._gate_end = end
        if self.gate.update(self.framer.window_audio(end)[self.framer.window - new:]):
            self.quiet_windows = 0
            return False
        self.stats.gated_windows += 1
        self.quiet_windows += 1
        self.calm_windows += 1
        return True

    def _score(self, end: int) -> tuple[np.ndarray, bool]:
        """The window's class probabilities, and whether the silence gate gave them (no network run).
        Whether the screen left the other members out is in ``self.screened``."""
        s = self.stats
        s.windows += 1
        self.screened = False
        if self._gate_shut(end):
            s.inference_ms_last = 0.0
            self._base_probs = self._silence
            return self._silence, True
        started = time.perf_counter()
        probs, self.screened = self.scorer.screened_probs(end, screen_limit(self.detector.config, self.scorer.members))
        s.screened_windows += self.screened
        calm = self.screened
        if self.base_scorer is not None:
            self._base_probs, base_screened = self.base_scorer.screened_probs(
                end, screen_limit(self.base_detector.config, self.base_scorer.members))
            calm = calm and base_screened
        self.calm_windows = self.calm_windows + 1 if calm else 0
        self._timed(started)
        return probs, False

    def _scored(self, end: int, held: bool = False) -> Scored:
        """The window ending at ``end`` scored now (:meth:`_score`), as the detector takes it."""
        probs, gated = self._score(end)
        return Scored(end, probs, gated, self.screened, held=held, inference_ms=self.stats.inference_ms_last,
                      base_probs=self._base_probs)

    def _timed(self, started: float) -> None:
        s = self.stats
        ms = (time.perf_counter() - started) * 1000
        s.inference_ms_last = ms
        s.inference_ms_total += ms
        s.inference_ms_max = max(s.inference_ms_max, ms)

    def _may_hold(self) -> bool:
        """Whether the next window may wait for the one after it (see :meth:`_resolve_held`)."""
        return (self._hold_allowed and self._held is None and self._last_scored is not None
                and self.calm_windows * self.config.hop_ms >= CALM_AFTER_SECONDS * 1000)

    def _resolve_held(self, end: int) -> list[Scored]:
        """Score the window ending at ``end`` and the held one before it, in order.

        A held window is never scored by the network when the windows on both sides of it could not lead
        to a detection (gated, or screened: :func:`~spotter.detector.screen_limit`): with
        ``smoothing_hops`` >= 2 every smoothing that holds it holds one of them too, so none reaches a
        threshold whatever it says, and it repeats the probabilities of the window before it
        (``skipped``; the base model beside gets its calm window after it: its veto cannot reach back
        to the window, :meth:`_skipping_is_safe`).
        Otherwise it is scored from its whole second of audio (every member of every model)."""
        held, self._held = self._held, None
        s = self.stats
        s.windows += 1
        self.screened = False
        held_gated = self._gate_shut(held)
        current = self._scored(end)
        if held_gated:
            return [Scored(held, self._silence, gated=True, held=True, base_probs=self._silence), current]
        if self.calm_windows:  # this window is calm too (gated, or screened by every model): calm on both sides
            s.skipped_windows += 1
            self.calm_windows += 1
            return [Scored(held, self._last_scored, skipped=True, held=True, base_probs=self._base_probs), current]
        started = time.perf_counter()
        held_probs = self.scorer.window_probs(self.framer.window_audio(held))
        base_probs = (None if self.base_scorer is None else
                      self.base_scorer.window_probs(self.base_scorer.framer.window_audio(held)))
        self._timed(started)
        return [Scored(held, held_probs, held=True, inference_ms=s.inference_ms_last, base_probs=base_probs), current]

    def flush(self) -> list:
        """The events of a window held for the next one (:meth:`_resolve_held`), scored now; [] if none."""
        if self._held is None:
            return []
        held, self._held = self._held, None
        return self._events([self._scored(held, held=True)])

    def feed(self, samples: np.ndarray, start: int | None = None, every_window: bool | None = None) -> list:
        """Add audio; returns the events of every window it completes (in order).

        ``start`` is the stream index of ``samples[0]`` when the source knows it:
        a jump forward means audio was lost (ring-buffer overrun); the stream
        clock jumps with it and the windows that would have ended in the gap
        are counted as dropped.  ``every_window`` scores every window the block
        completes, fed a hop at a time, even on a live engine (default: unless
        ``skip_stale``); a live engine otherwise scores only the newest.
        """
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        hop = self.config.hop_samples
        if every_window is None:
            every_window = not self.config.skip_stale
        if every_window and samples.size > hop:
            events = self.feed(samples[:hop], start, every_window=True)
            for i in range(hop, samples.size, hop):
                events += self.feed(samples[i: i + hop], every_window=True)
            return events
        events: list = []
        if start is not None and start != self.framer.stream_samples:
            events += self.flush()  # a held window is scored before the gap
            gap = start - self.framer.stream_samples
            if gap < 0:
                raise ValueError(f"audio block starts at sample {start}, before the stream's {self.framer.stream_samples}")
            for framer in self._framers:
                framer.skip(gap)
            self.stats.lost_samples += gap
            lost_ends = max(0, (self.framer.stream_samples - self.next_window_end) // hop + 1)
            self.stats.dropped_windows += lost_ends
            self.next_window_end += lost_ends * hop
        for framer in self._framers:
            framer.push(samples)
        self.stats.samples += samples.size
        if samples.size >= hop:
            self._last_hop_audio = samples[-hop:]
        elif samples.size:
            self._last_hop_audio = np.concatenate([self._last_hop_audio[samples.size:], samples])
        total = self.framer.stream_samples
        ends = list(range(self.next_window_end, total + 1, hop))
        if not ends:
            return events
        self.next_window_end = ends[-1] + hop
        if self.config.skip_stale and len(ends) > 1:
            self.stats.dropped_windows += len(ends) - 1
            ends = ends[-1:]
        if self.paused:
            self._held = None
            return events
        for end in ends:
            if self._held is not None:
                events += self._events(self._resolve_held(end))
            elif self._may_hold():
                self._held = end
            else:
                events += self._events([self._scored(end)])
        return events

    def _events(self, scored: list[Scored]) -> list:
        """The detector's verdicts and the events of scored windows, in order."""
        events: list = []
        for window in scored:
            t = window.end / SAMPLE_RATE
            probs = window.probs
            smoothed, detections = self.detector.update(t, probs)
            if self.guard is not None:
                base_smoothed, base_detections = self.base_detector.update(t, window.base_probs)
                voice = self.user_voice
                said = None if voice is None else (lambda end=window.end: voice.is_user(self.framer.window_audio(end)))
                detections = self.guard.update(t, detections, base_smoothed, base_detections, said)
            if not window.skipped:
                self._last_scored = probs
            # a held window's own hop of audio; else the newest hop fed
            last = (self.framer.window_audio(window.end)[-self.config.hop_samples:] if window.held
                    else self._last_hop_audio)
            level = math.sqrt(float(np.dot(last, last)) / max(1, last.size)) + 1e-10
            events.append(PosteriorUpdate(
                time=t, labels=self.labels, probs=tuple(probs.tolist()), smoothed=tuple(smoothed.tolist()),
                level_dbfs=20 * math.log10(level), inference_ms=window.inference_ms,
                dropped_windows=self.stats.dropped_windows, overflows=self.overflows, gated=window.gated,
                screened=window.screened, skipped=window.skipped))
            events.extend(detections)
            self.stats.detections += len(detections)
        return events

    @property
    def quiet_seconds(self) -> float:
        """How long the silence gate has kept the network from running (0 while it runs)."""
        return self.quiet_windows * self.config.hop_ms / 1000

    @property
    def calm_seconds(self) -> float:
        """How long no window could lead to a detection (the gate shut or the screen sure; 0 after one could)."""
        return self.calm_windows * self.config.hop_ms / 1000

    def calm_doze_allowed(self, hops_per_read: int) -> bool:
        """Whether a run may read up to ``hops_per_read`` hops at once in calm speech and announce no
        detection later: after a calm window (gated or screened: no smoothing that holds it reaches a threshold, as
        both give a keyword sum under :func:`~spotter.detector.screen_limit`'s bound), the first window that
        can reach one is ``smoothing_hops - 1`` hops on and the detection ``min_count - 1`` after that,
        so a read that holds the first window that could lead to a detection must not hold the detection.
        False when no member is screened (a single network, or settings that leave the screen no room)."""
        return self._calm_bounds() and all(d.config.smoothing_hops + d.config.min_count - 2 >= hops_per_read
                                           for _, d in self._models())

    def _calm_bounds(self) -> bool:
        """Whether a calm window bounds every smoothing that holds it: every model screened, with room (an
        unscreened scorer, ``--no-screen``, counts one member and so has no limit)."""
        return all(screen_limit(d.config, scorer.members) > 0 for scorer, d in self._models())

    def _models(self) -> list:
        """(window scorer, detector) of each model that runs: the model, and its base model beside it."""
        return [(self.scorer, self.detector)] + ([(self.base_scorer, self.base_detector)] if self.guard else [])

    def summary(self) -> dict:
        s = self.stats
        return {"event": "summary", "seconds": round(self.framer.stream_samples / SAMPLE_RATE, 3),
                "windows": s.windows, "gated_windows": s.gated_windows, "screened_windows": s.screened_windows,
                "skipped_windows": s.skipped_windows,
                "lost_seconds": round(s.lost_samples / SAMPLE_RATE, 3),
                "detections": s.detections, "dropped_windows": s.dropped_windows, "overflows": self.overflows,
                "inference_ms_mean": round(s.inference_ms_mean, 3), "inference_ms_max": round(s.inference_ms_max, 3),
                **({"base_vetoed": self.guard.vetoed, "base_own_voice": self.guard.own_voice}
                   if self.guard is not None else {})}


def run(source, engine: Engine, sink: Callable[[object], None], stop: threading.Event | None = None,
        read_timeout: float = 0.25, doze_s: float = DOZE_SECONDS, calm_doze_s: float = CALM_DOZE_SECONDS) -> dict:
    """Pull audio from ``source`` until it finishes or ``stop`` is set; every event goes to ``sink``.

    A live engine (``skip_stale``) in a room the silence gate has found silent for
    :data:`DOZE_AFTER_SECONDS` waits ``doze_s`` between reads, and in speech in which no window could
    lead to a detection for :data:`CALM_AFTER_SECONDS`, ``calm_doze_s`` (where
    :meth:`Engine.calm_doze_allowed`); either scores every hop that arrived meanwhile (0: never doze).
    Returns the engine's summary.  The source is started and always stopped.
    """
    stop = stop or threading.Event()
    live = engine.config.skip_stale
    doze_s = doze_s if live else 0.0

    def most_read(wait_s: float) -> int:  # the most hops a read after waiting ``wait_s`` can find
        return int(math.ceil(wait_s * 1000 / engine.config.hop_ms)) + 1

    calm_doze_s = calm_doze_s if live and calm_doze_s > 0 and engine.calm_doze_allowed(most_read(calm_doze_s)) else 0.0
    with source:
        while not stop.is_set():
            wait_s = 0.0
            if doze_s > 0 and engine.quiet_seconds >= DOZE_AFTER_SECONDS:
                wait_s = doze_s
            elif calm_doze_s > 0 and engine.calm_seconds >= CALM_AFTER_SECONDS:
                wait_s = calm_doze_s
            if wait_s and stop.wait(wait_s):
                break
            block = source.read(read_timeout)
            engine.overflows = source.overflows
            # a doze's backlog is scored window by window, so that a live engine drops none of it
            backlog = wait_s > 0 and block.samples.size <= most_read(wait_s) * engine.config.hop_samples
            events = engine.feed(block.samples, block.start, every_window=backlog or None)
            for event in events:
                sink(event)
            if source.finished and block.samples.size == 0:
                break
        for event in engine.flush():  # a window held for the next, which did not come
            sink(event)
    summary = engine.summary()
    summary["overruns"] = source.overruns
    if getattr(source, "reconnects", None) is not None:  # spotter listen --reconnect
        summary["reconnects"] = source.reconnects
    return summary


def replay_file(model, path, config: EngineConfig | None = None, block_ms: float = 20) -> tuple[list, dict]:
    """Replay a WAV file as fast as possible through the full engine: all its events and the summary."""
    from .audio import WavSource

    events: list = []
    summary = run(WavSource(path, realtime=False, block_ms=block_ms), Engine(model, config), events.append)
    return events, summary


class GracefulExit:
    """Context manager turning SIGTERM into a set stop-event (Ctrl-C is handled by the caller)."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
        return False
