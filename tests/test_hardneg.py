"""Hard negatives (spotter.data.hardneg): windows of keyword-free speech the shipped model takes for a keyword."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from spotter.checkpoint import load_model
from spotter.cli import main as cli_main
from spotter.config import CLIP_SAMPLES, KEYWORDS, LABELS, SAMPLE_RATE
from spotter.data.hardneg import HARDNEG_WORD, MIN_GAP, NEAR_MISS_SENTENCES, add_hard_negatives, hard_windows
from spotter.data.speech import TRAINING_SENTENCES
from spotter.data.speech_commands import build_index, load_audio
from spotter.data.stream import BANNED_WORDS, SENTENCES, tokens

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng (apt-get install espeak-ng)")


@pytest.fixture(scope="module")
def model():
    return load_model(device="cpu")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from spotter.data.synth import synthesize_corpus

    root = tmp_path_factory.mktemp("hardneg") / "gsc"
    synthesize_corpus(root, per_word=5, engines=("espeak",), words=("yes", "stop", "go", "bed"), progress=False,
                      noise_seconds=20.0)
    return root


def test_near_miss_sentences_hold_no_keyword_and_are_not_test_sentences():
    assert len(NEAR_MISS_SENTENCES) >= 50
    for sentence in NEAR_MISS_SENTENCES:
        assert not set(tokens(sentence)) & BANNED_WORDS, sentence
    assert not set(NEAR_MISS_SENTENCES) & set(SENTENCES) and not set(NEAR_MISS_SENTENCES) & set(TRAINING_SENTENCES)


@needs_espeak
def test_hard_windows_find_keywords_where_they_are_and_nothing_in_silence(corpus, model):
    yes = load_audio(next((corpus / "yes").glob("*.wav")))
    stop = load_audio(next((corpus / "stop").glob("*.wav")))
    audio = np.concatenate([np.zeros(8000), yes, np.zeros(24000), stop, np.zeros(8000)]).astype(np.float32)
    # room for a few windows per word: a model confident over more offsets may rank 3 of one word first
    found = hard_windows(model, audio, min_prob=0.5, per_sentence=6)
    assert {k for _, _, k in found} >= {"yes", "stop"}
    assert [p for _, p, _ in found] == sorted((p for _, p, _ in found), reverse=True)
    starts = [s for s, _, _ in found]
    assert all(abs(a - b) >= MIN_GAP for i, a in enumerate(starts) for b in starts[i + 1:])
    where = {}
    for s, _, k in found:  # each keyword's most probable window (found is sorted by probability)
        where.setdefault(k, s)
    loud = np.flatnonzero(np.abs(yes) > 0.05 * np.abs(yes).max())
    word_start, word_end = 8000 + loud[0], 8000 + loud[-1]  # where "yes" is said in the audio
    assert where["yes"] <= word_start and word_end < where["yes"] + CLIP_SAMPLES  # the window holds the word
    assert hard_windows(model, np.zeros(3 * SAMPLE_RATE, np.float32), min_prob=0.3, per_sentence=2) == []


@pytest.mark.slow
@needs_espeak
def test_hard_negatives_are_training_only_unknown_windows_the_model_took_for_keywords(corpus, model, tmp_path):
    before = {split: build_index(corpus, split, unknown_fraction=0.5) for split in ("val", "test")}
    found = add_hard_negatives(corpus, count=8, seed=2, min_prob=0.3, workers=1, max_sentences=80, progress=False)
    files = sorted((corpus / HARDNEG_WORD).glob("*.wav"))
    assert 0 < found.written == len(files) <= 8 and found.sentences <= 80
    assert sum(found.by_keyword.values()) == found.written and set(found.by_keyword) <= set(KEYWORDS)
    train_voices = {p.split("/")[-1].split("_nohash_")[0] for p, *_ in
                    (e for e in build_index(corpus, "train", unknown_fraction=0.5) if e.path)}
    windows = []
    for f in files:
        audio, sr = sf.read(f, dtype="float32")
        assert sr == SAMPLE_RATE and audio.size == CLIP_SAMPLES and np.abs(audio).max() > 0.01
        assert f.name.rsplit("_", 1)[0] in train_voices  # only training voices speak them
        windows.append(audio)
    with torch.inference_mode():
        probs = torch.softmax(model(torch.from_numpy(np.stack(windows))), -1).numpy()
    keyword_probs = probs[:, [LABELS.index(k) for k in KEYWORDS]].max(1)
    assert (keyword_probs >= 0.3 - 0.02).all(), keyword_probs  # what the model took for a keyword (16-bit rounding)
    train = {e.path: LABELS[e.label] for e in build_index(corpus, "train", unknown_fraction=0.9, silence_fraction=0.0)}
    assert {train.get(f"{HARDNEG_WORD}/{f.name}", "unknown") for f in files} == {"unknown"}
    assert {split: build_index(corpus, split, unknown_fraction=0.5) for split in ("val", "test")} == before
    again = add_hard_negatives(corpus, count=8, seed=2, min_prob=0.3, workers=1, max_sentences=80, progress=False)
    assert again == found and sorted((corpus / HARDNEG_WORD).glob("*.wav")) == files  # replaced, not added


def test_hardneg_refuses_a_bad_model_or_corpus_in_one_line(corpus, tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert cli_main(["data", "hardneg", "--corpus", str(corpus), "--model", str(bad), "--no-progress"]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(bad) in err
    assert cli_main(["data", "hardneg", "--corpus", str(tmp_path), "--no-progress"]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "corpus.json" in err
