"""Calm speech: a live engine leaves out windows that no detection can depend on, and dozes lightly.

A person reading keyword-free sentences, then the example recording's eight keywords, then reading
again: a live engine (as ``listen`` runs) must announce the same detections at the same times as an
engine that scores every window, while the network scores only about half of the reading's windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from spotter.checkpoint import load_model
from spotter.detector import DetectorConfig, detector_settings, screen_limit
from spotter.events import Detection, PosteriorUpdate
from spotter.gate import GateConfig
from spotter.pipeline import CALM_DOZE_SECONDS, Engine, EngineConfig
from spotter.pipeline import run as run_source

from test_enroll import reading
from test_gate import CountedReplay, room

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "keywords.wav"
SR = 16000
HOP = 1600


@pytest.fixture(scope="module")
def stream() -> np.ndarray:
    speech = reading(12.0)
    keywords = sf.read(EXAMPLE, dtype="float32")[0]
    return np.concatenate([speech, keywords, speech]).astype(np.float32)


def load(runtime: str):
    """The shipped model in ``runtime``."""
    if runtime == "torch":
        return load_model(None, device="cpu")
    pytest.importorskip("onnxruntime")
    from spotter.exported import load_exported

    return load_exported(ROOT / "checkpoints" / "bcresnet-3-synth.onnx")


def scored(engine: Engine, audio: np.ndarray) -> tuple[list, list]:
    """Fed a hop at a time, as a microphone's blocks arrive; the posteriors and the detections."""
    events = []
    for i in range(0, audio.size - audio.size % HOP, HOP):
        events += engine.feed(audio[i: i + HOP])
    events += engine.flush()
    return [e for e in events if isinstance(e, PosteriorUpdate)], [e for e in events if isinstance(e, Detection)]


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_a_live_engine_skips_calm_windows_with_the_same_detections(stream, runtime):
    model = load(runtime)
    every = Engine(model, EngineConfig(gate=GateConfig()))  # every window scored
    live = Engine(model, EngineConfig(skip_stale=True, gate=GateConfig()))  # what listen runs
    want, want_detections = scored(every, stream)
    got, got_detections = scored(live, stream)

    assert len(want_detections) >= 8  # the example's eight keywords at least
    assert [(d.keyword, round(d.time, 3)) for d in got_detections] == \
        [(d.keyword, round(d.time, 3)) for d in want_detections]
    assert np.allclose([d.confidence for d in got_detections], [d.confidence for d in want_detections], atol=1e-5)
    # every window is announced, in order, none dropped
    assert [round(u.time, 3) for u in got] == [round(u.time, 3) for u in want]
    assert live.summary()["dropped_windows"] == 0 and every.summary()["skipped_windows"] == 0

    skipped = np.array([u.skipped for u in got])
    windows = len(got)
    assert live.summary()["skipped_windows"] == skipped.sum() >= windows // 4  # the reading: about half
    assert not skipped[0] and not any(a and b for a, b in zip(skipped, skipped[1:]))  # never two in a row
    assert all(u.inference_ms == 0 for u in got if u.skipped or u.gated)
    assert all(u.inference_ms > 0 for u in got if not (u.skipped or u.gated))  # each its own time
    want_probs, got_probs = np.array([u.probs for u in want]), np.array([u.probs for u in got])
    # a scored window is what the every-window engine scored, or, held for the next one and then scored
    # after all, every member's (the ensemble's, unscreened); a skipped one repeats the window before it
    same = ~skipped & (np.array([u.screened for u in got]) == np.array([u.screened for u in want]))
    assert np.abs(got_probs[same] - want_probs[same]).max() <= 1e-5
    unscreened, _ = scored(Engine(model, EngineConfig(gate=GateConfig(), screen=False)), stream)
    whole = ~skipped & ~same
    assert np.abs(got_probs[whole] - np.array([u.probs for u in unscreened])[whole]).max() <= 1e-5
    assert np.array_equal(got_probs[skipped], got_probs[np.flatnonzero(skipped) - 1])
    # what a skipped window really scored could not have mattered: every smoothing that holds it (this hop
    # and the next, at smoothing_hops 2) stays under what a detection needs
    config = detector_settings(getattr(model, "meta", {}))
    assert config.smoothing_hops == 2 and screen_limit(config, 2) > 0
    keyword_sum = np.array([u.smoothed for u in want])[:, :10].sum(axis=1)
    held = np.flatnonzero(skipped)
    assert keyword_sum[held].max() < config.threshold and keyword_sum[held + 1].max() < config.threshold
    # and some windows really were left out with something to say: the reading is not silence
    assert np.abs(got_probs[skipped] - want_probs[skipped]).max() > 0.01


def test_a_held_window_is_scored_before_a_backlog_or_a_gap(stream):
    model = load("onnx")
    for backlog in (True, False):  # six seconds at once (the engine fell behind); or ten hops lost, then one
        live = Engine(model, EngineConfig(skip_stale=True, gate=GateConfig()))
        events, n = [], 0
        while n < 25 or live._held is None:  # over two seconds of reading, until a window waits for the next
            events += live.feed(stream[n * HOP: (n + 1) * HOP])
            n += 1
        assert any(e.skipped for e in events if isinstance(e, PosteriorUpdate))
        if backlog:
            events += live.feed(stream[n * HOP: (n + 60) * HOP])
        else:
            events += live.feed(stream[(n + 10) * HOP: (n + 11) * HOP], start=(n + 10) * HOP)
        last = n + (60 if backlog else 11)
        events += live.feed(stream[last * HOP: (last + 1) * HOP]) + live.flush()
        times = [round(e.time, 1) for e in events if isinstance(e, PosteriorUpdate)]
        assert times[:n] == [round(0.1 * k, 1) for k in range(1, n + 1)]  # the held window, scored first
        assert times[n:] == [round(0.1 * last, 1), round(0.1 * (last + 1), 1)]  # then only the newest, and on
        assert live.summary()["dropped_windows"] == (59 if backlog else 10)


def test_without_the_screen_or_between_keywords_nothing_is_skipped(stream):
    model = load_model(None, device="cpu")
    unscreened = Engine(model, EngineConfig(skip_stale=True, gate=GateConfig(), screen=False))
    reading_then_quiet = np.concatenate([stream[: 6 * SR], room(4.0, -70.0, seed=3)])  # then 3 s gated
    assert scored(unscreened, reading_then_quiet)[0] and unscreened.summary()["skipped_windows"] == 0
    assert unscreened.summary()["gated_windows"] >= 25
    assert not unscreened.calm_doze_allowed(1)  # --no-screen: every hop scored, awake
    # no smoothing: a window's own score can fire, so none may go unscored
    unsmoothed = DetectorConfig(threshold=0.95, smoothing_hops=1, min_count=2)
    single = Engine(model, EngineConfig(skip_stale=True, gate=GateConfig(), detector=unsmoothed))
    assert not single.calm_doze_allowed(3) and screen_limit(unsmoothed, 2) > 0
    assert scored(single, stream[: 6 * SR])[0] and single.summary()["skipped_windows"] == 0
    shipped = Engine(model, EngineConfig(skip_stale=True, gate=GateConfig()))
    assert shipped.calm_doze_allowed(3) and not shipped.calm_doze_allowed(4)  # 3 hops from calm to a detection
    keywords = sf.read(EXAMPLE, dtype="float32")[0]
    live = Engine(model, EngineConfig(skip_stale=True, gate=GateConfig()))
    updates, _ = scored(live, keywords[: 3 * SR])  # less than a second calm before the first keyword
    assert not any(u.skipped for u in updates if u.time < 1.0)


def test_a_live_run_in_calm_speech_wakes_half_as_often_and_fires_on_time(stream, tmp_path):
    model = load("onnx")
    keywords = sf.read(EXAMPLE, dtype="float32")[0]
    path = tmp_path / "reading-then-yes.wav"
    sf.write(path, np.concatenate([reading(5.0), keywords[: 3 * SR]]), SR)  # the example's first keyword at 6.5 s
    runs = {}
    for calm_s in (0.0, CALM_DOZE_SECONDS):
        source = CountedReplay(path, realtime=True, block_ms=100)
        engine = Engine(model, EngineConfig(skip_stale=True, gate=GateConfig()))
        events: list = []
        summary = run_source(source, engine, events.append, calm_doze_s=calm_s)
        runs[calm_s] = {"windows": [round(e.time, 3) for e in events if isinstance(e, PosteriorUpdate)],
                        "detections": [(e.keyword, round(e.time, 3)) for e in events if isinstance(e, Detection)],
                        "dropped": summary["dropped_windows"],
                        "wakes in speech": sum(1.5 <= at < 4.5 for at in source.read_at)}
    awake, dozing = runs[0.0], runs[CALM_DOZE_SECONDS]
    assert len(awake["detections"]) == 1 and dozing["detections"] == awake["detections"]
    assert dozing["windows"] == awake["windows"] and len(awake["windows"]) == 80  # every window, none dropped
    assert awake["dropped"] == dozing["dropped"] == 0
    assert awake["wakes in speech"] >= 25 and dozing["wakes in speech"] <= 0.6 * awake["wakes in speech"]
