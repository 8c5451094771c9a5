"""The silence gate: shut in a quiet room, open for a quiet keyword, and no detection changed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from spotter.audio import WavSource
from spotter.data.labels import read_labels
from spotter.events import Detection, PosteriorUpdate
from spotter.exported import load_exported
from spotter.gate import GateConfig, SilenceGate, block_levels_db
from spotter.pipeline import CALM_DOZE_SECONDS, DOZE_SECONDS, Engine, EngineConfig
from spotter.pipeline import run as run_source

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "keywords.wav"
SR = 16000


@pytest.fixture(scope="module")
def model():
    pytest.importorskip("onnxruntime")
    return load_exported(ROOT / "checkpoints" / "bcresnet-3-synth.onnx")  # the same scores as torch, faster


def room(seconds: float, dbfs: float, seed: int = 0) -> np.ndarray:
    """A quiet room: pink-ish noise (white noise through a one-pole low-pass) at ``dbfs`` RMS."""
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(int(seconds * SR))
    pink = np.empty_like(white)
    acc = 0.0
    for i, w in enumerate(white):  # y[n] = 0.95 y[n-1] + x[n]
        acc = 0.95 * acc + w
        pink[i] = acc
    return (pink / np.sqrt(np.mean(pink ** 2)) * 10 ** (dbfs / 20)).astype(np.float32)


def run(model, audio, gate: bool):
    engine = Engine(model, EngineConfig(gate=GateConfig() if gate else None))
    events = engine.feed(audio)
    updates = [e for e in events if hasattr(e, "probs")]
    detections = [(e.keyword, round(e.time, 3)) for e in events if hasattr(e, "keyword")]
    return updates, detections, engine.summary()


def test_block_levels_are_dbfs():
    full_scale_square = np.ones(SR // 10, np.float32)  # 100 ms at full scale: 0 dBFS in every 20 ms block
    assert np.allclose(block_levels_db(full_scale_square), 0.0)
    assert np.allclose(block_levels_db(0.01 * full_scale_square), -40.0)
    assert block_levels_db(np.zeros(SR // 10, np.float32)).max() == -120.0


def spoken_yes(dbfs: float) -> np.ndarray:
    """The example recording's "yes" (with 150 ms either side), the word at ``dbfs`` RMS."""
    audio, _ = sf.read(EXAMPLE, dtype="float32")
    yes = next(e for e in read_labels(EXAMPLE.with_suffix(".csv")) if e.label == "yes")
    word = audio[int((yes.start - 0.15) * SR): int((yes.end + 0.15) * SR)]
    spoken = audio[int(yes.start * SR): int(yes.end * SR)]
    return word / np.sqrt(np.mean(spoken ** 2)) * 10 ** (dbfs / 20)


def test_a_quiet_room_is_gated_and_a_keyword_at_minus_40_dbfs_is_not(model):
    word = spoken_yes(-40.0)
    stream = room(12.0, -70.0)
    at = 6 * SR
    stream[at: at + word.size] += word
    updates, detections, summary = run(model, stream, gate=True)
    _, ungated, _ = run(model, stream, gate=False)
    assert detections == ungated and [k for k, _ in detections] == ["yes"]
    quiet = [u for u in updates if 1.0 < u.time < 5.5 or u.time > 8.5]  # the room alone, after the first second
    assert all(u.gated for u in quiet) and summary["gated_windows"] >= len(quiet)
    during = [u for u in updates if at / SR + 0.2 < u.time < at / SR + 1.0]
    assert during and not any(u.gated for u in during)
    assert all(u.probs[u.labels.index("silence")] == 1.0 for u in quiet)


def test_the_gate_changes_no_detection_on_the_example_recording(model):
    audio, _ = sf.read(EXAMPLE, dtype="float32")
    gated_updates, gated, summary = run(model, audio, gate=True)
    _, ungated, plain = run(model, audio, gate=False)
    assert gated == ungated and len(gated) == 8
    assert summary["gated_windows"] > 0.2 * summary["windows"] and plain["gated_windows"] == 0


def test_the_floor_follows_a_room_that_gets_louder(model):
    stream = np.concatenate([room(5.0, -70.0, seed=1), room(25.0, -50.0, seed=2)])
    updates, detections, _ = run(model, stream, gate=True)
    assert detections == []
    assert any(not u.gated for u in updates if 5.0 < u.time < 7.0)  # a louder room first opens the gate ...
    assert all(u.gated for u in updates if u.time > 20.0)  # ... until the floor has risen to it (20 dB at 3 dB/s)


class CountedReplay(WavSource):
    """A real-time replay that notes where in the file the consumer was each time it woke to read."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.read_at: list[float] = []

    def read(self, timeout: float):
        self.read_at.append(self._position / self.device_rate)
        return super().read(timeout)


def test_a_live_run_dozes_in_silence_yet_scores_every_window(model, tmp_path):
    stream = room(8.0, -70.0, seed=3)
    word = spoken_yes(-30.0)
    stream[5 * SR: 5 * SR + word.size] += word
    path = tmp_path / "quiet-room.wav"
    sf.write(path, stream, SR)
    runs = {}
    for doze_s in (0.0, DOZE_SECONDS):
        source = CountedReplay(path, realtime=True, block_ms=100)
        engine = Engine(model, EngineConfig(skip_stale=True, gate=GateConfig()))  # live, as listen runs it
        events: list = []
        summary = run_source(source, engine, events.append, doze_s=doze_s, calm_doze_s=doze_s and CALM_DOZE_SECONDS)
        runs[doze_s] = {"windows": [round(e.time, 3) for e in events if isinstance(e, PosteriorUpdate)],
                        "detections": [(e.keyword, round(e.time, 3)) for e in events if isinstance(e, Detection)],
                        "dropped": summary["dropped_windows"],
                        "wakes in silence": sum(2.5 <= at < 4.5 for at in source.read_at)}
    awake, dozing = runs[0.0], runs[DOZE_SECONDS]
    assert [k for k, _ in awake["detections"]] == ["yes"] and dozing["detections"] == awake["detections"]
    assert dozing["windows"] == awake["windows"] and len(awake["windows"]) == 80  # every window, none dropped
    assert awake["dropped"] == dozing["dropped"] == 0
    assert awake["wakes in silence"] >= 15 and dozing["wakes in silence"] <= awake["wakes in silence"] / 2


def test_gate_settings_are_checked():
    with pytest.raises(ValueError, match="positive"):
        GateConfig(margin_db=0)
    assert SilenceGate.silence(("yes", "unknown", "silence")).tolist() == [0.0, 0.0, 1.0]
