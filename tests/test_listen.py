"""`spotter listen` end to end with the shipped model: a WAV replay, the real capture path, a slow model.

examples/keywords.wav holds eight keywords, one other word and one sentence,
spoken by voices the model never heard in training, with silence, noise and
hum between them; examples/keywords.csv says when each was spoken.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import soundfile as sf
import torch

from spotter.checkpoint import load_model
from spotter.cli import main
from spotter.config import KEYWORDS
from spotter.detector import detector_from_meta
from spotter.events import PosteriorUpdate
from spotter.pipeline import Engine, EngineConfig, run
from spotter.data.labels import read_labels

from child import LineReader, wait_until
from virtual_mic import virtual_mic  # noqa: F401  (fixture)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "keywords.wav"
TOLERANCE_S = 0.75  # a detection may come up to this long after the word ends (as eval-stream's default)


def expected_keywords():
    return [e for e in read_labels(EXAMPLE.with_suffix(".csv")) if e.label in KEYWORDS]


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_wav_replay_finds_each_keyword_at_its_time_and_nothing_else(capsys):
    assert main(["listen", "--wav", str(EXAMPLE), "--json"]) == 0
    lines = json_lines(capsys.readouterr().out)
    detections = [d for d in lines if d["event"] == "detection"]
    summary = lines[-1]
    assert summary["event"] == "summary" and summary["dropped_windows"] == 0
    assert summary["seconds"] == pytest.approx(sf.info(EXAMPLE).duration, abs=0.01)
    want = expected_keywords()
    assert [d["keyword"] for d in detections] == [e.label for e in want]
    for d, e in zip(detections, want):
        assert e.start <= d["time"] <= e.end + TOLERANCE_S, (d, e)
        assert set(d) >= {"event", "keyword", "time", "confidence"}
        assert d["confidence"] >= detector_from_meta(load_model(None).meta).threshold_for(d["keyword"])


def test_the_models_own_detector_settings_are_used_and_flags_win(tmp_path, capsys):
    from spotter.checkpoint import save_checkpoint

    model = load_model(None)
    slow = save_checkpoint(model, tmp_path / "slow.pt",
                           meta={**model.meta, "detector": {"threshold": 0.95, "min_count": 60}})
    assert main(["listen", "--wav", str(EXAMPLE), "--json", "--model", str(slow)]) == 0
    assert not [d for d in json_lines(capsys.readouterr().out) if d["event"] == "detection"]  # 6 s above threshold: never
    assert main(["listen", "--wav", str(EXAMPLE), "--json", "--model", str(slow), "--min-count", "3"]) == 0
    found = [d["keyword"] for d in json_lines(capsys.readouterr().out) if d["event"] == "detection"]
    assert found == [e.label for e in expected_keywords()]
    # one keyword's threshold out of reach: only that keyword disappears
    assert main(["listen", "--wav", str(EXAMPLE), "--json", "--keyword-threshold", "stop=1.0"]) == 0
    found = [d["keyword"] for d in json_lines(capsys.readouterr().out) if d["event"] == "detection"]
    assert "stop" in [e.label for e in expected_keywords()]
    assert found == [e.label for e in expected_keywords() if e.label != "stop"]


@pytest.mark.parametrize("score", ["class", "any-keyword"])
def test_the_score_flag_sets_what_reaches_the_threshold(score, capsys):
    from spotter.config import KEYWORDS

    assert main(["listen", "--wav", str(EXAMPLE), "--json", "--posteriors", "--score", score]) == 0
    lines = json_lines(capsys.readouterr().out)
    smoothed = {p["time"]: p["smoothed"] for p in lines if p["event"] == "posteriors"}
    detections = [d for d in lines if d["event"] == "detection"]
    assert [d["keyword"] for d in detections] == [e.label for e in expected_keywords()]
    for d in detections:  # the confidence is the score that fired: the keyword's, or all keywords' together
        hop = smoothed[d["time"]]
        want = hop[d["keyword"]] if score == "class" else sum(hop[k] for k in KEYWORDS)
        assert d["confidence"] == pytest.approx(want, abs=1e-3)
        assert hop[d["keyword"]] == max(hop[k] for k in KEYWORDS)


def test_posterior_lines_come_every_hop(capsys):
    assert main(["listen", "--wav", str(EXAMPLE), "--json", "--posteriors", "--hop-ms", "200"]) == 0
    lines = json_lines(capsys.readouterr().out)
    posteriors = [d for d in lines if d["event"] == "posteriors"]
    assert [round(p["time"], 1) for p in posteriors[:3]] == [0.2, 0.4, 0.6]
    assert len(posteriors) == int(sf.info(EXAMPLE).duration / 0.2)
    assert sum(posteriors[0]["probs"].values()) == pytest.approx(1, abs=1e-3)
    quiet, loud = posteriors[3]["level_dbfs"], max(p["level_dbfs"] for p in posteriors)
    assert quiet < -40 < loud


def test_realtime_replay_is_paced_and_sigint_exits_cleanly_with_a_summary():
    proc = subprocess.Popen([sys.executable, "-m", "spotter", "listen", "--wav", str(EXAMPLE), "--realtime", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stderr, stdout = LineReader(proc.stderr), LineReader(proc.stdout, "stdout")
    try:
        stderr.wait_for("listening to", timeout=60)
        started = time.monotonic()
        first = json.loads(stdout.wait_for('"detection"', timeout=60))  # "yes", said at 1.5-1.9 s
        waited = time.monotonic() - started
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, stderr.text()
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = json_lines(stdout.text())
    summary = lines[-1]
    assert summary["event"] == "summary" and summary.get("interrupted")
    # paced: the detection at stream time t came no sooner than t of wall time after the start (less a hop);
    # and the interrupt stopped the replay well before the 27.8 s file's end
    assert first["keyword"] == "yes" and waited >= first["time"] - 0.2, (first, waited)
    assert first["time"] <= summary["seconds"] < sf.info(EXAMPLE).duration - 5
    found = [d["keyword"] for d in lines if d["event"] == "detection"]
    assert found == [e.label for e in expected_keywords()][: len(found)]  # nothing but the keywords said so far
    assert "Traceback" not in stderr.text()


def test_sigterm_also_ends_with_a_summary():
    proc = subprocess.Popen([sys.executable, "-m", "spotter", "listen", "--wav", str(EXAMPLE), "--realtime", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stderr, stdout = LineReader(proc.stderr), LineReader(proc.stdout, "stdout")
    stderr.wait_for("listening to", timeout=60)
    proc.terminate()
    assert proc.wait(timeout=30) == 0, stderr.text()
    assert json_lines(stdout.text())[-1]["event"] == "summary"


@pytest.mark.parametrize("argv, message", [
    (["--wav", "nonexistent.wav"], "no such file"),
    (["--wav", str(EXAMPLE), "--device", "0"], "exclude each other"),
    (["--realtime"], "--realtime paces a --wav replay"),
    (["--wav", str(EXAMPLE), "--hop-ms", "125"], "multiple of 10 ms"),
    (["--wav", str(EXAMPLE), "--model", "no-such-model"], "no-such-model"),
    (["--wav", str(EXAMPLE), "--threshold", "1.5"], "threshold 1.5: a probability in (0, 1]"),
    (["--wav", str(EXAMPLE), "--smoothing-hops", "0"], "smoothing-hops 0: must be at least 1"),
    (["--wav", str(EXAMPLE), "--min-count", "-2"], "min-count -2: must be at least 1"),
    (["--wav", str(EXAMPLE), "--keyword-threshold", "of=0.8"], "of is not a keyword of the model"),
    (["--wav", str(EXAMPLE), "--keyword-threshold", "off"], "write KEYWORD=PROBABILITY"),
    (["--wav", str(EXAMPLE), "--keyword-threshold", "off=1.5"], "thresholds['off'] 1.5: a probability in (0, 1]"),
])
def test_bad_listen_arguments_give_one_line_errors(capsys, argv, message):
    assert main(["listen", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("spotter: error:") and message in err and "\n" not in err


def test_unknown_device_lists_the_input_devices(virtual_mic, capsys):  # noqa: F811
    assert main(["listen", "--device", "no-such-mic"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no-such-mic" in err and "'pulse'" in err and "\n" not in err


def test_devices_lists_the_virtual_microphone(virtual_mic, capsys):  # noqa: F811
    assert main(["devices", "--json"]) == 0
    devices = json.loads(capsys.readouterr().out)
    assert any(d["name"] == "pulse" and d["channels"] >= 1 and d["default_samplerate"] > 0 for d in devices)


@pytest.mark.slow  # plays the 28 s example in real time
def test_listen_on_a_virtual_microphone_reports_the_keywords(virtual_mic):  # noqa: F811
    """The real capture path: PortAudio -> callback -> ring buffer -> engine, in the `spotter listen` process."""
    proc = subprocess.Popen([sys.executable, "-m", "spotter", "listen", "--device", virtual_mic.device, "--json",
                             "--posteriors"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=os.environ.copy())
    stderr, stdout = LineReader(proc.stderr), LineReader(proc.stdout, "stdout")
    want = expected_keywords()
    try:
        stdout.wait_for('"posteriors"', timeout=60)  # the stream's first windows are scored: it is running
        assert virtual_mic.play(EXAMPLE).wait(timeout=60) == 0
        # each keyword is found within TOLERANCE_S of its end: wait for the detections, not for a fixed time
        wait_until(lambda: sum('"detection"' in line for line in stdout.lines) >= len(want), 30,
                   f"{len(want)} detections")
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    err = stderr.text()
    assert code == 0, err
    lines = json_lines(stdout.text())
    detections = [d for d in lines if d["event"] == "detection"]
    assert [d["keyword"] for d in detections] == [e.label for e in want], err
    # The playback started at an unknown moment of the stream: compare times relative to the first keyword.
    offset = detections[0]["time"] - want[0].end
    for d, e in zip(detections, want):
        assert e.start - 0.1 <= d["time"] - offset <= e.end + TOLERANCE_S, (d, e, offset)
    summary = lines[-1]
    assert summary["overflows"] == 0 and summary["overruns"] == 0 and summary["dropped_windows"] <= 2


class SlowModel(torch.nn.Module):
    """The shipped model, made deliberately slow: each window takes 350 ms more (3.5 hops)."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model, self.labels, self.frontend = model, model.labels, model.frontend

    def classify(self, features):
        time.sleep(0.35)
        return self.model.classify(features)


def test_a_slow_model_drops_windows_instead_of_lagging(virtual_mic):  # noqa: F811
    from spotter.audio import MicrophoneSource

    engine = Engine(SlowModel(load_model(device="cpu")), EngineConfig(skip_stale=True))
    updates, stop = [], threading.Event()

    def sink(event):
        if isinstance(event, PosteriorUpdate):
            updates.append((event.time, time.monotonic()))

    source = MicrophoneSource(virtual_mic.device)
    timer = threading.Timer(4.0, stop.set)
    timer.start()
    player = virtual_mic.play(EXAMPLE)
    try:
        summary = run(source, engine, sink, stop)
    finally:
        timer.cancel()
        player.kill()
        player.wait()
    assert summary["overflows"] == 0 and summary["overruns"] == 0  # the callback kept up: it never waits
    assert summary["dropped_windows"] >= 0.5 * summary["windows"]  # ~3 of every 4 hops were skipped
    # No lag builds up: wall time minus stream time stays put (a lagging engine would add 0.25 s a window).
    delays = [wall - t for t, wall in updates]
    assert len(updates) >= 6 and max(delays) - min(delays) < 0.6, delays
