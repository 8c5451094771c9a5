"""`spotter train` options: declared once (TrainOptions), read from flags and YAML alike, saved with the run."""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from spotter.errors import SpotterError
from spotter.training.options import CONFIG_DIR, TrainOptions, add_arguments, parse_with_config, shipped_configs

SHIPPED = sorted(CONFIG_DIR.glob("*.yaml"))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spotter train")
    add_arguments(parser)
    return parser


def _options(*argv) -> TrainOptions:
    return TrainOptions.from_namespace(parse_with_config(_parser(), [str(a) for a in argv]))


def test_the_shipped_configs_are_the_recipe_and_the_table():
    names = {p.name for p in SHIPPED}
    assert {"shipped.yaml", "dita.yaml", "lowsnr.yaml", "lowsnr-dita.yaml", "espeak-ft2.yaml",
            "gsc-bcresnet8.yaml"} <= names
    table = {f"table-{model}-{fe}.yaml" for model in ("linear", "bcresnet-1", "bcresnet-3")
             for fe in ("fixed", "mel", "stft", "both", "then-fixed", "then-mel", "then-band", "then-stft", "then-both",
                       "then-window")}
    assert {n for n in names if n.startswith("table-")} == table  # scripts/results_table.sh's grid, every cell
    assert names == {e.name for e in shipped_configs().iterdir() if e.name.endswith(".yaml")}


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_config_loads_by_path_and_by_name(path):
    by_path = _options("--config", path)
    assert by_path == _options("--config", path.name) == _options("--config", path.stem)
    assert by_path != TrainOptions()  # it sets something
    assert by_path.model in ("linear", "bcresnet-1", "bcresnet-3", "bcresnet-8")


def test_the_shipped_recipe_reads_as_written():
    opts = _options("--config", "shipped.yaml")
    assert (opts.model, opts.normalize, opts.data, opts.epochs, opts.unknown_fraction) == (
        "bcresnet-3", "mean", "data/synth4f", 24, 0.4)
    assert opts.aug == ["speed=0.85,1.15", "eq_db=8", "lowpass_prob=0.15", "snr_db=0,25", "snr_reference=speech"]
    assert opts.lr is None and opts.keep == "best"  # the recipe's learning rate
    assert _options("--config", "espeak-ft2.yaml").keep == "last"


def test_a_yaml_and_the_same_flags_give_the_same_options(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("model: linear\ntrainable-mel: true\nbatch_size: 16\nlr: 1e-3\nwarmup-epochs: 1\n"
                      "devices: 2\nredraw_unknown: yes\naug:\n  speed: [0.9, 1.1]\n  eq_db: 6\nkeep: last\n"
                      "teacher: runs/t/model.pt\ndistill_weight: 0.7\nout: runs/x\n")
    flags = _options("--model", "linear", "--trainable-mel", "--batch-size", "16", "--lr", "1e-3",
                     "--warmup-epochs", "1", "--devices", "2", "--redraw-unknown", "--aug", "speed=0.9,1.1",
                     "--aug", "eq_db=6", "--keep", "last", "--teacher", "runs/t/model.pt", "--distill-weight",
                     "0.7", "--out", "runs/x")
    assert _options("--config", config) == flags
    assert flags.lr == 0.001 and flags.warmup_epochs == 1.0 and flags.devices == "2"


def test_flags_win_over_the_yaml(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("epochs: 5\nmodel: linear\nseed: 3\naug: {eq_db: 6}\n")
    opts = _options("--config", config, "--epochs", "7", "--aug", "eq_db=2")
    assert (opts.epochs, opts.model, opts.seed) == (7, "linear", 3)
    assert opts.aug == ["eq_db=2"]


@pytest.mark.parametrize("text,message", [
    ("epochs: 3\nvolume: 2\nlearning_rate: 0.1\n", "unknown option(s) volume, learning_rate"),
    ("help: true\n", "unknown option(s) help"),
    ("config: other.yaml\n", "unknown option(s) config"),
    ("model: bcresnet-99\n", "--model bcresnet-99: choose from linear, bcresnet-1"),
    ("epochs: 2.5\n", "--epochs 2.5: expected a whole number"),
    ("trainable_mel: 1\n", "--trainable-mel 1: expected true or false"),
    ("- epochs: 3\n", "expected option: value lines"),
    ("epochs: [3\n", "cannot read it"),
    ("teacher: t.pt\ndistill_weight: 1.5\n", "the weight must be in 0..1"),
])
def test_a_bad_yaml_is_a_one_line_error(tmp_path, text, message):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    with pytest.raises(SpotterError) as err:
        _options("--config", config)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_an_unknown_config_name_lists_the_shipped_ones():
    with pytest.raises(SpotterError) as err:
        _options("--config", "nonesuch.yaml")
    assert "no such file, nor a shipped config of that name" in str(err.value) and "shipped.yaml" in str(err.value)


def test_an_unknown_key_is_one_line_from_the_command(tmp_path, capsys):
    from spotter.training.run import main as train_main

    config = tmp_path / "bad.yaml"
    config.write_text("epochs: 3\nvolume: 2\n")
    assert train_main(["--config", str(config), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("spotter: error: --config") and "unknown option(s) volume" in err
    assert not (tmp_path / "run").exists()


def test_each_option_is_declared_once():
    # one flag per field, same defaults; nothing else but --config and --help
    parser = _parser()
    dests = {a.dest: a for a in parser._actions}
    names = [f.name for f in dataclasses.fields(TrainOptions)]
    assert set(dests) == {*names, "config", "help"}
    assert TrainOptions.from_namespace(parser.parse_args([])) == TrainOptions()
    for name in names:
        assert dests[name].option_strings == ["--" + name.replace("_", "-")]
        assert dests[name].help and "{" not in dests[name].help


def test_the_hyperparameters_are_the_modules_and_none_keeps_the_recipe():
    import inspect

    from spotter.training.module import KWSModule, default_hparams

    accepted = set(inspect.signature(KWSModule.__init__).parameters)
    plain = TrainOptions(model="linear", lr=0.01)
    assert plain.hparams() == {"model": "linear", "trainable_mel": False, "trainable_stft": False,
                               "normalize": "none", "window_seconds": 1.0, "lr": 0.01}
    taught = TrainOptions(teacher="t.pt", optimizer="adam")
    assert set(taught.hparams()) - set(plain.hparams()) == {"optimizer", "distill_weight", "distill_temperature"}
    assert set(taught.hparams()) | set(default_hparams("bcresnet-1")) <= accepted
    summary = plain.summary(resolved={**default_hparams("linear"), **plain.hparams()})
    assert summary["lr"] == 0.01 and summary["optimizer"] == "adam" and summary["weight_decay"] == 0.0
    assert summary["kept"] == "best" and "keep" not in summary and "distill_weight" not in summary
    assert not {"out", "resume", "no_progress", "workers", "aug", "accelerator"} & set(summary)


def test_the_saved_yaml_reads_back_to_the_same_options(tmp_path):
    opts = _options("--config", "lowsnr.yaml", "--lr", "0.005", "--aug", "blur_prob=0.1", "--aug",
                    "lowpass_hz=3000,6000", "--aug", "eq_db=3", "--devices", "1", "--resume", "--teacher", "t.pt")
    text = opts.to_yaml()
    saved = tmp_path / "config.yaml"
    saved.write_text(text)
    assert _options("--config", saved) == dataclasses.replace(opts, resume=False)
    assert "resume" not in text and "weight_decay: null  # recipe: 0.001" in text
    assert "aug:\n  speed: [0.85, 1.15]\n  eq_db: 3\n" in text  # a mapping, as in the shipped configs; flags win
    assert opts.aug[1] == "eq_db=3" and len(opts.aug) == 8


def test_without_the_installed_package_the_configs_come_from_the_repository(monkeypatch):
    from spotter.training import options

    monkeypatch.setattr(options, "CONFIG_PACKAGE", "spotter.no_such_package")
    assert shipped_configs() == CONFIG_DIR and _options("--config", "shipped").model == "bcresnet-3"


def test_the_options_module_needs_no_torch():
    code = ("import sys, spotter.training.options, spotter.cli as c; c.build_parser(); "
            "heavy = [m for m in ('torch', 'pytorch_lightning', 'spotter.model') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def _tone_corpus(root, words=("yes", "no", "bed"), per_split=(6, 2, 2)):
    """A Speech Commands folder of tones, one pitch per word, with noise: enough for a run, in a second."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    lists = {"val": [], "test": []}
    for w, word in enumerate(words):
        (root / word).mkdir(parents=True)
        for split, count in zip(("train", "val", "test"), per_split):
            for i in range(count):
                rel = f"{word}/{split}{i:02d}_nohash_0.wav"
                clip = 0.3 * np.sin(2 * np.pi * (300 + 400 * w) * t) + 0.01 * rng.standard_normal(16000)
                sf.write(root / rel, clip.astype(np.float32), 16000)
                if split in lists:
                    lists[split].append(rel)
    (root / "_background_noise_").mkdir()
    sf.write(root / "_background_noise_" / "noise.wav", (0.05 * rng.standard_normal(16000 * 12)).astype(np.float32),
             16000)
    (root / "validation_list.txt").write_text("\n".join(lists["val"]) + "\n")
    (root / "testing_list.txt").write_text("\n".join(lists["test"]) + "\n")
    return root


def test_a_run_saves_its_options_and_records_them(tmp_path):
    from spotter.checkpoint import load_model
    from spotter.training.run import main as train_main

    corpus = _tone_corpus(tmp_path / "corpus")
    out = tmp_path / "run"
    argv = ["--data", str(corpus), "--model", "linear", "--epochs", "1", "--batch-size", "8", "--lr", "0.01",
            "--aug", "eq_db=3", "--accelerator", "cpu", "--out", str(out), "--no-progress", "--keep", "last"]
    assert train_main(argv) == 0
    assert _options("--config", out / "config.yaml") == _options(*argv)
    metrics = json.loads((out / "metrics.json").read_text())
    for key, value in {"model": "linear", "lr": 0.01, "optimizer": "adam", "batch_size": 8, "kept": "last",
                       "data": str(corpus), "epochs": 1, "augment_config": {"eq_db": 3.0}}.items():
        assert metrics[key] == value, key
    assert load_model(out / "model.pt", device="cpu").meta["lr"] == 0.01
