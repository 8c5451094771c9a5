"""Any label set, end to end: a checkpoint whose keywords are not Speech Commands' ten is listened to,
scored, tuned, shown and exported under its own labels.

The model here is trained in the test (a few seconds) on generated signals with a custom label set
("lights on" = a rising chirp, "next slide" = a falling chirp, ``unknown`` = steady tones and noise
bursts, ``silence`` = a quiet room), so what it detects is known exactly. The stream holds both
keywords twice and two distractors; nothing in it is a Speech Commands keyword.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from spotter.checkpoint import load_model, save_checkpoint
from spotter.config import SAMPLE_RATE, keywords_of
from spotter.data.labels import LabelEvent, read_labels, write_labels
from spotter.detector import DetectorConfig, detector_from_meta
from spotter.events import Detection
from spotter.model import build_model
from spotter.pipeline import EngineConfig, replay_file

from conftest import chirp, tone

LABELS = ("lights on", "next slide", "unknown", "silence")
BURST_S = 0.45
DETECTOR = DetectorConfig(threshold=0.8, smoothing_hops=3, min_count=2)


def _burst(label: str, rng: np.random.Generator) -> np.ndarray:
    amp = float(rng.uniform(0.15, 0.5))
    if label == "lights on":
        return chirp(300.0, 3000.0, BURST_S, amp)
    if label == "next slide":
        return chirp(3000.0, 300.0, BURST_S, amp)
    if rng.random() < 0.5:  # unknown: a steady tone, or a burst of noise
        return tone(float(rng.uniform(200, 4000)), BURST_S, amp)
    return (amp * 0.5 * rng.standard_normal(int(BURST_S * SAMPLE_RATE))).astype(np.float32)


def _room(n: int, rng: np.random.Generator) -> np.ndarray:
    return (10 ** (-60 / 20) * rng.standard_normal(n)).astype(np.float32)


def _clip(label: str, rng: np.random.Generator) -> np.ndarray:
    x = _room(SAMPLE_RATE, rng)
    if rng.random() < 0.2:  # the engine's first windows: zeros before the stream starts
        x[: int(rng.integers(1, SAMPLE_RATE // 2))] = 0.0
    if label != "silence":
        b = _burst(label, rng)
        start = int(rng.integers(0, SAMPLE_RATE - len(b)))
        x[start:start + len(b)] += b
    return x


@pytest.fixture(scope="module")
def custom(tmp_path_factory) -> Path:
    """A trained linear model with the custom labels, saved as a checkpoint with its detector."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = build_model("linear", labels=LABELS)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(400):
        y = rng.integers(0, len(LABELS), 32)
        x = torch.from_numpy(np.stack([_clip(LABELS[i], rng) for i in y]))
        loss = torch.nn.functional.cross_entropy(model(x), torch.from_numpy(y))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    path = tmp_path_factory.mktemp("custom") / "custom.pt"
    save_checkpoint(model, path, meta={"detector": DETECTOR.to_meta()})
    return path


@pytest.fixture(scope="module")
def stream(tmp_path_factory) -> Path:
    """20 s: both keywords twice, a steady tone and a noise burst, over a quiet room; its labels CSV."""
    rng = np.random.default_rng(1)
    x = _room(20 * SAMPLE_RATE, rng)
    events = []
    for label, at in (("lights on", 2.0), ("next slide", 5.0), ("tone", 8.0), ("lights on", 11.0),
                      ("noise", 14.0), ("next slide", 17.0)):
        if label == "tone":
            b = tone(1200.0, BURST_S, 0.3)
        elif label == "noise":
            b = (0.15 * rng.standard_normal(int(BURST_S * SAMPLE_RATE))).astype(np.float32)
        else:
            b = _burst(label, rng)
        a = int(at * SAMPLE_RATE)
        x[a:a + len(b)] += b
        events.append(LabelEvent(label if label in LABELS else "unknown", at, at + BURST_S, label))
    path = tmp_path_factory.mktemp("stream") / "custom-stream.wav"
    sf.write(path, x, SAMPLE_RATE, subtype="FLOAT")
    write_labels(path.with_suffix(".csv"), events)
    return path


def _spoken(wav: Path) -> list[LabelEvent]:
    return [e for e in read_labels(wav.with_suffix(".csv")) if e.label in keywords_of(LABELS)]


def _found(detections, wav: Path, tolerance_s: float = 0.75) -> list[str]:
    """The keywords detected while or just after they sound, in stream order; and nothing else fired."""
    want = _spoken(wav)
    assert all(any(e.label == d.keyword and e.start <= d.time <= e.end + tolerance_s for e in want)
               for d in detections), f"false alarms: {detections}"
    return [d.keyword for d in detections]


def test_keywords_of_a_label_set_are_all_but_unknown_and_silence():
    assert keywords_of(LABELS) == ("lights on", "next slide")
    assert keywords_of(("yes", "no", "unknown", "silence")) == ("yes", "no")


def test_engine_detects_the_checkpoints_own_keywords(custom, stream):
    model = load_model(custom, device="cpu")
    assert tuple(model.labels) == LABELS
    for score in ("class", "any-keyword"):
        detector = detector_from_meta({"detector": {**DETECTOR.to_meta(), "score": score}})
        events, summary = replay_file(model, stream, EngineConfig(detector=detector))
        found = _found([e for e in events if isinstance(e, Detection)], stream)
        assert found == ["lights on", "next slide", "lights on", "next slide"], score


def _spotter(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spotter", *args], capture_output=True, text=True, timeout=300)


def test_listen_json_names_the_custom_labels(custom, stream):
    out = _spotter("listen", "--model", str(custom), "--wav", str(stream), "--json", "--no-ui", "--runtime", "torch",
                   "--posteriors")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    posteriors = [x for x in lines if x.get("event") == "posteriors"]
    assert posteriors and set(posteriors[0]["probs"]) == set(LABELS)
    detections = [x["keyword"] for x in lines if x.get("event") == "detection"]
    assert detections == ["lights on", "next slide", "lights on", "next slide"]


def test_eval_stream_counts_the_custom_keywords(custom, stream):
    out = _spotter("eval-stream", str(stream), str(stream.with_suffix(".csv")), "--model", str(custom), "--json")
    assert out.returncode == 0, out.stderr
    score = json.loads(out.stdout)
    assert score["keywords"] == 4 and score["matched"] == 4 and score["false_alarms"] == 0, score


def test_info_lists_multi_word_labels_unambiguously(custom):
    out = _spotter("info", str(custom))
    assert out.returncode == 0, out.stderr
    assert "labels:    lights on, next slide, unknown, silence" in out.stdout


def test_tune_saves_a_setting_that_finds_the_custom_keywords(custom, stream, tmp_path):
    tuned = tmp_path / "tuned.pt"
    tuned.write_bytes(custom.read_bytes())
    out = _spotter("tune", "--model", str(tuned), "--save", str(stream))
    assert out.returncode == 0, out.stderr
    saved = detector_from_meta(load_model(tuned, device="cpu").meta)
    assert saved != DETECTOR  # tune chose and wrote its own setting
    events, _ = replay_file(load_model(tuned, device="cpu"), stream, EngineConfig(detector=saved))
    assert _found([e for e in events if isinstance(e, Detection)], stream) == [
        "lights on", "next slide", "lights on", "next slide"]


def test_export_carries_the_labels_and_the_onnx_runtime_detects_the_same(custom, stream, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from spotter.exported import load_exported

    onnx = tmp_path / "custom.onnx"
    out = _spotter("export", str(custom), "--onnx", str(onnx))
    assert out.returncode == 0, out.stderr
    assert tuple(load_exported(onnx).labels) == LABELS
    runs = {}
    for runtime in ("torch", "onnx"):
        out = _spotter("listen", "--model", str(onnx if runtime == "onnx" else custom), "--wav", str(stream),
                       "--json", "--no-ui", "--runtime", runtime)
        assert out.returncode == 0, out.stderr
        runs[runtime] = [json.loads(line)["keyword"] for line in out.stdout.splitlines() if '"detection"' in line]
    assert runs["onnx"] == runs["torch"] == ["lights on", "next slide", "lights on", "next slide"]


async def test_ui_bars_are_named_by_the_checkpoints_labels(custom, stream):
    from spotter.audio import WavSource
    from spotter.pipeline import Engine
    from spotter.ui import ClassBars, DetectionLog, SpotterApp

    model = load_model(custom, device="cpu")
    app = SpotterApp(WavSource(stream, realtime=False), Engine(model, EngineConfig()), model.name, "cpu")
    async with app.run_test(size=(80, 24)) as pilot:
        while app.query_one(ClassBars).update is None or len(app.detections) < 4:
            await pilot.pause(0.05)
        bars = app.query_one(ClassBars).render()
        styles, start = {}, 0  # label -> the styles drawn on its row
        name_w = max(map(len, LABELS))  # the name column: "*>" + the longest label + " " + bar (full at 1.00)
        for line in bars.plain.split("\n"):
            label = line[2: 2 + name_w].strip()
            styles[label] = " ".join(str(span.style) for span in bars.spans
                                     if start <= span.start < start + len(line))
            start += len(line) + 1
        assert set(styles) == set(LABELS)
        # the keywords' bars are coloured against their threshold; unknown and silence are grey
        assert all("grey50" not in styles[k] and ("cyan" in styles[k] or "green" in styles[k])
                   for k in keywords_of(LABELS)), styles
        assert all("grey50" in styles[k] for k in ("unknown", "silence")), styles
        log = app.query_one(DetectionLog).render().plain
        assert log.count("lights on") == 2 and log.count("next slide") == 2
        await pilot.press("q")


def test_enroll_adapts_a_custom_model_to_takes_of_its_own_words(custom, stream, tmp_path):
    takes = tmp_path / "takes"
    rng = np.random.default_rng(5)
    for label in keywords_of(LABELS):
        (takes / label).mkdir(parents=True)
        for i in range(3):
            x = np.concatenate([_room(8000, rng), _burst(label, rng), _room(8000, rng)])
            sf.write(takes / label / f"take{i}.wav", x, SAMPLE_RATE)
    (takes / "_speech_").mkdir()  # the user's "keyword-free speech": steady tones and noise bursts
    sounds = [np.concatenate([_burst("unknown", rng), _room(4000, rng)]) for _ in range(30)]
    sf.write(takes / "_speech_" / "speech01.wav", np.concatenate(sounds), SAMPLE_RATE)
    enrolled = tmp_path / "enrolled.pt"
    out = _spotter("enroll", "--from-dir", str(takes), "--model", str(custom), "--out", str(enrolled))
    assert out.returncode == 0, out.stderr
    model = load_model(enrolled, device="cpu")
    assert tuple(model.labels) == LABELS
    assert model.meta["enrollment"]["keywords"] == list(keywords_of(LABELS))
    events, _ = replay_file(model, stream)
    assert _found([e for e in events if isinstance(e, Detection)], stream) == [
        "lights on", "next slide", "lights on", "next slide"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A corpus in Speech Commands layout for the custom keywords: 100 clips a folder, two "unknown" word
    folders (steady tones, noise bursts), a room recording; a fifth of the clips each for val and test."""
    root = tmp_path_factory.mktemp("custom-corpus")
    rng = np.random.default_rng(2)
    lists = {"validation_list.txt": [], "testing_list.txt": []}
    for folder, label in (("lights on", "lights on"), ("next slide", "next slide"), ("tone", "unknown"),
                          ("hiss", "unknown")):
        (root / folder).mkdir()
        for i in range(100):
            clip = _clip(label, rng)
            if folder == "tone":
                clip[4000:4000 + int(BURST_S * SAMPLE_RATE)] = tone(float(rng.uniform(200, 4000)), BURST_S, 0.3)
            rel = f"{folder}/s{i:02d}_nohash_0.wav"
            sf.write(root / rel, clip, SAMPLE_RATE)
            if i % 5 == 0:
                lists["validation_list.txt"].append(rel)
            elif i % 5 == 1:
                lists["testing_list.txt"].append(rel)
    for name, rels in lists.items():
        (root / name).write_text("\n".join(rels) + "\n")
    (root / "_background_noise_").mkdir()
    sf.write(root / "_background_noise_" / "room.wav", _room(30 * SAMPLE_RATE, rng) * 30, SAMPLE_RATE)
    return root


def _train(corpus: Path, out: Path, *extra: str) -> dict:
    from spotter.training.run import main as train_main

    argv = ["--data", str(corpus), "--model", "linear", "--epochs", "10", "--batch-size", "8", "--accelerator", "cpu",
            "--out", str(out), "--no-progress", "--unknown-fraction", "0.25", "--keywords", "Lights On, next slide", *extra]
    assert train_main(argv) == 0
    return json.loads((out / "metrics.json").read_text())


def test_train_learns_a_custom_keyword_set_and_eval_scores_it(corpus, tmp_path):
    metrics = _train(corpus, tmp_path / "run")
    model = load_model(tmp_path / "run" / "model.pt", device="cpu")
    assert tuple(model.labels) == LABELS and metrics["keywords"] == "lights on,next slide"
    assert metrics["test"]["labels"] == list(LABELS)
    assert metrics["test_accuracy"] >= 0.9, metrics["test_accuracy"]  # chance: a quarter (measured 95%)
    out = _spotter("eval", str(tmp_path / "run" / "model.pt"), "--data", str(corpus), "--split", "test", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["labels"] == list(LABELS) and report["accuracy"] >= 0.9, report  # eval draws its own unknown


def test_init_from_another_label_set_keeps_the_shared_classes(custom, corpus, tmp_path):
    (corpus / "lights off").mkdir(exist_ok=True)
    for i in range(4):  # a new keyword of the run, unknown to the --init model
        sf.write(corpus / "lights off" / f"s{i:02d}_nohash_0.wav", _clip("silence", np.random.default_rng(i)),
                 SAMPLE_RATE)
    try:
        _train(corpus, tmp_path / "run", "--init", str(custom), "--lr", "0", "--epochs", "1",
               "--keywords", "lights off,lights on")
    finally:
        for f in (corpus / "lights off").iterdir():
            f.unlink()
        (corpus / "lights off").rmdir()
    source, tuned = load_model(custom, device="cpu"), load_model(tmp_path / "run" / "model.pt", device="cpu")
    assert tuned.labels == ("lights off", "lights on", "unknown", "silence")
    w, w0 = tuned.net.fc.weight, source.net.fc.weight
    for label in ("lights on", "unknown", "silence"):
        assert torch.equal(w[tuned.labels.index(label)], w0[source.labels.index(label)]), label
    assert not any(torch.equal(w[0], row) for row in w0)  # "lights off" starts fresh


@pytest.mark.parametrize("keywords, message", [
    ("lights on,,next slide", "an empty keyword"),
    ("lights on,unknown", "'unknown' is a class of every model"),
    ("go,Go", "'go' is named twice"),
    (",".join(f"w{i}" for i in range(21)), "21 keywords; at most 20"),
    ("lights on,lights out", "no folder"),
])
def test_train_refuses_a_bad_keyword_list_in_one_line(corpus, tmp_path, capsys, keywords, message):
    from spotter.training.run import main as train_main

    assert train_main(["--data", str(corpus), "--model", "linear", "--keywords", keywords,
                       "--out", str(tmp_path / "run"), "--no-progress", "--accelerator", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "run" / "model.pt").exists()


def test_train_refuses_an_epoch_without_one_full_batch(corpus, tmp_path, capsys):
    from spotter.data.speech_commands import SpeechCommands
    from spotter.training.run import main as train_main

    pool = SpeechCommands(corpus, "train", keywords=keywords_of(LABELS), unknown_fraction=0.25, all_unknown=True,
                          progress=False)
    drawn = len(pool) - pool.class_counts()["unknown"] + pool.unknown_per_epoch
    batch = (drawn + len(pool)) // 2  # more than an epoch draws, fewer than the pool: no full batch at all
    assert drawn < batch < len(pool)
    assert train_main(["--data", str(corpus), "--model", "linear", "--keywords", "lights on,next slide",
                       "--unknown-fraction", "0.25", "--redraw-unknown", "--batch-size", str(batch),
                       "--out", str(tmp_path / "run"), "--no-progress", "--accelerator", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fewer than one batch" in err, err
