"""spotter data vocode: new training voices through the WORLD vocoder."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import lfilter

from spotter.data.merge import merge_corpora
from spotter.data.speech_commands import build_index
from spotter.data.synth import synthesize_corpus
from spotter.data.vocode import convert, draw_world_voice, make_world_corpus
from spotter.errors import SpotterError

pytest.importorskip("librosa")
import librosa  # noqa: E402

SR = 16000


def _vowel(f0: float = 120.0, formants=(700.0, 1200.0, 2600.0), seconds: float = 0.6) -> np.ndarray:
    """A steady vowel: a glottal pulse train at ``f0`` through second-order formant resonators, in 1 s."""
    n = int(seconds * SR)
    pulses = np.zeros(n)
    pulses[(np.arange(0, seconds, 1 / f0) * SR).astype(int)] = 1.0
    y = lfilter([1.0], [1.0, -0.97], pulses)  # glottal roll-off
    for f in formants:
        r = np.exp(-np.pi * 80.0 / SR)
        y = lfilter([1.0 - r], [1.0, -2 * r * np.cos(2 * np.pi * f / SR), r * r], y)
    clip = np.zeros(SR)
    start = (SR - n) // 2
    clip[start:start + n] = y / np.max(np.abs(y)) * 0.5 * np.hanning(n) ** 0.2
    return clip.astype(np.float32)


def _median_f0(x: np.ndarray) -> float:
    f0 = librosa.yin(x, fmin=60, fmax=400, sr=SR, frame_length=1024)
    rms = librosa.feature.rms(y=x, frame_length=1024, hop_length=256)[0][: f0.size]
    return float(np.median(f0[rms > 0.3 * rms.max()]))


def _centroid(x: np.ndarray, lo: float = 300.0, hi: float = 3500.0) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size))) ** 2
    freqs = np.fft.rfftfreq(x.size, 1 / SR)
    band = (freqs >= lo) & (freqs <= hi)
    return float(np.sum(freqs[band] * spec[band]) / np.sum(spec[band]))


PLAIN = {"f0_mean": 120, "f0_range": 1.0, "warp": 1.0, "cepstrum": 0, "aperiodicity": 1.0, "smooth_ms": 0}


def test_convert_moves_pitch_to_the_target_and_keeps_length_and_level():
    x = _vowel(120.0)
    assert _median_f0(x) == pytest.approx(120, rel=0.05)
    for target in (90, 210):
        y = convert(x, {**PLAIN, "f0_mean": target})
        assert y.shape == x.shape and y.dtype == np.float32
        assert _median_f0(y) == pytest.approx(target, rel=0.06)
        assert np.sqrt(np.mean(y ** 2)) == pytest.approx(np.sqrt(np.mean(x ** 2)), rel=0.02)


def test_warp_moves_formants_and_smoothing_keeps_the_vowel():
    x = _vowel(120.0)
    same = _centroid(convert(x, PLAIN))
    up = _centroid(convert(x, {**PLAIN, "warp": 1.2}))
    down = _centroid(convert(x, {**PLAIN, "warp": 0.85}))
    assert 1.1 < up / same < 1.3 and 0.78 < down / same < 0.93
    smooth = convert(x, {**PLAIN, "cepstrum": 24, "smooth_ms": 40})
    assert _centroid(smooth) == pytest.approx(same, rel=0.1)
    assert _median_f0(smooth) == pytest.approx(120, rel=0.05)


def test_silence_stays_silent_and_voices_are_reproducible():
    assert not np.any(convert(np.zeros(SR, dtype=np.float32), PLAIN))
    a = [draw_world_voice(np.random.default_rng(3)) for _ in range(2)]
    assert a[0] == a[1]
    voices = [draw_world_voice(np.random.default_rng(s)) for s in range(200)]
    f0 = np.array([v["f0_mean"] for v in voices])
    warp = np.array([v["warp"] for v in voices])
    assert 80 <= f0.min() and f0.max() <= 250 and f0.max() > 200 and f0.min() < 100
    assert np.corrcoef(np.log(f0), warp)[0, 1] > 0.5  # high voices get shorter vocal tracts


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    out = tmp_path_factory.mktemp("vocode") / "src"
    synthesize_corpus(out, per_word=6, seed=0, engines=("espeak",), words=("yes", "no", "bed"), progress=False,
                      noise_seconds=1.0)
    return out


def test_world_corpus_converts_training_voices_only(source, tmp_path):
    out = tmp_path / "world"
    manifest = make_world_corpus(source, out, voices=3, seed=1, engines=("espeak",), workers=2, progress=False)
    src_manifest = json.loads((source / "corpus.json").read_text())
    training = {v["speaker"] for v in src_manifest["voices"] if v["split"] == "training"}
    assert len(manifest["voices"]) == 3
    made = sorted(p.relative_to(out).as_posix() for p in out.glob("*/*.wav"))
    assert len(made) == manifest["total_clips"] == 3 * 3  # three words each
    for voice in manifest["voices"]:
        assert voice["engine"] == "world" and voice["split"] == "training"
        assert voice["params"]["source"] in training and voice["speaker"].startswith("world-")
        assert "_" not in voice["speaker"]
    for rel in made:
        word, name = rel.split("/")
        speaker = name.split("_nohash_")[0]
        src = next(v["params"]["source"] for v in manifest["voices"] if v["speaker"] == speaker)
        original, _ = sf.read(source / word / name.replace(speaker, src), dtype="float32")
        audio, sr = sf.read(out / rel, dtype="float32")
        assert sr == SR and audio.shape == original.shape
        assert not np.allclose(audio, original, atol=1e-3)
    assert (out / "validation_list.txt").read_text() == "" and (out / "testing_list.txt").read_text() == ""
    merged = merge_corpora(tmp_path / "merged", [source, out])
    assert merged["split_clips"]["training"] == merged["total_clips"] - merged["split_clips"]["validation"] \
        - merged["split_clips"]["testing"]
    test_paths = {e.path for e in build_index(tmp_path / "merged", "test", unknown_fraction=0.5,
                                                 silence_fraction=0.0, balance_all=False)}
    assert test_paths and not any("world-" in str(p) for p in test_paths)


def test_world_corpus_refusals(source, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(SpotterError, match="not empty"):
        make_world_corpus(source, tmp_path / "full", voices=1, progress=False)
    with pytest.raises(SpotterError, match="no training voices of engines piper"):
        make_world_corpus(source, tmp_path / "a", voices=1, engines=("piper",), progress=False)
    with pytest.raises(SpotterError, match="no corpus.json"):
        make_world_corpus(tmp_path, tmp_path / "b", voices=1, progress=False)
    run = subprocess.run([sys.executable, "-m", "spotter", "data", "vocode", "--corpus", str(source), "--out",
                          str(tmp_path / "full"), "--no-progress"], capture_output=True, text=True)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines() == [f"spotter: error: data vocode: {tmp_path / 'full'} exists and is not "
                                               "empty; choose a new --out"]
