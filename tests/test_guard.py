"""An enrolled model with its base model beside it (spotter.guard): the rules on posteriors, then the
engine, the checkpoint and the exported graphs with a real enrolled model on real takes."""

from __future__ import annotations

import numpy as np
import pytest

from spotter.config import LABELS
from spotter.detector import DetectorConfig
from spotter.guard import Guard, GuardConfig, guarded_offline

from test_detector import NO, UNKNOWN, YES, posterior
from test_enroll import reading, write, write_stream, write_takes

UP = LABELS.index("up")
ENROLLED = DetectorConfig(threshold=0.9, smoothing_hops=1, min_count=1, refractory_s=1.0)
BASE = DetectorConfig(threshold=0.8, smoothing_hops=1, min_count=1, refractory_s=1.0)
TIMES = np.round(np.arange(1, 31) * 0.1, 3)


def hops(*parts) -> np.ndarray:
    """Posteriors of 30 hops: ``unknown`` except ``(first hop, last hop, label, p)`` runs."""
    rows = [posterior(UNKNOWN, 0.9) for _ in TIMES]
    for a, b, label, p in parts:
        rows[a:b] = [posterior(label, p)] * (b - a)
    return np.array(rows)


def online(enrolled, base, config=GuardConfig(), users=None, voice_keywords=()) -> list:
    from spotter.detector import Detector

    e, b = Detector(LABELS, ENROLLED), Detector(LABELS, BASE)
    guard = Guard(LABELS, config, 1.0, voice_keywords)
    out = []
    for i, (t, pe, pb) in enumerate(zip(TIMES, enrolled, base)):
        _, fired_e = e.update(float(t), pe)
        smoothed, fired_b = b.update(float(t), pb)
        out += guard.update(float(t), fired_e, smoothed, fired_b, None if users is None else (lambda i=i: users(i)))
    return out


def both(enrolled, base, config=GuardConfig(), users=None, voice_keywords=()) -> list[tuple[str, float]]:
    """The guard's detections hop by hop, checked equal to the offline replay of the same posteriors;
    ``users(i)``: whether the user said hop i's window (None: no voice model)."""
    a = [(d.keyword, d.time) for d in online(enrolled, base, config, users, voice_keywords)]
    b = [(d.keyword, d.time) for d in guarded_offline(LABELS, ENROLLED, BASE, config, TIMES, enrolled, base,
                                                      users, voice_keywords)]
    assert a == b
    return a


def test_the_base_models_detections_stand_beside_the_enrolled_models():
    # the enrolled model finds "yes" (its user's); the base model finds "no" later (another voice): both stand
    enrolled = hops((3, 6, YES, 0.97))
    base = hops((15, 18, NO, 0.9))
    assert both(enrolled, base) == [("yes", 0.4), ("no", 1.6)]


def test_an_enrolled_detection_is_dropped_when_the_base_model_is_sure_of_another_keyword():
    # the enrolled model says "yes" where the base model is sure of "up": the base model's word stands
    enrolled = hops((10, 13, YES, 0.97))
    base = hops((9, 13, UP, 0.85))
    assert both(enrolled, base) == [("up", 1.0)]
    # the base model only unsure (0.4 on "up", below the veto): the enrolled model's "yes" stands
    assert both(enrolled, hops((9, 13, UP, 0.4))) == [("yes", 1.1)]
    # the base model sure of the *same* keyword never vetoes it; the one detection, not two
    assert both(enrolled, hops((9, 13, YES, 0.85))) == [("yes", 1.0)]


def test_the_veto_looks_back_hops_hops_only():
    enrolled = hops((20, 22, YES, 0.97))  # fires at hop 20 (t = 2.1)
    base = hops((14, 16, UP, 0.7))  # sure of "up" 5-6 hops before, below its own threshold: it never fires
    assert both(enrolled, base, GuardConfig(veto=0.5, hops=4)) == [("yes", 2.1)]
    assert both(enrolled, base, GuardConfig(veto=0.5, hops=8)) == []


def test_one_detection_within_the_refractory_time_whichever_model_fired_it():
    enrolled = hops((10, 12, YES, 0.97))  # t = 1.1
    base = hops((14, 16, YES, 0.9), (25, 27, NO, 0.9))  # t = 1.5 (within 1 s: dropped), 2.6 (stands)
    assert both(enrolled, base) == [("yes", 1.1), ("no", 2.6)]


def test_in_the_users_voice_the_base_models_detections_of_enrolled_words_are_left_to_the_enrolled_model():
    # the base model fires "yes" at hop 15 (t = 1.6) and "no" at hop 25 (t = 2.6); the enrolled model stays quiet
    base = hops((15, 17, YES, 0.9), (25, 27, NO, 0.9))
    enrolled = hops()
    user_from_hop_20 = lambda i: i >= 20  # noqa: E731  the user speaks from hop 20 on
    # "no" was enrolled and the user said it: dropped; "yes", said by someone else, stands
    assert both(enrolled, base, users=user_from_hop_20, voice_keywords=("yes", "no")) == [("yes", 1.6)]
    # a word the user did not enroll stays the base model's, whoever said it
    assert both(enrolled, base, users=user_from_hop_20, voice_keywords=("yes",)) == [("yes", 1.6), ("no", 2.6)]
    # without a voice model, every base-model detection stands
    assert both(enrolled, base, voice_keywords=("yes", "no")) == [("yes", 1.6), ("no", 2.6)]
    # the enrolled model's own detections never ask the voice
    assert both(hops((25, 27, NO, 0.97)), hops(), users=lambda i: True, voice_keywords=("no",)) == [("no", 2.6)]


def test_the_voice_is_asked_only_for_a_base_detection_that_would_stand():
    asked = []

    def users(i):
        asked.append(i)
        return True

    # the enrolled model fires "yes" at hop 10; the base model's "yes" at hop 14 is within the refractory time
    both(hops((10, 12, YES, 0.97)), hops((14, 16, YES, 0.9)), users=users, voice_keywords=("yes",))
    assert asked == []


def test_guard_settings_are_checked_and_travel_as_plain_values():
    assert GuardConfig.from_meta(GuardConfig(veto=0.7, hops=3).to_meta()) == GuardConfig(veto=0.7, hops=3)
    assert GuardConfig.from_meta(None) == GuardConfig()
    with pytest.raises(ValueError, match="veto"):
        GuardConfig(veto=0.0)
    with pytest.raises(ValueError, match="unusable"):
        GuardConfig.from_meta({"veto": "high"})


# -- a real enrolled model --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def enrolled_checkpoint(tmp_path_factory):
    """The shipped model enrolled on a flite voice's takes (a few steps), written as `spotter enroll` does."""
    from spotter.checkpoint import load_model
    from spotter.enroll.profile import read_enrollment
    from spotter.enroll.run import enroll

    folder = tmp_path_factory.mktemp("takes")
    write_takes(folder, ["yes", "up", "down"], n=2)
    write(folder / "_speech_" / "reading.wav", reading())
    out = folder / "enrolled.pt"
    enroll(load_model(None, device="cpu"), read_enrollment(folder, ["yes", "up", "down"]), out, None, "shipped",
           progress=False, steps=20)
    return out


@pytest.fixture(scope="module")
def mixed_stream(tmp_path_factory):
    """Other takes of the enrolled voice and of the words it did not enroll."""
    from spotter.data.labels import LabelEvent, write_labels

    path = tmp_path_factory.mktemp("stream") / "stream.wav"
    times = write_stream(path, [(k, i) for i in range(10, 12) for k in ("yes", "up", "down", "no", "stop", "left")])
    write_labels(path.with_suffix(".csv"), [LabelEvent(k, a, b, k) for k, a, b in times])
    return path


@pytest.mark.slow
def test_an_enrolled_checkpoint_keeps_its_base_model_and_its_settings(enrolled_checkpoint):
    import torch

    from spotter.checkpoint import load_model, read_checkpoint
    from spotter.voice import background

    model, shipped = load_model(enrolled_checkpoint, device="cpu"), load_model(None, device="cpu")
    assert {k: model.meta["guard"][k] for k in ("veto", "hops")} == GuardConfig().to_meta()
    assert model.guard.config == GuardConfig()
    # the user's voice model, adapted to their takes and reading, for the keywords they enrolled
    assert model.guard.voice_keywords == ("yes", "up", "down")
    assert not np.allclose(model.guard.voice.user_means, background().means)
    base = model.guard.model
    assert base.meta["detector"] == shipped.meta["detector"] and model.guard.detector.threshold == 0.85
    assert all(torch.equal(a, b) for a, b in zip(base.state_dict().values(), shipped.state_dict().values()))
    assert not any(k.startswith("guard") for k in model.state_dict())  # a holder, not a submodule
    ckpt = read_checkpoint(enrolled_checkpoint)
    assert set(ckpt["base"]) >= {"model", "labels", "frontend", "state_dict", "meta"} and "base" not in ckpt["base"]


@pytest.mark.slow
def test_the_engine_runs_both_models_and_fires_what_the_offline_replay_fires(enrolled_checkpoint, mixed_stream):
    import soundfile as sf

    from spotter.checkpoint import load_model
    from spotter.detector import detect_offline, detector_from_meta
    from spotter.evaluation.tuning import stream_posteriors
    from spotter.guard import stream_user_voice
    from spotter.events import Detection
    from spotter.pipeline import EngineConfig, replay_file

    model = load_model(enrolled_checkpoint, device="cpu")
    events, summary = replay_file(model, mixed_stream, EngineConfig())  # the engine: both models, screened
    guarded = [(e.keyword, round(e.time, 2)) for e in events if isinstance(e, Detection)]
    mine, theirs = (stream_posteriors(m, mixed_stream, batched=True) for m in (model, model.guard.model))
    mine_detector = detector_from_meta(model.meta)
    beside = model.guard
    said = stream_user_voice(beside.voice, sf.read(str(mixed_stream), dtype="float32")[0], mine.times)
    offline = guarded_offline(model.labels, mine_detector, beside.detector, beside.config,
                              mine.times, mine.probs, theirs.probs, said, beside.voice_keywords)
    assert guarded == [(d.keyword, round(d.time, 2)) for d in offline]
    assert summary["base_vetoed"] >= 0 and summary["base_own_voice"] >= 0
    alone, base = (detect_offline(model.labels, c, mine.times, p.probs)
                   for c, p in ((mine_detector, mine), (model.guard.detector, theirs)))
    # every word said is found: the enrolled model alone misses one of the words it was not enrolled on (measured:
    # 11 of 12), the base model alone this voice's "up" and "down" (8 of 12)
    said = [k for i in range(10, 12) for k in ("yes", "up", "down", "no", "stop", "left")]
    assert [k for k, _ in guarded] == said
    assert len(alone) < len(said) and len(base) < len(said)


@pytest.mark.slow
def test_in_the_users_voice_the_base_model_leaves_their_enrolled_words_to_the_enrolled_model(enrolled_checkpoint,
                                                                                             mixed_stream):
    import dataclasses

    from spotter.checkpoint import load_model
    from spotter.detector import detect_offline, detector_from_meta
    from spotter.evaluation.tuning import stream_posteriors
    from spotter.events import Detection
    from spotter.pipeline import EngineConfig, replay_file

    model = load_model(enrolled_checkpoint, device="cpu")
    # the enrolled model made deaf (it never fires): what stands is the base model's, less the user's enrolled words
    deaf = dataclasses.replace(detector_from_meta(model.meta), min_count=100_000)
    events, summary = replay_file(model, mixed_stream, EngineConfig(detector=deaf))
    fired = [e.keyword for e in events if isinstance(e, Detection)]
    theirs = stream_posteriors(model.guard.model, mixed_stream)
    base = [d.keyword for d in detect_offline(model.labels, model.guard.detector, theirs.times, theirs.probs)]
    enrolled_words = set(model.guard.voice_keywords)  # yes, up, down; the stream's no, stop, left were not enrolled
    assert [k for k in base if k not in enrolled_words] == [k for k in fired if k not in enrolled_words]
    assert summary["base_own_voice"] == len(base) - len(fired) >= 1  # measured: both "yes", left to the enrolled model
    without_voice = dataclasses.replace(model.guard, voice=None)
    model.guard = without_voice
    events, summary = replay_file(model, mixed_stream, EngineConfig(detector=deaf))
    assert [e.keyword for e in events if isinstance(e, Detection)] == base and summary["base_own_voice"] == 0


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_exported_enrolled_model_carries_its_base_models_graphs(enrolled_checkpoint, mixed_stream, tmp_path):
    pytest.importorskip("onnxruntime")
    from spotter.checkpoint import load_model
    from spotter.events import Detection
    from spotter.export import export_onnx
    from spotter.exported import base_path, load_exported
    from spotter.pipeline import EngineConfig, replay_file

    model = load_model(enrolled_checkpoint, device="cpu")
    out = tmp_path / "enrolled.onnx"
    export_onnx(model, out)
    assert base_path(out).is_file()
    exported = load_exported(out)
    assert exported.guard is not None and exported.guard.detector == model.guard.detector
    assert exported.guard.voice_keywords == model.guard.voice_keywords
    x = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    assert exported.guard.voice.score(x) == model.guard.voice.score(x)  # the same voice model, every digit
    fired = lambda m: [(e.keyword, round(e.time, 1)) for e in replay_file(m, mixed_stream, EngineConfig())[0]  # noqa: E731
                       if isinstance(e, Detection)]
    assert fired(exported) == fired(model)
    base_path(out).unlink()
    with pytest.raises(Exception, match="base model it keeps"):
        load_exported(out)


@pytest.mark.slow
def test_listen_runs_the_base_beside_unless_no_base_and_info_says_so(enrolled_checkpoint, mixed_stream, capsys):
    import json

    from spotter.cli import main

    summaries = {}
    for flags in ([], ["--no-base"]):
        assert main(["listen", "--model", str(enrolled_checkpoint), "--wav", str(mixed_stream), "--json", *flags]) == 0
        lines = [json.loads(s) for s in capsys.readouterr().out.splitlines() if s.startswith("{")]
        summaries[tuple(flags)] = [e for e in lines if e["event"] == "summary"][-1]
    assert "base_vetoed" in summaries[()] and "base_vetoed" not in summaries[("--no-base",)]
    assert summaries[()]["detections"] == 12 and summaries[("--no-base",)]["detections"] < 12  # as measured above
    assert main(["info", str(enrolled_checkpoint)]) == 0
    out = capsys.readouterr().out
    assert "beside:    its base model (bcresnet-3+bcresnet-3, threshold 0.85)" in out
    assert "voice:     the user's voice model (64 components, threshold 1.5)" in out


@pytest.mark.slow
@pytest.mark.parametrize("base_threshold", [None, 0.8])  # the shipped base detector's; one the screen passes less
def test_a_live_engine_with_the_base_model_beside_skips_calm_windows_with_the_same_detections(enrolled_checkpoint,
                                                                                             mixed_stream,
                                                                                             base_threshold):
    import dataclasses

    import soundfile as sf

    from spotter.checkpoint import load_model
    from spotter.detector import detector_from_meta, screen_limit
    from spotter.events import Detection, PosteriorUpdate
    from spotter.gate import GateConfig
    from spotter.pipeline import Engine, EngineConfig

    model = load_model(enrolled_checkpoint, device="cpu")
    if base_threshold is not None:
        model.guard = dataclasses.replace(model.guard,
                                          detector=dataclasses.replace(model.guard.detector, threshold=base_threshold))
    speech = reading(12.0)
    stream = np.concatenate([speech, sf.read(str(mixed_stream), dtype="float32")[0], speech])

    def scored(engine):  # fed a hop at a time, as a microphone's blocks arrive
        events = [e for i in range(0, stream.size - stream.size % 1600, 1600) for e in engine.feed(stream[i: i + 1600])]
        events += engine.flush()
        return ([e for e in events if isinstance(e, PosteriorUpdate)],
                [(e.keyword, round(e.time, 3), round(e.confidence, 4)) for e in events if isinstance(e, Detection)])

    every = Engine(model, EngineConfig(gate=GateConfig()))
    live = Engine(model, EngineConfig(skip_stale=True, gate=GateConfig()))  # what listen runs
    (want, want_detections), (got, got_detections) = scored(every), scored(live)
    assert len(want_detections) >= 12 and got_detections == want_detections  # both models' detections, same times
    assert [round(u.time, 3) for u in got] == [round(u.time, 3) for u in want]
    for key in ("base_vetoed", "base_own_voice"):
        assert live.summary()[key] == every.summary()[key]
    skipped = np.array([u.skipped for u in got])
    assert live.summary()["skipped_windows"] == skipped.sum() >= 12.0 * 10 // 4  # a quarter of a reading's hops
    assert not any(a and b for a, b in zip(skipped, skipped[1:]))
    # skipped only between windows both models were sure of (gated, or screened by each model's own detector)
    held = np.flatnonzero(skipped)
    for m, config in ((model, detector_from_meta(model.meta)), (model.guard.model, model.guard.detector)):
        assert config.smoothing_hops == 2 and screen_limit(config, 2) > 0
        alone, _ = scored(Engine(m, EngineConfig(gate=GateConfig(), detector=config, guard=False)))
        calm = np.array([u.gated or u.screened for u in alone])
        assert calm[held - 1].all() and calm[held + 1].all()
    # settings that let the base model's veto reach back to a skipped window skip nothing
    close = dataclasses.replace(detector_from_meta(model.meta), min_count=2)  # 2 + 2 < 4 hops + 2 - 1
    near = Engine(model, EngineConfig(skip_stale=True, gate=GateConfig(), detector=close))
    assert scored(near)[0] and near.summary()["skipped_windows"] == 0


@pytest.mark.slow
def test_bench_times_the_base_model_beside_an_enrolled_one(enrolled_checkpoint, monkeypatch):
    import spotter.pipeline
    from spotter.bench import format_report, run_bench

    hops = []  # the windows each scorer was asked for: (the model scored, whether every member had to run)
    real = spotter.pipeline.window_scorer

    def watched(model, **options):
        scorer = real(model, **options)
        screened_probs = scorer.screened_probs
        scorer.screened_probs = lambda end, limit: (hops.append((model, limit == 0.0)), screened_probs(end, limit))[1]
        return scorer

    monkeypatch.setattr(spotter.pipeline, "window_scorer", watched)
    result = run_bench(str(enrolled_checkpoint), "cpu", iterations=4, warmup=2, runtime="torch")
    enrolled, base = {id(m): m for m, _ in hops}.values()
    assert base is enrolled.guard.model and result["base_model"] == base.name == "bcresnet-3+bcresnet-3"
    for model in (enrolled, base):  # both on every hop: warm-up, every member, screened
        assert [every for m, every in hops if m is model] == [True] * 2 + [True] * 4 + [False] * 4
    assert "beside:   its base model (bcresnet-3+bcresnet-3)" in format_report(result)
    hops.clear()
    shipped = run_bench(None, "cpu", iterations=4, warmup=2, runtime="torch")
    assert shipped["base_model"] is None and len({id(m) for m, _ in hops}) == 1 and len(hops) == 10
    assert "beside:" not in format_report(shipped)


@pytest.mark.parametrize("damage, message", [
    (lambda c: c["base"].pop("state_dict"), "the base model it keeps.*missing state_dict; enroll again"),
    (lambda c: c.__setitem__("base", [1, 2]), "the base model it keeps.*a list, not a checkpoint"),
    (lambda c: c["meta"].__setitem__("guard", {"veto": 7}), r"guard veto 7: a probability in \(0, 1\]"),
    (lambda c: c["meta"]["guard"]["voice"].pop("means"), "the user's voice model.*unusable.*enroll again"),
])
def test_a_damaged_base_model_or_guard_is_one_line_naming_the_file(damage, message, tmp_path):
    import torch

    from spotter.checkpoint import CheckpointError, load_model, make_checkpoint
    from spotter.voice import background

    shipped = load_model(None, device="cpu")
    voice = background().adapted([np.random.default_rng(0).standard_normal(16000) * 0.1])
    guard = {**GuardConfig().to_meta(), "voice": voice.to_meta(), "voice_keywords": ["yes"]}
    ckpt = make_checkpoint(shipped, {**shipped.meta, "guard": guard})
    ckpt["base"] = make_checkpoint(shipped, shipped.meta)
    path = tmp_path / "enrolled.pt"
    torch.save(ckpt, path)
    assert load_model(path, device="cpu").guard.config == GuardConfig()  # undamaged: it loads, with its base
    damage(ckpt)
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=message) as err:
        load_model(path, device="cpu")
    assert str(path) in str(err.value) and "\n" not in str(err.value)
