"""Detector tuning on stored posteriors: per-keyword thresholds within a false-alarm budget."""

from __future__ import annotations

import numpy as np
import pytest

from spotter.config import KEYWORDS, LABELS
from spotter.detector import DetectorConfig
from spotter.data.labels import LabelEvent
from spotter.evaluation.tuning import StreamPosteriors, grid_search, keyword_thresholds

HOP = 0.1
GRID = (0.7, 0.8, 0.85, 0.9, 0.95, 0.99)


def _stream(name, seconds, bursts, labels):
    """Posteriors of ``seconds`` of audio: 'unknown' at 0.9, except ``bursts`` (time, keyword, p, hops)."""
    times = np.round(np.arange(1, int(seconds / HOP) + 1) * HOP, 3)
    probs = np.full((times.size, len(LABELS)), 0.01)
    probs[:, LABELS.index("unknown")] = 0.9
    for t, keyword, p, hops in bursts:
        i = int(round(t / HOP))
        row = np.full(len(LABELS), (1 - p) / (len(LABELS) - 1))
        row[LABELS.index(keyword)] = p
        probs[i:i + hops] = row
    return StreamPosteriors(name, times, probs, labels, float(seconds))


def _streams(off_peak):
    words = [(5 + 10 * i, "off" if i % 2 == 0 else "yes") for i in range(8)]
    keyword_stream = _stream("kw", 90, [(t + 0.5, w, off_peak if w == "off" else 0.99, 5) for t, w in words],
                             [LabelEvent(w, t, t + 0.4, w) for t, w in words])
    speech = _stream("speech", 3600, [(100, "yes", 0.93, 4), (900, "yes", 0.93, 4), (2000, "yes", 0.93, 4),
                                      (1500, "off", 0.75, 4), (2500, "off", 0.75, 4)],
                     [LabelEvent("speech", 0.0, 3600.0, "...")])
    return [keyword_stream, speech]


def test_each_keyword_gets_the_highest_threshold_that_finds_it():
    base = DetectorConfig(threshold=0.95, smoothing_hops=1, min_count=3)
    tuned = keyword_thresholds(_streams(0.86), LABELS, base, GRID, max_fa_per_hour=2.0)
    assert tuned.thresholds["yes"] == 0.99 and tuned.thresholds["off"] == 0.85
    assert all(tuned.thresholds[k] == 0.99 for k in KEYWORDS if k not in ("yes", "off"))
    assert (tuned.smoothing_hops, tuned.min_count) == (1, 3)
    row = grid_search(_streams(0.86), LABELS, [base, tuned], 0.75, 2.0)
    assert row[0]["config"] == tuned and row[0]["recall"] == 1.0 and row[0]["false_alarms"] == 0
    assert row[1]["recall"] == 0.5  # the global 0.95 misses every 'off'


def test_the_false_alarm_budget_decides_how_low_a_threshold_may_go():
    base = DetectorConfig(threshold=0.95, smoothing_hops=1, min_count=3)
    # 'off' peaks at 0.72: only 0.7 finds it, and 0.7 also fires twice on the hour of speech
    within = keyword_thresholds(_streams(0.72), LABELS, base, GRID, max_fa_per_hour=2.0)
    assert within.thresholds["off"] == 0.7
    row = grid_search(_streams(0.72), LABELS, [within], 0.75, 2.0)[0]
    assert row["recall"] == 1.0 and row["false_alarms"] == 2
    strict = keyword_thresholds(_streams(0.72), LABELS, base, GRID, max_fa_per_hour=1.0)
    assert strict.thresholds["off"] == 0.99 and strict.thresholds["yes"] == 0.99
    assert grid_search(_streams(0.72), LABELS, [strict], 0.75, 1.0)[0]["false_alarms"] == 0
    with pytest.raises(KeyError):
        strict.thresholds["unknown"]


def test_the_worst_stream_objective_serves_the_hardest_voice():
    # voice A: 9 short (2-hop) and 4 long keywords at 0.99; voice B: 8 long ones at only 0.86
    a_words = [(5 + 10 * i, 2 if i < 9 else 5) for i in range(13)]
    voice_a = _stream("voice-a", 140, [(t + 0.5, "yes", 0.99, hops) for t, hops in a_words],
                      [LabelEvent("yes", t, t + 0.4, "yes") for t, _ in a_words])
    voice_b = _stream("voice-b", 90, [(5 + 10 * i + 0.5, "yes", 0.86, 5) for i in range(8)],
                      [LabelEvent("yes", 5 + 10 * i, 5.4 + 10 * i, "yes") for i in range(8)])
    speech = _stream("speech", 3600, [(t, "yes", 0.9, 3) for t in (100, 1000, 2000)],
                     [LabelEvent("speech", 0.0, 3600.0, "...")])
    strict = DetectorConfig(threshold=0.95, smoothing_hops=1, min_count=2)  # all of A, none of B
    patient = DetectorConfig(threshold=0.85, smoothing_hops=1, min_count=4)  # A's long ones and all of B
    eager = DetectorConfig(threshold=0.85, smoothing_hops=1, min_count=2)  # everything, and 3 false alarms
    streams = [voice_a, voice_b, speech]
    pooled = grid_search(streams, LABELS, [eager, strict, patient], 0.75, 2.0)
    assert [r["config"] for r in pooled] == [strict, patient, eager]
    assert pooled[0]["recall"] == 13 / 21 and pooled[0]["worst_recall"] == 0 and pooled[0]["worst_stream"] == "voice-b"
    worst = grid_search(streams, LABELS, [eager, strict, patient], 0.75, 2.0, objective="worst-stream")
    assert [r["config"] for r in worst] == [patient, strict, eager]
    assert worst[0]["worst_recall"] == 4 / 13 and worst[0]["worst_stream"] == "voice-a"
    assert worst[2]["false_alarms"] == 3  # outside the budget, whatever it finds
    with pytest.raises(ValueError, match="worst-stream"):
        grid_search(streams, LABELS, [strict], objective="mean")


def test_batched_scoring_equals_the_streaming_engine():
    from pathlib import Path

    from spotter.checkpoint import load_model
    from spotter.evaluation.tuning import stream_posteriors

    example = Path(__file__).resolve().parents[1] / "examples" / "keywords.wav"
    model = load_model(None, device="cpu")
    engine = stream_posteriors(model, example)
    batched = stream_posteriors(model, example, batched=True, batch_size=64)
    assert batched.times.shape == engine.times.shape and np.allclose(batched.times, engine.times)
    assert batched.duration_s == pytest.approx(engine.duration_s)
    assert np.abs(batched.probs - engine.probs).max() < 1e-4
    assert batched.labels == engine.labels and len(batched.labels) > 5


def test_a_margin_keeps_thresholds_off_the_edge_of_the_validation_speech():
    base = DetectorConfig(threshold=0.95, smoothing_hops=1, min_count=3)
    streams = _streams(0.86)  # 'off' words peak at 0.86; 'off' fires on speech at 0.75
    assert keyword_thresholds(streams, LABELS, base, GRID, max_fa_per_hour=1.0).thresholds["off"] == 0.85
    # two steps below 0.85 is 0.7, which fires twice on the speech: over a budget of 1, so 'off' stays unfound
    margin = keyword_thresholds(streams, LABELS, base, GRID, max_fa_per_hour=1.0, margin_steps=2)
    assert margin.thresholds["off"] == 0.99 and margin.thresholds["yes"] == 0.99
    assert keyword_thresholds(streams, LABELS, base, GRID, max_fa_per_hour=1.0, margin_steps=1).thresholds["off"] == 0.85


def test_spotter_tune_ranks_settings_saves_the_best_and_reuses_posteriors(tmp_path):
    """`spotter tune` on the example recording: 450 settings ranked, the best one saved into a copy of the
    shipped checkpoint (which listen then reads), every row in --json, and posteriors cached in --posteriors."""
    import json
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from spotter.checkpoint import read_checkpoint, resolve
    from spotter.detector import detector_from_meta

    root = Path(__file__).resolve().parents[1]
    example = tmp_path / "keywords.wav"
    shutil.copy(root / "examples" / "keywords.wav", example)
    shutil.copy(root / "examples" / "keywords.csv", tmp_path / "keywords.csv")
    model = tmp_path / "model.pt"
    shutil.copy(resolve(None), model)
    cache = tmp_path / "posteriors"
    command = [sys.executable, "-m", "spotter", "tune", str(example), "--model", str(model), "--save",
               "--json", str(tmp_path / "rows.json"), "--posteriors", str(cache), "--max-fa-per-hour", "1000",
               "--top", "3"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("450 settings on keywords")
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert len(rows) == 450 and rows[0]["recall"] == 1.0  # the example's 8 keywords are all found by the best
    saved = detector_from_meta(read_checkpoint(model)["meta"])
    assert saved.to_meta() == {**rows[0]["config"], "thresholds": rows[0]["config"]["thresholds"]}
    assert f"saved to {model}" in out.stdout
    assert len(list(cache.glob("*-keywords.pkl"))) == 1
    again = subprocess.run(command[:-2] + ["--top", "1"], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and again.stdout.splitlines()[2] == out.stdout.splitlines()[2]  # same best row
    worst = subprocess.run(command[:-2] + ["--top", "1", "--objective", "worst-stream"], capture_output=True,
                           text=True, timeout=600)
    assert worst.returncode == 0, worst.stderr
    header, best = worst.stdout.splitlines()[1:3]
    assert header.split()[:4] == ["worst", "on", "stream", "recall"]
    assert best.split()[:3] == ["100.0%", "keywords.wav", "100.0%"]  # one stream: its recall is the worst


def test_cached_posteriors_follow_the_weights_not_the_file(tmp_path):
    """A checkpoint retrained in place must not reuse its old weights' posteriors (tuning a new model on
    them would be silently wrong); re-saved with a new detector, or named by another path, it reuses them."""
    from pathlib import Path

    import torch

    from spotter.checkpoint import load_model, save_checkpoint
    from spotter.evaluation.tuning import cached_posteriors, checkpoint_key
    from spotter.model import build_model

    example = Path(__file__).resolve().parents[1] / "examples" / "keywords.wav"
    torch.manual_seed(0)
    path = save_checkpoint(build_model("bcresnet-1").eval(), tmp_path / "model.pt")
    first = load_model(path, device="cpu")
    key = checkpoint_key(path, first)
    assert checkpoint_key(Path("model.pt"), first) == key  # relative or absolute: the same weights
    save_checkpoint(first, path, meta={"detector": {"threshold": 0.5}})  # as `spotter tune --save` rewrites it
    assert checkpoint_key(path, load_model(path, device="cpu")) == key
    cache = tmp_path / "posteriors"
    before = cached_posteriors(first, example, cache, key=key)
    with torch.no_grad():  # retrained in place: other weights at the same path
        first.net.classifier[-1].bias.add_(torch.linspace(-2.0, 2.0, len(first.labels)))
    save_checkpoint(first, path)
    second = load_model(path, device="cpu")
    assert checkpoint_key(path, second) != key
    after = cached_posteriors(second, example, cache, key=checkpoint_key(path, second))
    assert len(list(cache.glob("*.pkl"))) == 2
    assert not np.allclose(after.probs, before.probs, atol=1e-3)  # scored again, not read from the old file
