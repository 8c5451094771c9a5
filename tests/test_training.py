"""Training end to end on a tiny synthetic corpus: learns, generalises to unheard voices, saves, reloads, resumes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import spotter
from spotter.checkpoint import load_model
from spotter.errors import SpotterError
from spotter.data.speech_commands import SpeechCommands
from spotter.evaluation.clips import predict
from spotter.training.run import main as train_main

WORDS = ("yes", "no", "up", "down", "bed", "cat")  # four keywords, two "unknown" words


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from spotter.data.synth import synthesize_corpus

    root = tmp_path_factory.mktemp("corpus")
    synthesize_corpus(root, per_word=80, seed=3, engines=("espeak",), words=WORDS, progress=False,
                      noise_seconds=20.0, holdout_fraction=0.2)
    return root


def _train(corpus, out, *extra):
    argv = ["--data", str(corpus), "--model", "bcresnet-1", "--epochs", "2", "--batch-size", "32",
            "--accelerator", "cpu", "--out", str(out), "--no-progress", "--seed", "0", *extra]
    assert train_main(argv) == 0


@pytest.mark.slow
def test_training_learns_and_generalises_to_held_out_voices(corpus, tmp_path):
    # The linear baseline learns this tiny corpus in seconds; BC-ResNet needs more data than a CI test affords.
    out = tmp_path / "run"
    _train(corpus, out, "--model", "linear", "--epochs", "12")
    metrics = json.loads((out / "metrics.json").read_text())
    test = SpeechCommands(corpus, "test", progress=False)
    present = sum(1 for c in test.class_counts().values() if c)
    chance = 1 / present
    print(f"held-out voices: accuracy {metrics['test_accuracy']:.2%} (chance {chance:.0%}, {present} classes), "
          f"macro F1 {metrics['test_f1_macro']:.3f}")
    assert present == 6
    assert metrics["test_accuracy"] > 0.5, metrics["test_accuracy"]  # chance is ~17% (measured 72.5%)

    # test voices are never training voices
    train_speakers = {p.split("/")[-1].split("_nohash_")[0] for p, *_ in SpeechCommands(corpus, "train", progress=False).examples if p}
    test_speakers = {p.split("/")[-1].split("_nohash_")[0] for p, *_ in test.examples if p}
    assert train_speakers and test_speakers and not train_speakers & test_speakers

    # the exported checkpoint and the Lightning checkpoints reload with the same predictions
    exported = load_model(out / "model.pt", device="cpu")
    assert exported.meta["test_accuracy"] == metrics["test_accuracy"]
    assert exported.labels == spotter.LABELS and exported.name == "linear"
    logits, labels = predict(exported, test, progress=False)
    assert (logits.argmax(1) == labels).float().mean().item() == pytest.approx(metrics["test_accuracy"])
    best = sorted((out / "checkpoints").glob("best-*.ckpt"))
    assert len(best) == 1 and (out / "checkpoints" / "last.ckpt").is_file()
    from_ckpt = load_model(best[0], device="cpu")
    again, _ = predict(from_ckpt, test, progress=False)
    assert torch.equal(again, logits)
    assert list((out / "logs").glob("version_*/metrics.csv"))


@pytest.mark.slow
def test_bcresnet_learns_and_beats_chance_on_held_out_voices(tmp_path):
    # The product's architecture, not only the linear baseline: BC-ResNet-1, a short run on a corpus of 250
    # espeak-ng voices per word (the linear test's 80 are too few for it), scored on voices it never heard.
    from spotter.data.synth import synthesize_corpus

    corpus = tmp_path / "corpus"
    synthesize_corpus(corpus, per_word=250, seed=5, engines=("espeak",), words=WORDS, progress=False,
                      noise_seconds=20.0, holdout_fraction=0.2)
    out = tmp_path / "bcresnet"
    _train(corpus, out, "--epochs", "12", "--warmup-epochs", "1", "--normalize", "mean")
    metrics = json.loads((out / "metrics.json").read_text())
    print(f"BC-ResNet-1, held-out voices: accuracy {metrics['test_accuracy']:.2%}, macro F1 {metrics['test_f1_macro']:.3f}")
    # chance is 1/6 (17%); measured 90.4% (macro F1 0.85) in 12 epochs, about a minute on 2 cores
    assert metrics["test_accuracy"] > 0.7 and metrics["test_f1_macro"] > 0.6, metrics


@pytest.mark.slow
def test_trainable_front_end_is_optimised_and_exported(corpus, tmp_path):
    out = tmp_path / "trainable"
    _train(corpus, out, "--trainable-mel", "--trainable-stft", "--epochs", "1")
    trained = load_model(out / "model.pt", device="cpu")
    fresh = spotter.build_model("bcresnet-1", trainable_mel=True, trainable_stft=True)
    for key in ("mel_basis", "stft.wsin", "stft.wcos"):
        moved = (trained.frontend.basis_tensors()[key] - fresh.frontend.basis_tensors()[key]).abs().max()
        assert moved > 1e-6, f"{key} did not train"
    assert trained.frontend.config.trainable_mel and trained.frontend.config.trainable_stft
    # the window alone (--stft-param window): its gains train, so every kernel moves, under one window
    _train(corpus, tmp_path / "window", "--trainable-stft", "--stft-param", "window", "--epochs", "1")
    window = load_model(tmp_path / "window" / "model.pt", device="cpu").frontend
    assert window.config.stft_param == "window" and window.stft_window_log.abs().max() > 1e-6
    assert (window.basis_tensors()["stft.wcos"] - fresh.frontend.basis_tensors()["stft.wcos"]).abs().max() > 1e-6


@pytest.mark.parametrize("mel,stft", [(True, True), (True, False), (False, True), (False, False)])
def test_front_end_parameters_have_their_own_groups(mel, stft):
    from spotter.training.module import KWSModule

    module = KWSModule(model="bcresnet-1", trainable_mel=mel, trainable_stft=stft, frontend_lr=3e-4, lr=0.05)
    groups = {g["name"]: g for g in module.param_groups()}
    basis = module.model.frontend.basis_tensors()
    if stft:  # the raw Fourier kernels at the front end's own lr
        assert {id(p) for p in groups["frontend"]["params"]} == {id(basis["stft.wsin"]), id(basis["stft.wcos"])}
        assert groups["frontend"]["lr"] == 3e-4 and groups["frontend"]["weight_decay"] == 0.0
    else:
        assert "frontend" not in groups
    if mel:  # log-domain Mel weights at the network's lr
        assert [id(p) for p in groups["frontend_shape"]["params"]] == [id(module.model.frontend.mel_log)]
        assert groups["frontend_shape"]["lr"] == 0.05 and groups["frontend_shape"]["weight_decay"] == 0.0
    else:
        assert "frontend_shape" not in groups
    every = {id(p) for p in module.model.parameters() if p.requires_grad}
    assert every == {id(p) for g in groups.values() for p in g["params"]}, "every trainable tensor is optimised"
    raw = KWSModule(model="bcresnet-1", trainable_mel=True, mel_param="matrix", frontend_lr=3e-4)
    assert [id(p) for p in {g["name"]: g for g in raw.param_groups()}["frontend"]["params"]] == \
        [id(raw.model.frontend.mel.mel_basis)]
    window = {g["name"]: g for g in KWSModule(model="bcresnet-1", trainable_stft=True, stft_param="window",
                                               lr=0.05).param_groups()}
    assert "frontend" not in window and window["frontend_shape"]["lr"] == 0.05  # the window's gains: a shape
    assert [p.shape for p in window["frontend_shape"]["params"]] == [(480,)]


def test_front_end_stays_fixed_while_frozen_then_trains(tmp_path):
    """--frontend-freeze-epochs: the network trains from the first step, the front end only after the frozen
    epochs (real optimiser and schedule, one Lightning run of two epochs on spoken-length noise bursts)."""
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, TensorDataset

    from spotter.training.module import KWSModule

    torch.manual_seed(0)
    x = torch.randn(64, 16000) * torch.rand(64, 1)
    y = torch.randint(0, 12, (64,))
    module = KWSModule(model="linear", trainable_mel=True, optimizer="adam", lr=1e-2, frontend_lr=1e-2,
                       weight_decay=0.0, warmup_epochs=0, augment=False, frontend_freeze_epochs=1)
    seen = []

    class Snapshot(pl.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            seen.append((pl_module.model.frontend.mel_log.detach().clone(), pl_module.model.net.fc.weight.detach().clone()))

    start = (module.model.frontend.mel_log.detach().clone(), module.model.net.fc.weight.detach().clone())
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[Snapshot()])
    trainer.fit(module, DataLoader(TensorDataset(x, y), batch_size=16))
    (front_1, net_1), (front_2, _) = seen
    assert torch.equal(front_1, start[0]), "the front end moved while frozen"
    assert not torch.equal(net_1, start[1]), "the network did not train in the frozen epoch"
    assert (front_2 - front_1).abs().max() > 1e-4, "the front end did not train after the frozen epoch"


def test_frontend_decay_pulls_the_front_end_towards_its_start():
    """--frontend-decay (L2-SP): the same run, seed and data with the pull moves the Mel filters less from
    where they started than without it, and the penalty is their squared distance from that start."""
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, TensorDataset

    from spotter.training.module import KWSModule

    torch.manual_seed(0)
    x = torch.randn(64, 16000) * torch.rand(64, 1)
    y = torch.randint(0, 12, (64,))
    moved = {}
    for decay in (0.0, 50.0):
        torch.manual_seed(1)
        module = KWSModule(model="linear", trainable_mel=True, optimizer="adam", lr=1e-2, weight_decay=0.0,
                           warmup_epochs=0, augment=False, frontend_decay=decay)
        start = module.model.frontend.mel_log.detach().clone()
        assert float(module.frontend_distance()) == 0.0, "no distance before the fit has a start"
        trainer = pl.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False)
        trainer.fit(module, DataLoader(TensorDataset(x, y), batch_size=16))
        now = module.model.frontend.mel_log.detach()
        moved[decay] = float(((now - start) ** 2).sum())
        assert float(module.frontend_distance().detach()) == pytest.approx(moved[decay], rel=1e-5)
    assert moved[0.0] > 1e-3, "the filters did not train"
    assert moved[50.0] < 0.5 * moved[0.0], f"the pull did not hold the filters near their start: {moved}"


def test_frontend_decay_needs_a_trainable_front_end():
    from spotter.training.options import TrainOptions

    assert TrainOptions.parse(["--frontend-decay", "1", "--trainable-stft"]).hparams()["frontend_decay"] == 1.0
    assert "frontend_decay" not in TrainOptions.parse(["--frontend-decay", "1"]).hparams()
    with pytest.raises(SpotterError, match="--frontend-decay"):
        TrainOptions.parse(["--frontend-decay", "-1", "--trainable-mel"])


@pytest.mark.slow
def test_resume_ends_at_the_same_number_of_epochs(corpus, tmp_path):
    out = tmp_path / "resume"
    _train(corpus, out, "--epochs", "2", "--model", "linear")
    # a second run into the same folder without --resume is refused, not overwritten
    assert train_main(["--data", str(corpus), "--out", str(out), "--epochs", "2", "--no-progress",
                       "--accelerator", "cpu"]) == 2
    _train(corpus, out, "--epochs", "3", "--resume", "--model", "linear")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 3
    epochs_logged = set()
    for csv in (out / "logs").glob("version_*/metrics.csv"):
        header, *rows = csv.read_text().splitlines()
        col = header.split(",").index("epoch")
        epochs_logged |= {int(float(r.split(",")[col])) for r in rows if r.split(",")[col]}
    assert epochs_logged == {0, 1, 2}



@pytest.mark.slow
def test_last_checkpoint_is_written_every_epoch_even_without_improvement(corpus, tmp_path):
    # lr 0: validation accuracy never improves after the first epoch, so no new "best" is saved
    out = tmp_path / "flat"
    _train(corpus, out, "--epochs", "2", "--model", "linear", "--lr", "0")
    last = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["epoch"] == 1 and len(list((out / "checkpoints").glob("best-*.ckpt"))) == 1


@pytest.mark.slow
def test_keep_last_exports_the_last_epoch_not_the_best(corpus, tmp_path):
    # lr 0: the first epoch stays the best by validation accuracy, so "best" and "last" are different epochs
    out = tmp_path / "keep-last"
    _train(corpus, out, "--epochs", "2", "--model", "linear", "--lr", "0", "--keep", "last")
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["kept"], metrics["kept_epoch"], metrics["best_epoch"]) == ("last", 1, 0)
    last = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    exported = load_model(out / "model.pt").state_dict()
    for name, value in exported.items():
        assert torch.equal(value, last[f"model.{name}"]), name


def test_augmentation_settings_reach_the_run_and_bad_ones_are_refused(corpus, tmp_path, capsys):
    out = tmp_path / "aug"
    _train(corpus, out, "--epochs", "1", "--aug", "speed=0.9,1.1", "--aug", "eq_db=6", "--aug", "lowpass_prob=0.2")
    hparams = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)["hyper_parameters"]
    assert hparams["augment_config"] == {"speed": (0.9, 1.1), "eq_db": 6.0, "lowpass_prob": 0.2}
    capsys.readouterr()
    assert train_main(["--data", str(corpus), "--out", str(tmp_path / "bad"), "--aug", "volume=3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--aug: augmentation setting 'volume'" in err
    assert not (tmp_path / "bad").exists()


def test_redraw_unknown_draws_fresh_unknown_clips_every_epoch(corpus):
    from spotter.data.speech_commands import SILENCE_INDEX, UNKNOWN_INDEX
    from spotter.training.module import UnknownRedrawSampler

    once = SpeechCommands(corpus, "train", unknown_fraction=0.15, progress=False)
    pool = SpeechCommands(corpus, "train", unknown_fraction=0.15, progress=False, all_unknown=True)
    assert once.unknown_per_epoch is None
    count = once.class_counts()
    assert pool.unknown_per_epoch == count["unknown"] < pool.class_counts()["unknown"]
    assert pool.class_counts()["silence"] == count["silence"]  # as many silence examples as the single draw
    sampler = UnknownRedrawSampler(pool, seed=0)
    assert len(sampler) == len(once)
    epochs = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        epochs.append(list(sampler))
    labels = np.array([ex.label for ex in pool.examples])
    fixed = set(np.flatnonzero(labels != UNKNOWN_INDEX))
    unknown_sets = []
    for order in epochs:
        assert len(order) == len(set(order)) == len(once)
        assert fixed <= set(order)  # every keyword and silence example, every epoch
        unknown_sets.append({i for i in order if labels[i] == UNKNOWN_INDEX})
        assert len(unknown_sets[-1]) == count["unknown"]
    assert unknown_sets[0] != unknown_sets[1] and len(set().union(*unknown_sets)) > count["unknown"] * 1.5
    sampler.set_epoch(1)
    assert list(sampler) == epochs[1]  # an epoch draws the same again (--resume)
    assert SILENCE_INDEX in labels[list(fixed)]


@pytest.mark.slow
def test_init_starts_from_a_trained_model_and_refuses_another_kind(corpus, tmp_path, capsys):
    first = tmp_path / "first"
    _train(corpus, first, "--model", "linear", "--epochs", "1")
    # lr 0: fine-tuning changes nothing, so the result must be the --init model itself
    tuned = tmp_path / "tuned"
    _train(corpus, tuned, "--model", "linear", "--epochs", "1", "--lr", "0", "--init", str(first / "model.pt"),
           "--redraw-unknown")
    a, b = load_model(first / "model.pt", device="cpu"), load_model(tuned / "model.pt", device="cpu")
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    metrics = json.loads((tuned / "metrics.json").read_text())
    assert metrics["init"] == str(first / "model.pt") and metrics["redraw_unknown"] is True
    once = SpeechCommands(corpus, "train", unknown_fraction=0.1, progress=False)  # the default fraction
    assert metrics["train_clips"] == len(once) < metrics["train_clips"] + metrics["train_unknown_pool"]
    capsys.readouterr()
    assert train_main(["--data", str(corpus), "--model", "bcresnet-1", "--init", str(first / "model.pt"),
                       "--out", str(tmp_path / "other"), "--no-progress", "--accelerator", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not the same kind of model: model linear (this run: bcresnet-1)" in err


def test_init_member_picks_which_member_of_an_ensemble_starts_the_run(tmp_path, capsys):
    # --init-member 2 starts from the second member (how the shipped model's member B is fine-tuned); a member the
    # ensemble does not have, or a member of a single network, is a one-line error.
    from spotter.checkpoint import save_checkpoint
    from spotter.config import FrontendConfig
    from spotter.model import build_model, ensemble
    from spotter.training.run import init_weights

    torch.manual_seed(0)
    members = [build_model("bcresnet-1", frontend=FrontendConfig(normalize="mean")).eval() for _ in range(2)]
    pair = save_checkpoint(ensemble(members), tmp_path / "pair.pt")
    for member, expected in ((1, members[0]), (2, members[1])):
        fresh = build_model("bcresnet-1", frontend=FrontendConfig(normalize="mean"))
        init_weights(fresh, pair, member=member)
        theirs = expected.state_dict()
        assert all(torch.equal(value, theirs[key]) for key, value in fresh.state_dict().items())
    with pytest.raises(SpotterError, match=r"--init-member 3: .*pair.pt has members 1 to 2$"):
        init_weights(build_model("bcresnet-1", frontend=FrontendConfig(normalize="mean")), pair, member=3)
    single = save_checkpoint(members[0], tmp_path / "single.pt")
    with pytest.raises(SpotterError, match="single network, not an ensemble"):
        init_weights(build_model("bcresnet-1", frontend=FrontendConfig(normalize="mean")), single, member=2)
    assert train_main(["--data", str(tmp_path), "--init", str(pair), "--init-member", "0"]) == 2
    assert capsys.readouterr().err.strip() == "spotter: error: --init-member 0: members count from 1"


def test_init_from_a_fixed_front_end_starts_one_that_trains(tmp_path):
    # A trained model with the fixed front end starts a run that trains its Mel filters or STFT kernels (the
    # paired fine-tunes of docs/training.md): the network is copied, the trainable bases start at the fixed ones,
    # so the new model scores audio as the old one did. A trained front end cannot start a fixed one.
    from spotter.checkpoint import save_checkpoint
    from spotter.config import FrontendConfig
    from spotter.model import build_model
    from spotter.training.run import init_weights

    torch.manual_seed(0)
    fixed = build_model("bcresnet-1").eval()
    path = save_checkpoint(fixed, tmp_path / "fixed.pt")
    audio = torch.from_numpy(np.random.default_rng(0).normal(0, 0.1, (2, 16000)).astype(np.float32))
    for mel, stft, param, stft_param in ((True, False, "log", "kernels"), (True, False, "band", "kernels"),
                                         (False, True, "log", "kernels"), (True, True, "log", "kernels"),
                                         (False, True, "log", "window")):
        model = build_model("bcresnet-1", trainable_mel=mel, trainable_stft=stft,
                            frontend=FrontendConfig(mel_param=param, stft_param=stft_param)).eval()
        init_weights(model, path)
        ours = model.state_dict()
        assert all(torch.equal(value, ours[key]) for key, value in fixed.state_dict().items() if key.startswith("net."))
        assert torch.allclose(model.frontend.mel_matrix(), fixed.frontend.mel_matrix(), rtol=1e-5, atol=1e-9)
        with torch.no_grad():
            assert torch.allclose(model(audio), fixed(audio), atol=1e-3)
    trained = build_model("bcresnet-1", trainable_mel=True)
    with torch.no_grad():
        trained.frontend.mel_log.add_(0.1 * torch.randn_like(trained.frontend.mel_log))
    with pytest.raises(SpotterError, match="not the same kind of model: front end"):
        init_weights(build_model("bcresnet-1"), save_checkpoint(trained, tmp_path / "trained.pt"))


def test_eval_under_noise_at_a_stated_snr(corpus, tmp_path, capsys):
    # `spotter eval --snr`: the shipped model on held-out espeak voices, clean and with the corpus' own test-region
    # noise at fixed speech SNRs. Accuracy falls as the SNR falls, the same seed gives the same result.
    from spotter.cli import main as cli_main

    def run(*extra):
        assert cli_main(["eval", "--data", str(corpus), "--split", "test", "--json", *extra]) == 0
        return json.loads(capsys.readouterr().out)

    png = tmp_path / "confusion.png"
    clean, at_20, at_m10, again = run("--plot", str(png)), run("--snr", "20"), run("--snr", "-10"), run("--snr", "-10")
    print(f"accuracy clean {clean['accuracy']:.3f}, 20 dB {at_20['accuracy']:.3f}, -10 dB {at_m10['accuracy']:.3f}")
    # measured: clean 0.988, 20 dB 0.950, -10 dB 0.588
    assert clean["snr_db"] is None and at_20["snr_db"] == 20.0
    assert clean["accuracy"] >= at_20["accuracy"] - 0.05 and at_20["accuracy"] > at_m10["accuracy"] + 0.2
    assert again["confusion"] == at_m10["confusion"] and again["loss"] == at_m10["loss"]
    from spotter.plots import pyplot

    assert clean["plot"] == str(png) and pyplot().imread(str(png)).shape[:2] == (int(6.5 * 120), int(7.5 * 120))

    silent = tmp_path / "no-noise"
    for rel in ("yes", "no"):
        (silent / rel).mkdir(parents=True)
        for wav in sorted((corpus / rel).glob("*.wav"))[:3]:
            (silent / rel / wav.name).write_bytes(wav.read_bytes())
    assert cli_main(["eval", "--data", str(silent), "--split", "all", "--snr", "10"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--snr" in err[0] and "_background_noise_" in err[0], err


def test_ctrl_c_during_a_log_write_waits_for_the_write(tmp_path):
    # A Ctrl-C that lands while Lightning rewrites metrics.csv (a new column) cut its header off and lost the
    # epochs logged so far (found as a flake of the interrupted-training test): the write now finishes first.
    import os
    import signal

    from spotter.training.logs import InterruptSafeCSVLogger, signals_held_back

    done = []
    with pytest.raises(KeyboardInterrupt):
        with signals_held_back():
            os.kill(os.getpid(), signal.SIGINT)
            done.append("after the signal")
    assert done == ["after the signal"] and signal.getsignal(signal.SIGINT) is signal.default_int_handler

    logger = InterruptSafeCSVLogger(tmp_path, name="logs")
    logger.log_metrics({"lr": 0.1}, step=0)
    logger.save()
    logger.log_metrics({"epoch": 0, "val_acc": 0.5}, step=1)  # new columns: the file is rewritten
    write = logger.experiment.save

    def interrupted_write():
        os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C as the rewrite starts
        write()

    logger.experiment.save = interrupted_write
    with pytest.raises(KeyboardInterrupt):
        logger.save()
    header, *rows = (tmp_path / "logs" / "version_0" / "metrics.csv").read_text().splitlines()
    assert header.split(",") == ["epoch", "lr", "step", "val_acc"] and len(rows) == 2
