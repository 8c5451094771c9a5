"""Training windows cut from training-voice streams (spotter.data.windows), on a tiny espeak corpus."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf

from spotter.config import CLIP_SAMPLES, LABELS, SAMPLE_RATE
from spotter.data.speech_commands import build_index
from spotter.data.synth import synthesize_corpus
from spotter.data.windows import (MARGIN, MAX_KEYWORD_IN_UNKNOWN, MAX_OTHER_KEYWORD, PREFIX, WINDOWS_WORD, Row,
                                  add_stream_windows, cut_windows, remove_stream_windows)

WORDS = ("yes", "no", "stop", "marvin", "house")


def test_keyword_windows_hold_the_whole_word_anywhere_and_no_other_keyword():
    rows = [Row("yes", 20000, 26000), Row("no", 30000, 35000), Row("unknown", 52000, 58000), Row("stop", 62000, 64000)]
    windows, rejected = cut_windows(80000, rows, per_keyword=50, rng=np.random.default_rng(0))
    by_label = {}
    for start, label in windows:
        by_label.setdefault(label, []).append(start)
        row = next(r for r in rows if r.label == label)
        assert start + MARGIN <= row.start and row.end + MARGIN <= start + CLIP_SAMPLES  # whole word, margins kept
        limit = MAX_OTHER_KEYWORD if label != "unknown" else MAX_KEYWORD_IN_UNKNOWN
        for other in rows:
            if other is not row and other.label != "unknown":
                inside = max(0, min(other.end, start + CLIP_SAMPLES) - max(other.start, start))
                assert inside <= limit * (other.end - other.start)
    # The word sits at many places in its windows, not always centred.
    assert np.ptp(by_label["yes"]) > 0.5 * (CLIP_SAMPLES - 2 * MARGIN - 6000)
    # 'yes' and 'no' are 4,000 samples apart: some of their windows must be refused, none given a false label.
    assert rejected > 0 and len(by_label["yes"]) < 50
    # 'stop' fits, away from the other keywords; the unknown word next to it gets windows without it.
    assert len(by_label["stop"]) == 50 and by_label["unknown"]


def test_no_window_for_a_word_longer_than_a_window_or_outside_the_stream():
    rows = [Row("yes", 1000, 1000 + CLIP_SAMPLES), Row("no", 72000, 79500)]  # too long; too near the end
    windows, _ = cut_windows(80000, rows, per_keyword=3, rng=np.random.default_rng(0))
    assert windows == []


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng (apt-get install espeak-ng)")
def test_windows_join_training_only_and_rerunning_replaces_them(tmp_path):
    root = tmp_path / "gsc"
    synthesize_corpus(root, per_word=5, engines=("espeak",), words=WORDS, progress=False, noise_seconds=20.0)
    before = {split: len(build_index(root, split, unknown_fraction=0.5)) for split in ("val", "test")}
    counts = add_stream_windows(root, minutes=1.0, per_keyword=2, seed=1, progress=False)
    files = sorted(root.glob(f"*/{PREFIX}*.wav"))
    assert counts.keyword > 10 and counts.unknown > 5 and len(files) == counts.keyword + counts.unknown
    for f in files:
        audio, sr = sf.read(f, dtype="float32")
        assert sr == SAMPLE_RATE and audio.size == CLIP_SAMPLES
        assert np.sqrt(np.mean(audio ** 2)) > 10 ** (-60 / 20)  # a word over the noise floor, not zeros
        assert f.parent.name in ("yes", "no", "stop", WINDOWS_WORD)
    train = {e.path: LABELS[e.label] for e in build_index(root, "train", unknown_fraction=0.9, silence_fraction=0.0)}
    for f in files:
        rel = f"{f.parent.name}/{f.name}"
        if f.parent.name == WINDOWS_WORD:
            assert train.get(rel, "unknown") == "unknown"  # unknown words are sampled; never another label
        else:
            assert train[rel] == f.parent.name
    assert {split: len(build_index(root, split, unknown_fraction=0.5)) for split in ("val", "test")} == before
    again = add_stream_windows(root, minutes=1.0, per_keyword=2, seed=1, progress=False)
    assert again == counts and sorted(root.glob(f"*/{PREFIX}*.wav")) == files  # replaced, not added
    assert remove_stream_windows(root) == len(files) and not list(root.glob(f"*/{PREFIX}*.wav"))
