"""A model's window is its own: 1 s for words, up to 1.5 s for a long phrase, and every part that cuts
windows (engine, gate, batched scoring, export, training data, enrollment, `spotter custom`) uses it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from spotter.checkpoint import load_model, make_checkpoint, save_checkpoint
from spotter.cli import main as cli_main
from spotter.config import SAMPLE_RATE, FrontendConfig, labels_for
from spotter.errors import SpotterError
from spotter.events import PosteriorUpdate
from spotter.gate import BLOCK_SAMPLES, GateConfig
from spotter.model import build_model
from spotter.pipeline import Engine, EngineConfig

from conftest import chirp, noise, mixed_signal

WINDOW = 20800  # 1.3 s
HOP = 1600
PHRASES = ("lights on", "next slide")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_model("bcresnet-1", labels=labels_for(PHRASES), frontend=FrontendConfig(normalize="mean",
                                                                                      window_samples=WINDOW))
    with torch.no_grad():  # batch-norm statistics of real signals, so the outputs depend on the input
        for seed in range(3):
            m(torch.from_numpy(np.stack([chirp(100 + 300 * k, 4000, 1.3) + noise(1.3, 0.05 * k, seed + k)
                                         for k in range(8)]).astype(np.float32)))
    return m.eval()


@pytest.fixture(scope="module")
def stream() -> np.ndarray:
    return mixed_signal()


def _offline(model, audio: np.ndarray, n: int) -> np.ndarray:
    """Class probabilities of the ``n``-sample windows ending every hop (the stream preceded by silence)."""
    padded = np.concatenate([np.zeros(n, np.float32), audio])
    windows = np.stack([padded[end: end + n] for end in range(HOP, audio.size + 1, HOP)])
    with torch.inference_mode():
        return torch.softmax(model(torch.from_numpy(windows)), dim=-1).numpy()


def _engine_probs(model, audio: np.ndarray, chunk: int = 333, config: EngineConfig | None = None):
    engine = Engine(model, config or EngineConfig())
    events = []
    for i in range(0, audio.size, chunk):
        events += engine.feed(audio[i: i + chunk])
    return np.array([e.probs for e in events if isinstance(e, PosteriorUpdate)]), engine


def test_the_engine_scores_the_models_own_window(model, stream):
    got, engine = _engine_probs(model, stream)
    assert engine.framer.window == WINDOW
    np.testing.assert_allclose(got, _offline(model, stream, WINDOW), atol=1e-5)
    # what the network saw: the log-Mel image of the last 1.3 s (131 frames), not of 1 s (101)
    end = stream.size - stream.size % HOP
    seen = engine.scorer.features.window_features(end)
    padded = np.concatenate([np.zeros(WINDOW, np.float32), stream])
    with torch.inference_mode():
        want = model.frontend(torch.from_numpy(padded[end: end + WINDOW])[None])
    assert seen.shape == want.shape == (1, 1, 40, 131)
    torch.testing.assert_close(seen, want, atol=5e-4, rtol=1e-5)


def test_the_silence_gate_follows_the_models_window(model, stream):
    _, engine = _engine_probs(model, stream, config=EngineConfig(gate=GateConfig()))
    assert engine.gate.levels.size == WINDOW // BLOCK_SAMPLES


def test_batched_scoring_cuts_the_same_windows_as_the_engine(stream, tmp_path):
    from spotter.data.labels import write_labels
    from spotter.evaluation.tuning import stream_posteriors

    torch.manual_seed(0)  # a linear model: its scores follow every frame, and its weights are the window's shape
    model = build_model("linear", labels=labels_for(PHRASES), frontend=FrontendConfig(window_samples=WINDOW)).eval()

    wav = tmp_path / "stream.wav"
    sf.write(wav, stream, SAMPLE_RATE, subtype="FLOAT")
    write_labels(wav.with_suffix(".csv"), [])
    engine = stream_posteriors(model, wav)
    batched = stream_posteriors(model, wav, batched=True, batch_size=8)
    assert np.allclose(batched.times, engine.times) and np.abs(batched.probs - engine.probs).max() < 1e-4


def test_the_window_travels_in_the_checkpoint_and_old_checkpoints_are_1_s(model, tmp_path, capsys):
    path = save_checkpoint(model, tmp_path / "phrases.pt")
    loaded = load_model(path, device="cpu")
    assert loaded.frontend.config.window_samples == WINDOW and loaded.labels == model.labels
    clips = torch.from_numpy(np.stack([chirp(300, 3000, 1.3), noise(1.3, seed=1)]).astype(np.float32))
    with torch.inference_mode():
        assert torch.equal(loaded(clips), model(clips))
    assert cli_main(["info", str(path)]) == 0
    assert "window:    1.3 s" in capsys.readouterr().out

    old = make_checkpoint(build_model("bcresnet-1"))
    del old["frontend"]["window_samples"]  # written before windows had a length of their own
    torch.save(old, tmp_path / "old.pt")
    assert load_model(tmp_path / "old.pt", device="cpu").frontend.config.window_samples == SAMPLE_RATE


def test_an_exported_long_window_model_equals_torch(model, stream, tmp_path):
    pytest.importorskip("onnxruntime")
    from spotter.export import export_onnx
    from spotter.exported import load_exported

    whole, _ = export_onnx(model, tmp_path / "phrases.onnx")  # verified against torch as it is written
    exported = load_exported(whole)
    assert exported.frontend.config.window_samples == WINDOW
    got, engine = _engine_probs(exported, stream)
    assert engine.framer.window == WINDOW
    assert np.abs(got - _engine_probs(model, stream)[0]).max() <= 1e-4


@pytest.mark.parametrize("samples", [16100, 6400, 40000])
def test_a_window_the_engine_cannot_cut_is_refused(samples):
    with pytest.raises(ValueError, match="window_samples"):
        FrontendConfig(window_samples=samples)


def test_train_refuses_a_bad_window_in_one_line(tmp_path, capsys):
    from spotter.training.options import TrainOptions

    with pytest.raises(SpotterError, match="--window-seconds 1.234"):
        TrainOptions(window_seconds=1.234)
    assert cli_main(["train", "--data", str(tmp_path), "--window-seconds", "3", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--window-seconds 3" in err
    assert not (tmp_path / "run").exists()


def test_choose_window_fits_the_longest_keyword():
    from spotter.custom.build import MAX_WINDOW_S, choose_window

    assert choose_window({"yes": [0.4] * 9 + [0.9]}) == 1.0  # words: the usual 1 s
    assert choose_window({"yes": [0.4], "next slide": [0.8] * 8 + [0.95] * 2}) == 1.2  # 0.95 + 0.2 margin
    assert choose_window({"a": [0.8]}) == 1.0  # 0.8 + 0.2 is exactly 1 s, not 1.1
    assert choose_window({"open the garage door": [1.6] * 10}) == MAX_WINDOW_S


def test_take_length_follows_the_window():
    from spotter.enroll.takes import TakeError, find_word, max_word_s, word_clip

    take = np.concatenate([noise(0.5, amp=0.001, seed=1), chirp(300, 1200, 1.2, amp=0.3),
                           noise(0.5, amp=0.001, seed=2)]).astype(np.float32)
    with pytest.raises(TakeError, match="longer than a keyword"):
        find_word(take)  # 1 s windows: a 1.2 s sound is no keyword
    word = find_word(take, max_word=max_word_s(24000))
    assert 1.1 < word.seconds < 1.4
    assert word_clip(take, word, 24000).shape == (24000,)


@pytest.mark.slow
def test_a_long_window_corpus_trains_a_long_window_model(tmp_path):
    """A corpus of 1.5 s clips (as `spotter custom` makes), the window measured from it, a short run with
    that window, and the checkpoint listening with it."""
    from spotter.custom.build import choose_window, spoken_seconds
    from spotter.data.speech_commands import SpeechCommands
    from spotter.data.synth import synthesize_corpus
    from spotter.training.run import main as train_main

    corpus = tmp_path / "corpus"
    synthesize_corpus(corpus, per_word=24, seed=1, engines=("espeak",), words=("next slide", "yes", "cat"),
                      progress=False, noise_seconds=10.0, clip_samples=24000)
    assert json.loads((corpus / "corpus.json").read_text())["clip_samples"] == 24000
    assert {sf.info(str(p)).frames for p in corpus.glob("*/*.wav") if p.parent.name != "_background_noise_"} == {24000}
    lengths = spoken_seconds(corpus, "next slide")
    assert len(lengths) == 24 and 0.5 < np.median(lengths) < 1.3
    window = choose_window({"next slide": lengths})
    assert 1.0 <= window <= 1.5
    samples = int(round(window * SAMPLE_RATE))
    clips = SpeechCommands(corpus, "train", keywords=("next slide",), clip_samples=samples, progress=False)
    assert {tuple(clips[i][0].shape) for i in range(len(clips))} == {(samples,)}  # words, unknown and silence

    out = tmp_path / "run"
    assert train_main(["--data", str(corpus), "--keywords", "next slide", "--window-seconds", f"{window:g}",
                       "--model", "bcresnet-1", "--epochs", "1", "--batch-size", "16", "--accelerator", "cpu",
                       "--out", str(out), "--no-progress"]) == 0
    trained = load_model(out / "model.pt", device="cpu")
    assert trained.frontend.config.window_samples == samples and trained.labels == labels_for(("next slide",))
    audio, _ = sf.read(str(sorted((corpus / "next slide").glob("*.wav"))[0]), dtype="float32")
    probs, engine = _engine_probs(trained, np.concatenate([audio, np.zeros(HOP, np.float32)]))
    assert engine.framer.window == samples and probs.shape[1] == 3


def test_a_long_window_model_starts_from_a_1_s_model_of_the_same_kind(tmp_path):
    from spotter.training.run import init_weights

    source = build_model("bcresnet-1", frontend=FrontendConfig(normalize="mean"))  # the 12 classes, 1 s
    path = save_checkpoint(source, tmp_path / "words.pt")
    phrases = build_model("bcresnet-1", labels=labels_for(PHRASES),
                          frontend=FrontendConfig(normalize="mean", window_samples=WINDOW))
    init_weights(phrases, path)  # 1.3 s, other labels: every layer but the output rows of new keywords
    assert torch.equal(next(iter(phrases.net.parameters())), next(iter(source.net.parameters())))
    linear = save_checkpoint(build_model("linear"), tmp_path / "linear.pt")
    with pytest.raises(SpotterError, match="names or shapes"):  # its weights are per frame: 101 is not 131
        init_weights(build_model("linear", frontend=FrontendConfig(window_samples=WINDOW)), linear)


def test_a_custom_model_starts_from_an_ensembles_first_member(tmp_path):
    from spotter.model import ensemble
    from spotter.training.run import init_weights

    torch.manual_seed(0)
    members = [build_model("bcresnet-1", frontend=FrontendConfig(normalize="mean")).eval() for _ in range(2)]
    path = save_checkpoint(ensemble(members), tmp_path / "pair.pt")
    phrases = build_model("bcresnet-1", labels=labels_for(PHRASES),
                          frontend=FrontendConfig(normalize="mean", window_samples=WINDOW))
    init_weights(phrases, path)
    first, second, mine = (dict(m.named_parameters()) for m in (members[0].net, members[1].net, phrases.net))
    output = "classifier.5.weight"  # the output layer: only the rows of labels both have are copied
    assert all(torch.equal(mine[k], first[k]) for k in mine if not k.startswith("classifier.5."))
    assert not torch.equal(mine["head.0.weight"], second["head.0.weight"])
    unknown, silence = (labels_for(PHRASES).index(x) for x in ("unknown", "silence"))
    assert torch.equal(mine[output][unknown], first[output][members[0].labels.index("unknown")])
    assert torch.equal(mine[output][silence], first[output][members[0].labels.index("silence")])


def test_custom_starts_from_the_shipped_network_when_the_architectures_match():
    from spotter.custom.build import choose_base

    assert choose_base("auto", None).endswith("bcresnet-3-synth.pt")  # custom.yaml trains the shipped BC-ResNet-3
    assert choose_base("auto", "bcresnet-1") is None and choose_base("none", None) is None
    with pytest.raises(SpotterError, match="a bcresnet-3 network cannot start a bcresnet-1 model"):
        choose_base("bcresnet-3-synth", "bcresnet-1")
