"""The 12-class protocol over tiny Speech-Commands-layout folders of generated audio."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from spotter.config import BACKGROUND_NOISE_DIR, CLIP_SAMPLES, KEYWORDS, LABELS, SAMPLE_RATE, SILENCE, UNKNOWN
from spotter.data import speech_commands as sc
from spotter.data.download import DataError
from spotter.data.speech_commands import (
    CorruptClipWarning,
    SpeechCommands,
    build_index,
    fit_length,
    list_clips,
    load_audio,
    load_noise,
    noise_files,
    split_of,
    word_to_label,
)

WORDS = ("yes", "no", "up", "bed", "bird", "cat", "dog")  # 3 keywords, 4 unknown words
SPEAKERS = [f"{i:08x}" for i in range(8)]
VAL_SPEAKERS, TEST_SPEAKERS = SPEAKERS[6:7], SPEAKERS[7:8]
NOISE_SECONDS = 20.0


def _clip(word: str, speaker: int, utt: int, seconds: float = 1.0) -> np.ndarray:
    """A 'word': a tone whose pitch depends on the word and the speaker, in a little noise."""
    rng = np.random.default_rng([WORDS.index(word), speaker, utt])
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    freq = 200.0 + 90.0 * WORDS.index(word) + 7.0 * speaker
    envelope = np.exp(-(((t - seconds / 2) / (0.2 * seconds)) ** 2))
    x = 0.4 * envelope * np.sin(2 * np.pi * freq * t) + 0.005 * rng.standard_normal(t.size)
    return x.astype(np.float32)


def make_gsc(root, words=WORDS, utts=2, noise=True, lists=True):
    """A Speech-Commands-layout folder: word folders, split lists, background noise."""
    root.mkdir(parents=True, exist_ok=True)
    val, test = [], []
    for word in words:
        (root / word).mkdir()
        for s, speaker in enumerate(SPEAKERS):
            for u in range(utts):
                rel = f"{word}/{speaker}_nohash_{u}.wav"
                sf.write(root / rel, _clip(word, s, u, seconds=0.9 if u else 1.0), SAMPLE_RATE, subtype="PCM_16")
                if speaker in VAL_SPEAKERS:
                    val.append(rel)
                if speaker in TEST_SPEAKERS:
                    test.append(rel)
    if lists:
        (root / "validation_list.txt").write_text("\n".join(val) + "\n")
        (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    if noise:
        (root / BACKGROUND_NOISE_DIR).mkdir()
        rng = np.random.default_rng(0)
        n = int(NOISE_SECONDS * SAMPLE_RATE)
        sf.write(root / BACKGROUND_NOISE_DIR / "white_noise.wav", (0.3 * rng.standard_normal(n)).clip(-1, 1),
                 SAMPLE_RATE, subtype="PCM_16")
        hum = 0.2 * np.sin(2 * np.pi * 50 * np.arange(n) / SAMPLE_RATE) + 0.02 * rng.standard_normal(n)
        sf.write(root / BACKGROUND_NOISE_DIR / "hum.wav", hum, SAMPLE_RATE, subtype="PCM_16")
        (root / BACKGROUND_NOISE_DIR / "README.md").write_text("not audio, not a word\n")
    return root


@pytest.fixture(scope="module")
def gsc_template(tmp_path_factory):
    return make_gsc(tmp_path_factory.mktemp("template") / "gsc")


@pytest.fixture
def gsc(gsc_template, tmp_path):
    """A fresh copy of the folder per test (some tests damage it)."""
    return Path(shutil.copytree(gsc_template, tmp_path / "gsc"))


def _paths(index):
    return [ex.path for ex in index if ex.path is not None]


def _counts(index):
    return {name: sum(ex.label == i for ex in index) for i, name in enumerate(LABELS)}


# -- layout and labels -----------------------------------------------------------------


def test_list_clips_sees_every_word_and_nothing_else(gsc):
    (gsc / ".hidden").mkdir()
    (gsc / ".hidden" / "x.wav").write_bytes(b"")
    clips = list_clips(gsc)
    assert len(clips) == len(WORDS) * len(SPEAKERS) * 2
    assert {word for _, word in clips} == set(WORDS)
    assert all(rel == f"{word}/{rel.split('/')[1]}" for rel, word in clips)
    assert not any(rel.startswith(("_", ".")) for rel, _ in clips)
    assert clips == sorted(clips, key=lambda c: (c[1], c[0]))


def test_word_to_label():
    for word in KEYWORDS:
        assert word_to_label(word) == word
    for word in ("bed", "marvin", "sheila", "zero", "whatever"):
        assert word_to_label(word) == UNKNOWN


def test_split_of_follows_the_lists():
    val, test = {"yes/a.wav"}, {"yes/b.wav"}
    assert split_of("yes/a.wav", val, test) == "val"
    assert split_of("yes/b.wav", val, test) == "test"
    assert split_of("yes/c.wav", val, test) == "train"


def test_splits_follow_the_lists_and_never_overlap(gsc):
    val_list = set((gsc / "validation_list.txt").read_text().split())
    test_list = set((gsc / "testing_list.txt").read_text().split())
    paths = {split: _paths(build_index(gsc, split)) for split in ("train", "val", "test")}
    assert set(paths["val"]) <= val_list and paths["val"]
    assert set(paths["test"]) <= test_list and paths["test"]
    assert not set(paths["train"]) & (val_list | test_list)
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not set(paths[a]) & set(paths[b])
    for split, p in paths.items():
        assert len(p) == len(set(p)), f"{split} holds a clip twice"
    # every keyword clip is in exactly one split
    keyword_clips = {rel for rel, word in list_clips(gsc) if word in KEYWORDS}
    assert sorted(keyword_clips) == sorted(rel for p in paths.values() for rel in p if rel in keyword_clips)


def test_labels_of_the_index(gsc):
    for ex in build_index(gsc, "train"):
        if ex.path is None:
            assert ex.label == LABELS.index(SILENCE)
        else:
            word = ex.path.split("/")[0]
            assert LABELS[ex.label] == (word if word in KEYWORDS else UNKNOWN)


@pytest.mark.parametrize("silence, unknown", [(0.1, 0.1), (0.2, 0.3), (0.0, 0.0), (0.15, 0.05)])
def test_silence_and_unknown_proportions(gsc, silence, unknown):
    index = build_index(gsc, "train", silence_fraction=silence, unknown_fraction=unknown)
    counts = _counts(index)
    total = len(index)
    assert sum(counts[w] for w in KEYWORDS) == 3 * 6 * 2  # every keyword clip of the 6 train speakers
    assert abs(counts[SILENCE] / total - silence) <= 1 / total
    assert abs(counts[UNKNOWN] / total - unknown) <= 1 / total


def test_all_unknowns_taken_when_too_few(gsc):
    index = build_index(gsc, "train", silence_fraction=0.3, unknown_fraction=0.6)
    counts = _counts(index)
    assert counts[UNKNOWN] == 4 * 6 * 2  # every unknown clip of the train speakers
    assert abs(counts[SILENCE] / len(index) - 0.3) <= 1 / len(index)


def test_bad_fractions_refused(gsc):
    with pytest.raises(ValueError):
        build_index(gsc, "train", silence_fraction=0.5, unknown_fraction=0.5)
    with pytest.raises(ValueError):
        build_index(gsc, "nope")


def test_index_is_deterministic(gsc):
    assert build_index(gsc, "train", seed=3) == build_index(gsc, "train", seed=3)
    assert build_index(gsc, "train", seed=3) != build_index(gsc, "train", seed=4)
    assert build_index(gsc, "training", seed=3) == build_index(gsc, "train", seed=3)


def test_silence_comes_from_each_splits_own_part_of_the_noise(gsc):
    n = int(NOISE_SECONDS * SAMPLE_RATE)
    bounds = {"train": (0, 0.8 * n), "val": (0.8 * n, 0.9 * n), "test": (0.9 * n, n)}
    gains = []
    for split, (lo, hi) in bounds.items():
        silence = [ex for ex in build_index(gsc, split, silence_fraction=0.3) if ex.path is None]
        assert silence
        for ex in silence:
            assert ex.noise_file in (f"{BACKGROUND_NOISE_DIR}/hum.wav", f"{BACKGROUND_NOISE_DIR}/white_noise.wav")
            assert lo <= ex.offset and ex.offset + CLIP_SAMPLES <= hi
            gains.append(ex.gain)
    assert min(gains) >= 1e-3 and max(gains) <= 1.0
    assert min(gains) < 0.05  # some near-silent ones


def test_split_all_takes_every_clip_and_ignores_the_lists(gsc, tmp_path):
    index = build_index(gsc, "all")
    assert sorted(_paths(index)) == sorted(rel for rel, _ in list_clips(gsc))
    assert _counts(index)[SILENCE] > 0
    bare = make_gsc(tmp_path / "bare", noise=False, lists=False)
    index = build_index(bare, "all")
    assert len(index) == len(list_clips(bare)) and _counts(index)[SILENCE] == 0


def test_folder_without_lists_or_noise(tmp_path):
    root = make_gsc(tmp_path / "plain", noise=False, lists=False)
    assert len(build_index(root, "val")) == 0 and len(build_index(root, "test")) == 0
    ds = SpeechCommands(root, "train", progress=False)
    silence = [i for i, ex in enumerate(ds.examples) if ex.path is None]
    assert silence and all(ds.examples[i].noise_file is None for i in silence)
    assert all(float(ds[i][0].abs().max()) == 0.0 for i in silence)  # digital silence, no noise to cut


def test_missing_folder_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        list_clips(tmp_path / "nowhere")


# -- audio -------------------------------------------------------------------------------


def test_stereo_44k1_is_loaded_as_16k_mono(tmp_path):
    rate, freq = 44_100, 1000.0
    t = np.arange(rate) / rate
    stereo = np.stack([0.5 * np.sin(2 * np.pi * freq * t), 0.3 * np.sin(2 * np.pi * freq * t)], axis=1)
    path = tmp_path / "stereo.wav"
    sf.write(path, stereo, rate, subtype="FLOAT")
    x = load_audio(path)
    assert x.dtype == np.float32 and x.ndim == 1 and len(x) == SAMPLE_RATE
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / len(x)
    assert abs(peak_hz - freq) <= 1.0
    middle = x[2000:-2000]  # away from the filter's edge effects
    assert np.sqrt(np.mean(middle**2)) == pytest.approx(0.4 / np.sqrt(2), rel=0.02)  # the channels' mean


def test_load_audio_at_native_rate_is_exact(tmp_path):
    x = _clip("yes", 0, 0)
    sf.write(tmp_path / "a.wav", x, SAMPLE_RATE, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(tmp_path / "a.wav"), x)


def test_fit_length_pads_at_the_end_and_crops_the_centre():
    short = _clip("no", 1, 0, seconds=0.5)
    padded = fit_length(short)
    assert padded.shape == (CLIP_SAMPLES,) and padded.dtype == np.float32
    np.testing.assert_array_equal(padded[: len(short)], short)
    assert not padded[len(short):].any()
    long = _clip("no", 1, 0, seconds=1.5)
    cropped = fit_length(long)
    np.testing.assert_array_equal(cropped, long[4000:20000])
    assert fit_length(np.zeros(CLIP_SAMPLES)).shape == (CLIP_SAMPLES,)
    assert fit_length(long, 100).shape == (100,)


def test_dataset_pads_and_crops_odd_length_clips(tmp_path):
    root = make_gsc(tmp_path / "g", words=("yes",), utts=1, noise=False, lists=False)
    sf.write(root / "yes" / "short.wav", _clip("yes", 0, 5, seconds=0.5), SAMPLE_RATE)
    sf.write(root / "yes" / "long.wav", _clip("yes", 0, 6, seconds=1.5), SAMPLE_RATE)
    ds = SpeechCommands(root, "all", progress=False)
    for i, ex in enumerate(ds.examples):
        x, label = ds[i]
        assert x.shape == (CLIP_SAMPLES,) and LABELS[label] == "yes"
        if ex.path == "yes/short.wav":
            assert not x[8000:].any() and x[:8000].abs().max() > 0.1


@pytest.mark.parametrize("content, reason", [(None, "not audio"), (b"", "empty"), ("zero-frames", "empty")])
def test_bad_files_raise_a_data_error_naming_the_file(tmp_path, content, reason):
    path = tmp_path / "bad.wav"
    if content == "zero-frames":
        sf.write(path, np.zeros(0, np.float32), SAMPLE_RATE)
    else:
        path.write_bytes(np.random.default_rng(1).bytes(3000) if content is None else content)
    with pytest.raises(DataError, match=reason) as info:
        load_audio(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(DataError, match="no such file"):
        load_audio(tmp_path / "missing.wav")


# -- the dataset -------------------------------------------------------------------------


@pytest.mark.parametrize("preload", [False, True])
def test_dataset_items(gsc, preload):
    ds = SpeechCommands(gsc, "train", preload=preload, progress=False)
    assert ds.labels == LABELS
    counts = ds.class_counts()
    assert list(counts) == list(LABELS) and sum(counts.values()) == len(ds)
    assert counts[SILENCE] > 0 and counts[UNKNOWN] > 0 and counts["yes"] == 12 and counts["left"] == 0
    for i in range(len(ds)):
        x, label = ds[i]
        assert isinstance(x, torch.Tensor) and x.dtype == torch.float32 and x.shape == (CLIP_SAMPLES,)
        assert isinstance(label, int) and label == ds.examples[i].label
        assert torch.isfinite(x).all()
        if ds.examples[i].path is not None:
            assert x.abs().max() > 0.1  # the clip's own audio, not zeros
    silence = [float(ds[i][0].pow(2).mean().sqrt()) for i, ex in enumerate(ds.examples) if ex.path is None]
    assert max(silence) > 0.01 and min(silence) < max(silence)


def test_preloaded_and_lazy_give_the_same_audio(gsc):
    lazy = SpeechCommands(gsc, "val", progress=False)
    eager = SpeechCommands(gsc, "val", preload=True, progress=False)
    assert lazy.examples == eager.examples
    for i in range(len(lazy)):
        torch.testing.assert_close(lazy[i][0], eager[i][0], atol=1 / 32768, rtol=0)


def test_same_seed_same_data(gsc):
    a, b = SpeechCommands(gsc, "train", seed=7, progress=False), SpeechCommands(gsc, "train", seed=7, progress=False)
    assert a.examples == b.examples
    for i in range(len(a)):
        assert torch.equal(a[i][0], b[i][0])


def test_transform_is_applied(gsc):
    ds = SpeechCommands(gsc, "test", transform=lambda x: x * 0 + 1, progress=False)
    assert torch.equal(ds[0][0], torch.ones(CLIP_SAMPLES))


def test_dataloader_iterates(gsc):
    ds = SpeechCommands(gsc, "train", progress=False)
    seen = 0
    for x, y in DataLoader(ds, batch_size=8, shuffle=True, num_workers=0):
        assert x.dtype == torch.float32 and x.shape[1:] == (CLIP_SAMPLES,) and y.dtype == torch.int64
        assert ((0 <= y) & (y < len(LABELS))).all()
        seen += len(y)
    assert seen == len(ds)


@pytest.mark.parametrize("preload", [False, True])
def test_corrupt_clip_is_reported_and_skipped(gsc, preload):
    bad = f"yes/{SPEAKERS[0]}_nohash_9.wav"
    (gsc / bad).write_bytes(np.random.default_rng(2).bytes(5000))
    (gsc / "no" / "empty.wav").write_bytes(b"")
    with pytest.warns(CorruptClipWarning, match=bad):
        ds = SpeechCommands(gsc, "train", preload=preload, progress=False)
    skipped = dict(ds.skipped)
    assert set(skipped) == {bad, "no/empty.wav"}
    assert "not audio" in skipped[bad] and "empty" in skipped["no/empty.wav"]
    assert bad not in _paths(ds.examples) and "no/empty.wav" not in _paths(ds.examples)
    assert ds.class_counts()["yes"] == 12
    for i in range(len(ds)):
        assert ds[i][0].shape == (CLIP_SAMPLES,)


def test_clip_failing_later_is_replaced_by_one_of_its_class_and_reported_once(gsc, monkeypatch):
    ds = SpeechCommands(gsc, "train", progress=False)
    index = next(i for i, ex in enumerate(ds.examples) if ex.path and ex.path.startswith("no/"))
    victim = ds.examples[index].path
    real = sc.load_audio

    def flaky(path, *args, **kwargs):
        if str(path).endswith(victim):
            raise DataError(f"{path}: unreadable (simulated)")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(sc, "load_audio", flaky)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        x, label = ds[index]
        ds[index]
    assert LABELS[label] == "no" and x.abs().max() > 0.1
    reports = [w for w in caught if issubclass(w.category, CorruptClipWarning)]
    assert len(reports) == 1 and victim in str(reports[0].message)


def test_noise_files_and_load_noise(gsc):
    files = noise_files(gsc)
    assert [p.name for p in files] == ["hum.wav", "white_noise.wav"]
    noises = load_noise(gsc)
    assert len(noises) == 2
    assert all(n.dtype == np.float32 and n.shape == (int(NOISE_SECONDS * SAMPLE_RATE),) for n in noises)
    n = noises[0].size  # a split's region: training the first 80%, test the last 10%
    train, test = load_noise(gsc, split="train")[0], load_noise(gsc, split="test")[0]
    assert np.array_equal(train, noises[0][:int(0.8 * n)]) and np.array_equal(test, noises[0][int(0.9 * n):])
    (gsc / BACKGROUND_NOISE_DIR / "broken.wav").write_bytes(b"RIFF....junk")
    with pytest.warns(CorruptClipWarning, match="broken.wav"):
        assert len(load_noise(gsc)) == 2
    assert noise_files(gsc.parent / "nowhere") == []



def test_all_split_can_keep_the_12_class_proportions(tmp_path):
    root = make_gsc(tmp_path / "gsc", noise=False, lists=False)  # 3 keywords, 4 unknown words, 8 speakers x 2
    every = build_index(root, "all")
    assert sum(1 for e in every if LABELS[e.label] == UNKNOWN) == 4 * 16
    balanced = build_index(root, "all", balance_all=True)
    n_unknown = sum(1 for e in balanced if LABELS[e.label] == UNKNOWN)
    n_keyword = sum(1 for e in balanced if LABELS[e.label] in KEYWORDS)
    assert n_keyword == 3 * 16 and n_unknown == round(0.1 * 48 / 0.8)
