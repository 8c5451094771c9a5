"""Long test streams (spotter.data.stream) built from a tiny synthetic corpus.

Real synthesis: espeak-ng says the corpus and some sentences, flite the others
(both from apt; the tests skip when either is missing).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf

from spotter.config import KEYWORDS, SAMPLE_RATE
from spotter.data.stream import BANNED_WORDS, SENTENCES, _sentence_voices, make_stream, tokens
from spotter.data.synth import synthesize_corpus
from spotter.data.labels import read_labels

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None or shutil.which("flite") is None,
                                reason="needs espeak-ng and flite (apt-get install espeak-ng flite)")

WORDS = ("yes", "no", "stop", "marvin", "house")
MINUTES = 1.0
ENGINES = ("espeak", "flite")


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream") / "gsc"
    synthesize_corpus(root, per_word=5, engines=("espeak",), words=WORDS, progress=False, noise_seconds=20.0)
    return root


@pytest.fixture(scope="session")
def stream(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("stream_out") / "long.wav"
    info = make_stream(corpus, out, minutes=MINUTES, seed=3, snr_db=(15.0, 20.0), sentence_engines=ENGINES,
                       progress=False)
    return info, read_labels(info.csv_path)


def test_files_and_labels(stream):
    info, labels = stream
    wav = sf.info(info.path)
    assert (wav.samplerate, wav.channels, wav.subtype) == (SAMPLE_RATE, 1, "PCM_16")
    assert wav.frames == int(MINUTES * 60 * SAMPLE_RATE) and info.duration_s == pytest.approx(MINUTES * 60)
    assert info.csv_path == info.path.with_suffix(".csv")
    assert info.csv_path.read_text(encoding="utf-8").splitlines()[0] == "label,start,end,word"
    assert labels and labels[-1].end <= info.duration_s
    for a, b in zip(labels, labels[1:]):
        assert a.start < a.end <= b.start, (a, b)  # sorted, never overlapping
    counts = {}
    for e in labels:
        counts[e.label] = counts.get(e.label, 0) + 1
        if e.label == "speech":
            assert e.word in SENTENCES
        else:
            assert 0.05 < e.end - e.start < 1.0, e  # the word, not its 1 s clip
            assert e.word in WORDS and e.label == (e.word if e.word in KEYWORDS else "unknown")
    assert counts == info.counts
    assert set(counts) == {"yes", "no", "stop", "unknown", "speech"}
    speech_share = sum(e.end - e.start for e in labels if e.label == "speech") / info.duration_s
    assert 0.15 < speech_share < 0.45


def test_keyword_regions_are_louder_than_the_gaps(stream):
    info, labels = stream
    x, _ = sf.read(info.path, dtype="float64")

    def rms(a: float, b: float) -> float:
        seg = x[int(a * SAMPLE_RATE):int(b * SAMPLE_RATE)]
        return float(np.sqrt(np.mean(seg ** 2)))

    previous_end = 0.0
    for e in labels:
        if e.label in KEYWORDS and e.start - previous_end > 0.4:
            noise = rms(e.start - 0.3, e.start - 0.1)  # the gap just before the word
            assert rms(e.start, e.end) > 3.0 * noise, e  # at 15..20 dB SNR
        previous_end = e.end


def test_same_seed_same_files(corpus, stream, tmp_path):
    info, _ = stream
    again = make_stream(corpus, tmp_path / "again.wav", minutes=MINUTES, seed=3, snr_db=(15.0, 20.0),
                        sentence_engines=ENGINES, progress=False)
    assert again.path.read_bytes() == info.path.read_bytes()
    assert again.csv_path.read_bytes() == info.csv_path.read_bytes()
    other = make_stream(corpus, tmp_path / "other.wav", minutes=0.2, seed=4, sentence_engines=ENGINES,
                        progress=False)
    assert other.csv_path.read_bytes() != info.csv_path.read_bytes()


def test_speech_only(corpus, tmp_path):
    info = make_stream(corpus, tmp_path / "talk.wav", minutes=0.5, seed=1, speech_only=True,
                       sentence_engines=ENGINES, progress=False)
    labels = read_labels(info.csv_path)
    assert labels and {e.label for e in labels} == {"speech"} and info.counts == {"speech": len(labels)}
    assert sum(e.end - e.start for e in labels) > 0.6 * info.duration_s


def test_sentence_voices_are_held_out(corpus):
    voices = _sentence_voices(corpus, "test", ENGINES)
    assert set(voices) == {"espeak", "flite"}
    assert voices["espeak"] and all(v["split"] == "testing" for v in voices["espeak"])
    assert {v["params"]["voice"] for v in voices["flite"]} >= {"slt", "awb", "rms"}  # an engine never trained on


def test_bad_arguments(corpus, tmp_path):
    with pytest.raises(ValueError):
        make_stream(corpus, tmp_path / "x.wav", minutes=0, progress=False)
    with pytest.raises(ValueError):
        make_stream(corpus, tmp_path / "x.wav", split="dev", progress=False)


def test_sentence_bank():
    assert len(SENTENCES) >= 150 and len(set(SENTENCES)) == len(SENTENCES)
    assert tokens("Don't STOP, go-kart!") == ["don't", "stop", "go", "kart"]
    for sentence in SENTENCES:
        assert not set(tokens(sentence)) & BANNED_WORDS, sentence
    assert BANNED_WORDS >= set(KEYWORDS)


def test_training_speech_crops_are_keyword_free_training_only_unknown_clips(tmp_path_factory):
    from spotter.data.speech import SPEECH_WORD, TRAINING_SENTENCES, add_speech_crops, keyword_free
    from spotter.data.speech_commands import build_index
    from spotter.data.texts import BABBLE_SENTENCES

    assert keyword_free(TRAINING_SENTENCES + tuple(BABBLE_SENTENCES))
    assert not set(TRAINING_SENTENCES) & set(SENTENCES), "training text must not be the test streams' text"
    with pytest.raises(ValueError, match="keyword"):
        keyword_free(["Turn the lights off please."])
    root = tmp_path_factory.mktemp("crops") / "gsc"
    synthesize_corpus(root, per_word=5, engines=("espeak",), words=WORDS, progress=False, noise_seconds=20.0)
    folder = add_speech_crops(root, count=6, seed=1, progress=False)
    files = sorted(folder.glob("*.wav"))
    assert folder.name == SPEECH_WORD and len(files) == 6
    for f in files:
        audio, sr = sf.read(f, dtype="float32")
        assert sr == SAMPLE_RATE and audio.size == SAMPLE_RATE and np.sqrt(np.mean(audio ** 2)) > 1e-3
    train_paths = {e.path for e in build_index(root, "train", unknown_fraction=0.9, silence_fraction=0.0)}
    held_out = {e.path for split in ("val", "test") for e in build_index(root, split)}
    assert {f"{SPEECH_WORD}/{f.name}" for f in files} <= train_paths
    assert not any(p.startswith(SPEECH_WORD) for p in held_out)
