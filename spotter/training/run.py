"""`spotter train`: the Lightning Trainer and the exported model (the options: :mod:`.options`).

Multi-GPU and multi-node runs go through Lightning's own launcher: pass
``--accelerator gpu --devices 4 --strategy ddp`` (and ``--num-nodes`` with
the usual ``MASTER_ADDR`` / ``NODE_RANK`` environment, or under SLURM).

Output folder (``--out``)::

    config.yaml                                       every option of the run (`spotter train --config` reads it)
    checkpoints/best-*.ckpt, checkpoints/last.ckpt   Lightning checkpoints (readable by spotter too)
    logs/version_*/metrics.csv                        per-epoch loss / accuracy (TensorBoard too if installed)
    model.pt                                          the best (--keep last: the last) epoch as a spotter
                                                      checkpoint, with its options and metrics
    metrics.json                                      the same options, validation and test figures of model.pt
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from ..config import labels_for
from ..errors import Interrupted, SpotterError
from .options import TrainOptions, add_arguments, parse_with_config  # noqa: F401 - spotter.cli imports these from here


def resolve_data(data: str, data_dir: str | None, progress: bool = True) -> Path:
    if data == "gsc":
        from ..data.download import fetch_speech_commands

        return Path(fetch_speech_commands(data_dir, progress=progress))
    root = Path(data).expanduser()
    if not root.is_dir():
        raise SpotterError(f"--data {data}: no such folder; give 'gsc' or a folder in Speech Commands layout "
                           "(make one with `spotter data synth --out DIR`)")
    return root


def _devices(value):
    if isinstance(value, int) or value == "auto":
        return value
    text = str(value)
    if "," in text:
        return [int(v) for v in text.split(",") if v.strip()]
    return int(text) if text.lstrip("-").isdigit() else text


def run_train(args: argparse.Namespace | TrainOptions) -> dict:
    """Train as ``args`` (a parsed command line or :class:`TrainOptions`) says; returns the run's summary."""
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint

    from ..checkpoint import save_checkpoint
    from ..evaluation.clips import evaluate
    from .augment import parse_overrides
    from .logs import InterruptSafeCSVLogger
    from .module import KWSDataModule, KWSModule, default_hparams

    opts = args if isinstance(args, TrainOptions) else TrainOptions.from_namespace(args)
    try:
        augment_config = parse_overrides(opts.aug)
    except ValueError as err:
        raise SpotterError(f"--aug: {err}") from None
    progress = not opts.no_progress
    root = resolve_data(opts.data, opts.data_dir, progress)
    out = Path(opts.out or f"runs/{opts.model}")
    last = out / "checkpoints" / "last.ckpt"
    if opts.resume and not last.is_file():
        raise SpotterError(f"--resume: no {last} to resume from (was the first run's --out the same?)")
    if not opts.resume and last.is_file():
        raise SpotterError(f"{out} already holds a run: add --resume to continue it, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)

    pl.seed_everything(opts.seed, workers=True, verbose=False)
    hp = {**default_hparams(opts.model), **opts.hparams()}
    if opts.no_augment:
        hp["augment"] = False
    hp["augment_config"] = augment_config
    keywords = opts.keyword_set()
    missing = [k for k in keywords if not (root / k).is_dir()]
    if opts.keywords and missing:
        raise SpotterError(f"--keywords: no folder {root / missing[0]}; --data needs a folder of clips for every keyword")
    hp["labels"] = labels_for(keywords)
    module = KWSModule(**hp)
    if opts.init and not opts.resume:
        init_weights(module.model, opts.init, member=opts.init_member)
    if opts.teacher:
        set_teacher(module, opts.teacher)
    data = KWSDataModule(root, batch_size=opts.batch_size, workers=opts.workers, seed=opts.seed,
                         preload=not opts.no_preload, silence_fraction=opts.silence_fraction,
                         unknown_fraction=opts.unknown_fraction, redraw_unknown=opts.redraw_unknown,
                         progress=progress, keywords=keywords, clip_samples=module.model.frontend.config.window_samples)

    loggers = [InterruptSafeCSVLogger(out, name="logs")]
    try:
        from pytorch_lightning.loggers import TensorBoardLogger
        import tensorboard  # noqa: F401

        loggers.append(TensorBoardLogger(out, name="tensorboard"))
    except ImportError:
        pass
    best = ModelCheckpoint(dirpath=out / "checkpoints", filename="best-{epoch:03d}-{val_acc:.4f}",
                           monitor="val_acc", mode="max", save_top_k=1)
    # Lightning 2.6's save_last writes last.ckpt only in epochs that also save a best one; --resume
    # needs every epoch, so last.ckpt has its own callback.
    last_every_epoch = ModelCheckpoint(dirpath=out / "checkpoints", filename="last", save_top_k=1,
                                       every_n_epochs=1, enable_version_counter=False)
    trainer = pl.Trainer(
        max_epochs=opts.epochs, accelerator=opts.accelerator, devices=_devices(opts.devices),
        num_nodes=opts.num_nodes, strategy=opts.strategy, precision=opts.precision, logger=loggers,
        callbacks=[best, last_every_epoch, LearningRateMonitor("epoch"), _save_options(opts, out / "config.yaml")],
        enable_progress_bar=progress, log_every_n_steps=1, enable_model_summary=progress, deterministic=False,
    )
    train, clips = data.dataset("train"), _train_sizes(data.dataset("train"))["train_clips"]
    if clips < opts.batch_size < len(train):  # full batches only (drop_last), and not one of them
        raise SpotterError(f"--data {root}: {clips} training clips an epoch, fewer than one batch (--batch-size "
                           f"{opts.batch_size}); use a smaller --batch-size or more data")
    started = time.time()
    try:
        trainer.fit(module, datamodule=data, ckpt_path=str(last) if opts.resume else None)
    except SystemExit:  # Lightning turns Ctrl-C into sys.exit(1) after its own clean-up
        if not trainer.interrupted:
            raise
        raise _interrupted(last, opts.epochs) from None
    seconds = time.time() - started
    if not trainer.is_global_zero:
        return {}

    best_path = best.best_model_path or str(last)
    kept_path = str(last) if opts.keep == "last" else best_path
    state = torch.load(kept_path, map_location="cpu", weights_only=True)
    kept_epoch = int(state.get("epoch", -1))
    module.load_state_dict(state["state_dict"])
    model = module.model.cpu().eval()
    device = "cuda" if torch.cuda.is_available() and opts.accelerator in ("auto", "gpu", "cuda") else "cpu"
    results = {split: evaluate(model, data.dataset(split), device, progress=progress) for split in ("val", "test")}
    model.cpu()
    summary = {
        **opts.summary(resolved=hp), "data": str(root), "epochs": int(trainer.current_epoch),
        "kept_epoch": kept_epoch, "best_epoch": kept_epoch if kept_path == best_path else _epoch_of(best_path),
        **_train_sizes(data.dataset("train")),
        "augment": bool(hp["augment"]), "augment_config": {k: list(v) if isinstance(v, tuple) else v
                                                           for k, v in augment_config.items()},
        "seconds": round(seconds, 1),
        **{f"{split}_{key}": results[split][key] for split in results for key in ("accuracy", "f1_macro", "loss", "n")},
    }
    save_checkpoint(model, out / "model.pt", meta=summary)
    (out / "metrics.json").write_text(json.dumps({**summary, "val": results["val"], "test": results["test"]}, indent=1))
    print(f"\n{opts.keep} epoch {summary['kept_epoch']}: val accuracy {summary['val_accuracy']:.2%}, "
          f"test accuracy {summary['test_accuracy']:.2%}, test macro F1 {summary['test_f1_macro']:.4f}")
    print(f"model: {out / 'model.pt'}   options: {out / 'config.yaml'}   logs: {loggers[0].log_dir}")
    return summary


def _save_options(opts: TrainOptions, path: Path):
    """A Lightning callback writing ``opts`` to ``path`` as YAML once the run is set up (global rank 0 only),
    as LightningCLI's SaveConfigCallback does."""
    import pytorch_lightning as pl

    class SaveOptions(pl.Callback):
        def setup(self, trainer, pl_module, stage: str) -> None:
            if trainer.is_global_zero:
                path.write_text(opts.to_yaml())

    return SaveOptions()


def _train_sizes(train) -> dict:
    """Clips an epoch trains on; with --redraw-unknown also the unknown clips it draws from."""
    if train.unknown_per_epoch is None:
        return {"train_clips": len(train)}
    pool = train.class_counts()["unknown"]
    return {"train_clips": len(train) - pool + train.unknown_per_epoch, "train_unknown_pool": pool}


def init_weights(model, checkpoint, member: int = 1) -> None:
    """Copy a trained model's weights into ``model``; a one-line error unless they are the same kind of model.

    A model of another window length is the same kind when its parameters have the same shapes (any
    BC-ResNet). A model of other labels (custom keywords) is the same kind: every layer but the output layer is
    copied, and of the output layer the rows of the labels both have (``unknown``, ``silence``, shared
    keywords); the new keywords' rows keep their fresh initialisation. An ensemble's weights start a single
    network of its members' architecture: member ``member`` (1 = the first, the shipped model's member A).
    A model with a fixed front end can start one that trains its Mel filterbank or STFT kernels: the network
    is copied and the trainable bases start where the fixed ones are."""
    import torch

    from ..checkpoint import load_model
    from ..features import SHAPE_PARAMETERS
    from ..model import EnsembleNet, KeywordModel, member_names, output_layers

    source = load_model(checkpoint, device="cpu")
    if isinstance(source.net, EnsembleNet) and not isinstance(model.net, EnsembleNet):
        if not 1 <= member <= len(source.net.members):
            raise SpotterError(f"--init-member {member}: {checkpoint} has members 1 to {len(source.net.members)}")
        source = KeywordModel(member_names(source.name)[member - 1], source.net.members[member - 1],
                              source.frontend, source.labels)
    elif member != 1:
        raise SpotterError(f"--init-member {member}: {checkpoint} is a single network, not an ensemble; "
                           "leave out --init-member")

    # A fixed front end may start a run that trains it: its bases are where a trainable front end starts.
    trains = ("trainable_mel", "trainable_stft", "mel_param", "stft_param")
    made_trainable = not (source.frontend.config.trainable_mel or source.frontend.config.trainable_stft)

    def frontend(m) -> dict:  # a BC-ResNet's weights fit any window length (a linear model's shapes do not)
        skip = ("window_samples",) + (trains if made_trainable else ())
        return {k: v for k, v in m.frontend.config.to_dict().items() if k not in skip}

    differences = [f"{what} {theirs} (this run: {ours})" for what, theirs, ours in (
        ("model", source.name, model.name),
        ("front end", frontend(source), frontend(model)),
    ) if theirs != ours]
    theirs, ours = source.state_dict(), model.state_dict()
    if made_trainable:  # shape parameters (SHAPE_PARAMETERS) start where they give the fixed front end
        shape = {f"frontend.{name}" for name in SHAPE_PARAMETERS}
        theirs = {**theirs, **{key: value for key, value in ours.items() if key in shape}}
    outputs = {f"net.{name}.{p}" for name in output_layers(model.net) for p in ("weight", "bias")}
    if not differences and (theirs.keys() != ours.keys()
                            or any(theirs[k].shape != ours[k].shape for k in ours if k not in outputs)
                            or any(theirs[k].shape[1:] != ours[k].shape[1:] for k in outputs & ours.keys())):
        differences.append("parameters of other names or shapes (trainable Mel/STFT differ?)")
    if differences:
        raise SpotterError(f"--init {checkpoint}: not the same kind of model: {differences[0]}")
    rows = [(i, source.labels.index(label)) for i, label in enumerate(model.labels) if label in source.labels]
    state = dict(theirs)
    for key in outputs & ours.keys():
        fresh = ours[key].clone()
        for i, j in rows:
            fresh[i] = theirs[key][j]
        state[key] = fresh
    with torch.no_grad():
        model.load_state_dict(state)


def set_teacher(module, checkpoint) -> None:
    """Load ``checkpoint`` as ``module``'s distillation teacher; a one-line error if it cannot teach this run."""
    from ..checkpoint import load_model

    teacher = load_model(checkpoint, device="cpu")
    try:
        module.set_teacher(teacher)
    except ValueError as err:
        raise SpotterError(f"--teacher {checkpoint}: {err}") from None


def _epoch_of(checkpoint_path: str) -> int:
    """The epoch a Lightning checkpoint file was saved at."""
    import torch

    return int(torch.load(checkpoint_path, map_location="cpu", weights_only=True).get("epoch", -1))


def _interrupted(last: Path, epochs: int) -> SpotterError:

    if not last.is_file():
        return Interrupted("training interrupted before its first epoch ended; nothing to resume, run it again")
    try:
        import torch

        done = int(torch.load(last, map_location="cpu", weights_only=True).get("epoch", -1)) + 1
    except Exception:  # noqa: BLE001 - the hint below does not depend on it
        done = None
    so_far = f"{done} of {epochs} epochs are" if done is not None else "the last finished epoch is"
    return Interrupted(f"training interrupted; {so_far} saved in {last}: run the same command with --resume "
                       f"to finish the {epochs} epochs")


def main(argv=None) -> int:
    from ..errors import one_line_warnings

    parser = argparse.ArgumentParser(prog="spotter train", description="Train a keyword-spotting model.")
    add_arguments(parser)
    one_line_warnings()
    try:
        run_train(parse_with_config(parser, argv))
    except SpotterError as err:
        print(f"spotter: {'' if isinstance(err, Interrupted) else 'error: '}{err}", file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
