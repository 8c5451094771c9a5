"""The streaming engine equals offline inference, whatever the chunking (kws_streaming / openWakeWord style).

These use a BC-ResNet with random weights and a front end whose bases were
perturbed as training would, on real signals (chirps, tones, noise): the
property under test is that streaming computes exactly what the offline
model computes on each 1 s window, not what the model has learned.
"""

import numpy as np
import pytest
import soundfile as sf
import torch

from spotter import build_model
from spotter.audio import WavSource
from spotter.config import SAMPLE_RATE
from spotter.events import Detection, PosteriorUpdate
from spotter.pipeline import Engine, EngineConfig, source_block_ms
from spotter.streaming import StreamingFeatures

from conftest import mixed_signal, noise

HOP = 1600


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_model("bcresnet-1", trainable_mel=True, trainable_stft=True)
    with torch.no_grad():  # as if trained: bases moved away from their initial values
        for p in m.frontend_parameters():
            p.add_(0.05 * p.abs().mean() * torch.randn_like(p))
    return m.eval()


@pytest.fixture(scope="module")
def stream() -> np.ndarray:
    return mixed_signal()


def offline_window(audio: np.ndarray, end: int, n: int = SAMPLE_RATE) -> np.ndarray:
    """The 1 s window ending at stream sample ``end``; the stream is preceded by silence."""
    padded = np.concatenate([np.zeros(n, np.float32), audio])
    return padded[end: end + n]


def test_streaming_features_equal_offline_front_end(model, stream):
    sf = StreamingFeatures(model.frontend)
    rng = np.random.default_rng(1)
    pos = 0
    with torch.inference_mode():
        while pos < stream.size:
            step = int(rng.integers(1, 4000))
            sf.push(stream[pos: pos + step])
            pos = min(pos + step, stream.size)
            end = pos - pos % 160
            got = sf.window_features(end)
            want = model.frontend(torch.from_numpy(offline_window(stream, end))[None])
            assert got.shape == want.shape == (1, 1, 40, 101)
            # Same sums in another order (one matrix product vs nnAudio's convolution): float32
            # rounding, magnified by the log where a frame's power is tiny, so a rare element
            # differs by ~1e-4 in log units (0.01% in power); on average they agree to 1e-6.
            torch.testing.assert_close(got, want, atol=5e-4, rtol=1e-5)
            assert (got - want).abs().mean() < 1e-5


def posteriors(model, stream, chunk, config=None):
    engine = Engine(model, config or EngineConfig())
    events = []
    for i in range(0, stream.size, chunk):
        events += engine.feed(stream[i: i + chunk])
    return [e for e in events if isinstance(e, PosteriorUpdate)], engine


def test_engine_equals_offline_model_on_every_window(model, stream):
    updates, engine = posteriors(model, stream, 1600)
    ends = range(HOP, stream.size + 1, HOP)
    assert [round(u.time * SAMPLE_RATE) for u in updates] == list(ends)
    windows = torch.from_numpy(np.stack([offline_window(stream, e) for e in ends]))
    with torch.inference_mode():
        offline = torch.softmax(model(windows), dim=-1).numpy()
    np.testing.assert_allclose(np.array([u.probs for u in updates]), offline, atol=1e-5)
    assert engine.stats.dropped_windows == 0


@pytest.mark.parametrize("chunk", [7, 160, 333, 1601, 4800, 100_000])
def test_any_chunk_size_gives_the_same_scores(model, stream, chunk):
    reference, _ = posteriors(model, stream, 1600)
    updates, _ = posteriors(model, stream, chunk)
    assert [u.time for u in updates] == [u.time for u in reference]
    np.testing.assert_allclose(np.array([u.probs for u in updates]), np.array([u.probs for u in reference]), atol=1e-5)


def test_live_mode_scores_only_the_newest_window_and_counts_the_rest(model, stream):
    engine = Engine(model, EngineConfig(skip_stale=True))
    first = engine.feed(stream[:HOP])
    late = engine.feed(stream[HOP: 6 * HOP])  # five hops arrive at once: inference fell behind
    updates = [e for e in late if isinstance(e, PosteriorUpdate)]
    assert len([e for e in first if isinstance(e, PosteriorUpdate)]) == 1
    assert [u.time for u in updates] == [6 * HOP / SAMPLE_RATE]
    assert engine.stats.dropped_windows == 4 and updates[0].dropped_windows == 4
    offline, _ = posteriors(model, stream[: 6 * HOP], HOP)
    np.testing.assert_allclose(updates[0].probs, offline[-1].probs, atol=1e-5)


def test_a_gap_in_the_source_moves_the_clock_and_counts_dropped_windows(model, stream):
    engine = Engine(model, EngineConfig())
    engine.feed(stream[:HOP], start=0)
    events = engine.feed(stream[HOP: 2 * HOP], start=4 * HOP + 50)  # 3 hops + 50 samples were lost
    updates = [e for e in events if isinstance(e, PosteriorUpdate)]
    assert engine.stats.lost_samples == 3 * HOP + 50
    assert engine.stats.dropped_windows == 3  # windows ending at 2, 3 and 4 hops fell in the gap
    assert [round(u.time * SAMPLE_RATE) for u in updates] == [5 * HOP]
    assert engine.summary()["seconds"] == round((5 * HOP + 50) / SAMPLE_RATE, 3)
    with pytest.raises(ValueError, match="before the stream"):
        engine.feed(stream[:10], start=0)


def test_paused_engine_scores_nothing_but_keeps_time(model, stream):
    engine = Engine(model, EngineConfig())
    engine.paused = True
    assert engine.feed(stream[: 3 * HOP]) == []
    engine.paused = False
    events = engine.feed(stream[3 * HOP: 4 * HOP])
    assert [e.time for e in events if isinstance(e, PosteriorUpdate)] == [4 * HOP / SAMPLE_RATE]


def test_hop_must_be_a_multiple_of_the_frame_hop(model):
    for hop_ms in (125, 0, -100, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="multiple of 10 ms"):
            Engine(model, EngineConfig(hop_ms=hop_ms))


@pytest.mark.parametrize("rate,hop_ms", [(16000, 100), (16000, 150), (44100, 100), (48000, 250), (8000, 30)])
def test_listens_source_blocks_end_where_windows_end(tmp_path, model, rate, hop_ms):
    """The blocks `listen` asks its source for (source_block_ms) divide the hop at any device rate:
    every window is scored on the block that completes it, never held back for a later block."""
    block_ms = source_block_ms(hop_ms)
    assert block_ms <= 100 and (hop_ms / block_ms).is_integer()
    path = tmp_path / "tone.wav"
    t = np.arange(int(2.5 * rate)) / rate
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)
    engine = Engine(model, EngineConfig(hop_ms=hop_ms, skip_stale=True))
    scored = []
    with WavSource(path, realtime=False, block_ms=block_ms) as source:
        while not source.finished:
            block = source.read(0.1)
            end = block.start + block.samples.size
            times = [e.time for e in engine.feed(block.samples, block.start) if isinstance(e, PosteriorUpdate)]
            assert times == ([pytest.approx(end / SAMPLE_RATE)] if end % engine.config.hop_samples == 0 else [])
            scored += times
    assert len(scored) == 2500 // hop_ms and engine.stats.dropped_windows == 0


def test_events_serialise_to_one_json_line():
    import json

    d = Detection("yes", 0.91234567, 12.3456789)
    assert json.loads(d.to_json()) == {"event": "detection", "keyword": "yes", "time": 12.346, "confidence": 0.9123}


@pytest.mark.parametrize("skip_stale", [False, True])
def test_gaps_and_blocks_of_any_size_never_lose_a_window(model, skip_stale):
    """A gap at the start, then blocks small and large, off the hop grid: every window is scored or counted."""
    engine = Engine(model, EngineConfig(skip_stale=skip_stale))
    rng = np.random.default_rng(2)
    pos = 1504  # the source lost 1504 samples before its first block
    for n in (340, 1381, 5836, 33739, 7, 20000):
        engine.feed(noise(n / SAMPLE_RATE, seed=int(rng.integers(1000))), start=pos)
        pos += n
    s = engine.stats
    assert engine.framer.stream_samples == pos
    assert s.windows + s.dropped_windows == pos // HOP
    assert s.windows > 0 and (skip_stale or s.dropped_windows == 0)


def test_engine_equals_offline_model_with_mean_normalisation(stream):
    """The window normalisation is applied to the window the engine assembles from cached frames."""
    from spotter.config import FrontendConfig

    torch.manual_seed(1)
    model = build_model("bcresnet-1", frontend=FrontendConfig(normalize="mean")).eval()
    updates, _ = posteriors(model, stream, 333)
    ends = range(HOP, stream.size + 1, HOP)
    windows = torch.from_numpy(np.stack([offline_window(stream, e) for e in ends]))
    with torch.inference_mode():
        offline = torch.softmax(model(windows), dim=-1).numpy()
    np.testing.assert_allclose(np.array([u.probs for u in updates]), offline, atol=1e-5)


def test_engine_uses_the_models_own_detector_settings_unless_given(model, stream):
    """A checkpoint carries its tuned detector (meta "detector"): an Engine without explicit settings uses
    it, explicit settings win, and a model without them gets DetectorConfig's defaults."""
    from spotter.detector import DetectorConfig

    tuned = DetectorConfig(threshold=0.6, smoothing_hops=2, min_count=1)
    assert Engine(model).detector.config == DetectorConfig()
    model.meta = {"detector": tuned.to_meta()}
    try:
        assert Engine(model).detector.config == tuned
        assert Engine(model, EngineConfig(hop_ms=200)).detector.config == tuned
        mine = DetectorConfig(threshold=0.9)
        assert Engine(model, EngineConfig(detector=mine)).detector.config == mine
    finally:
        del model.meta
