"""`spotter train` / `python train/train.py`: options, the Lightning Trainer, and the exported model.

Multi-GPU and multi-node runs go through Lightning's own launcher: pass
``--accelerator gpu --devices 4 --strategy ddp`` (and ``--num-nodes`` with
the usual ``MASTER_ADDR`` / ``NODE_RANK`` environment, or under SLURM).

Output folder (``--out``)::

    checkpoints/best-*.ckpt, checkpoints/last.ckpt   Lightning checkpoints (readable by spotter too)
    logs/version_*/metrics.csv                        per-epoch loss / accuracy (TensorBoard too if installed)
    model.pt                                          the best (--keep last: the last) epoch as a spotter
                                                      checkpoint, with its metrics
    metrics.json                                      validation and test figures of model.pt
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from ..errors import Interrupted, SpotterError

CONFIG_DIR = Path(__file__).resolve().parents[2] / "train" / "configs"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..config import NORMALIZATIONS
    from ..model import MODELS

    p.add_argument("--config", metavar="YAML", help="a YAML file of option defaults (see train/configs/); "
                   "flags on the command line win")
    g = p.add_argument_group("model")
    g.add_argument("--model", default="bcresnet-1", choices=list(MODELS), help="architecture (default: bcresnet-1)")
    g.add_argument("--trainable-mel", action="store_true", help="train the Mel filterbank (nnAudio trainable_mel)")
    g.add_argument("--trainable-stft", action="store_true", help="train the STFT kernels (nnAudio trainable_STFT)")
    g.add_argument("--normalize", choices=NORMALIZATIONS, default="none",
                   help="per-window normalisation of the log-Mel image: 'mean' subtracts each Mel bin's mean over "
                        "the 1 s window (level and fixed spectral tilt drop out; default: none)")
    g = p.add_argument_group("data")
    g.add_argument("--data", default="gsc", help="'gsc' (Google Speech Commands v2, downloaded once) or a folder "
                   "in its layout, e.g. one made by `spotter data synth` (default: gsc)")
    g.add_argument("--data-dir", default=None, help="cache folder for the downloaded dataset "
                   "(default: $SPOTTER_DATA_DIR, else $XDG_CACHE_HOME/spotter or ~/.cache/spotter)")
    g.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default: 0)")
    g.add_argument("--unknown-fraction", type=float, default=0.1,
                   help="share of 'unknown' clips in each split (default: 0.1, the 12-class protocol)")
    g.add_argument("--silence-fraction", type=float, default=0.1,
                   help="share of 'silence' clips in each split (default: 0.1, the 12-class protocol)")
    g.add_argument("--redraw-unknown", action="store_true",
                   help="draw the epoch's unknown clips afresh from all of them every epoch (default: one draw "
                   "for the whole run, as Speech Commands' protocol does); same epoch size, more negatives seen")
    g.add_argument("--no-preload", action="store_true", help="read clips from disk every epoch instead of "
                   "loading them into memory once (for corpora larger than RAM)")
    g = p.add_argument_group("optimisation (defaults: the BC-ResNet recipe; Adam for linear)")
    g.add_argument("--epochs", type=int, default=30, help="training epochs (default: 30)")
    g.add_argument("--batch-size", type=int, default=128, help="clips per batch (default: 128)")
    g.add_argument("--lr", type=float, default=None, help="peak learning rate (default: 0.1 SGD; 1e-3 Adam)")
    g.add_argument("--frontend-lr", type=float, default=None,
                   help="learning rate of the trainable front end (default: 1e-3; 1e-4 with Adam)")
    g.add_argument("--optimizer", choices=("sgd", "adam"), default=None, help="default: sgd (adam for linear)")
    g.add_argument("--weight-decay", type=float, default=None, help="default: 1e-3 (0 for linear)")
    g.add_argument("--warmup-epochs", type=float, default=None, help="linear warm-up (default: 5, at most a quarter of the run)")
    g.add_argument("--no-augment", action="store_true", help="no time shift / noise / gain / SpecAugment")
    g.add_argument("--aug", action="append", metavar="KEY=VALUE", default=None,
                   help="change one augmentation setting, e.g. --aug speed=0.85,1.15 --aug eq_db=6 "
                        "--aug lowpass_prob=0.15 (keys: spotter.training.augment.AugmentConfig); repeatable")
    g.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    g.add_argument("--init", metavar="CKPT", default=None,
                   help="start from this model's weights (fine-tuning; same architecture, labels and front end) "
                   "instead of random ones; the schedule runs from its start")
    g.add_argument("--teacher", metavar="CKPT", default=None,
                   help="distil this trained model (an ensemble, say) into the one being trained: the loss mixes "
                        "cross-entropy on the labels with the teacher's softened class probabilities on the same "
                        "augmented clips (same labels needed)")
    g.add_argument("--distill-weight", type=float, default=0.5,
                   help="share of the distillation term in the loss, 0..1 (default: 0.5; used with --teacher)")
    g.add_argument("--distill-temperature", type=float, default=2.0,
                   help="softmax temperature of teacher and student in the distillation term (default: 2)")
    g = p.add_argument_group("hardware (passed to the Lightning Trainer)")
    g.add_argument("--accelerator", default="auto", help="auto, cpu, gpu, ... (default: auto)")
    g.add_argument("--devices", default="auto", help="number of devices or a list (default: auto)")
    g.add_argument("--num-nodes", type=int, default=1, help="machines for multi-node DDP (default: 1)")
    g.add_argument("--strategy", default="auto", help="auto, ddp, ddp_spawn, fsdp, ... (default: auto)")
    g.add_argument("--precision", default="32-true", help="e.g. 16-mixed on GPUs (default: 32-true)")
    g = p.add_argument_group("output")
    g.add_argument("--out", default=None, help="output folder (default: runs/<model>)")
    g.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.ckpt; "
                   "the run ends at the same total number of epochs")
    g.add_argument("--keep", choices=("best", "last"), default="best",
                   help="which epoch model.pt holds: the best by validation accuracy (default) or the last; "
                        "for fine-tuning, where the validation split shares the training voices' engines and an "
                        "epoch at a high learning rate can score best on it, the end of the schedule")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")


def parse_with_config(parser: argparse.ArgumentParser, argv) -> argparse.Namespace:
    """Parse ``argv``; a ``--config`` YAML supplies defaults that explicit flags override."""
    args = parser.parse_args(argv)
    if getattr(args, "config", None):
        import yaml

        path = Path(args.config)
        if not path.is_file() and (CONFIG_DIR / path).is_file():
            path = CONFIG_DIR / path
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise SpotterError(f"--config {args.config}: cannot read it ({err})") from None
        known = {a.dest for a in parser._actions}
        unknown = [k for k in values if k.replace("-", "_") not in known]
        if unknown:
            raise SpotterError(f"--config {path}: unknown option(s) {', '.join(unknown)}")
        if isinstance(values.get("aug"), dict):  # aug: {speed: [0.85, 1.15]} -> what --aug would give
            values["aug"] = [f"{k}={','.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"
                             for k, v in values["aug"].items()]
        parser.set_defaults(**{k.replace("-", "_"): v for k, v in values.items()})
        args = parser.parse_args(argv)
    return args


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


def run_train(args: argparse.Namespace) -> dict:
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
    from pytorch_lightning.loggers import CSVLogger

    from ..checkpoint import save_checkpoint
    from ..evaluation.clips import evaluate
    from .augment import parse_overrides
    from .module import KWSDataModule, KWSModule, default_hparams

    try:
        augment_config = parse_overrides(args.aug)
    except ValueError as err:
        raise SpotterError(f"--aug: {err}") from None
    progress = not args.no_progress
    root = resolve_data(args.data, args.data_dir, progress)
    out = Path(args.out or f"runs/{args.model}")
    last = out / "checkpoints" / "last.ckpt"
    if args.resume and not last.is_file():
        raise SpotterError(f"--resume: no {last} to resume from (was the first run's --out the same?)")
    if not args.resume and last.is_file():
        raise SpotterError(f"{out} already holds a run: add --resume to continue it, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)

    pl.seed_everything(args.seed, workers=True, verbose=False)
    hp = default_hparams(args.model)
    for key in ("optimizer", "lr", "frontend_lr", "weight_decay", "warmup_epochs"):
        if getattr(args, key) is not None:
            hp[key] = getattr(args, key)
    if args.no_augment:
        hp["augment"] = False
    hp["augment_config"] = augment_config
    if args.teacher:
        if not 0.0 <= args.distill_weight <= 1.0 or args.distill_temperature <= 0:
            raise SpotterError(f"--distill-weight {args.distill_weight} / --distill-temperature "
                               f"{args.distill_temperature}: the weight must be in 0..1 and the temperature above 0")
        hp.update(distill_weight=args.distill_weight, distill_temperature=args.distill_temperature)
    module = KWSModule(model=args.model, trainable_mel=args.trainable_mel, trainable_stft=args.trainable_stft,
                       normalize=args.normalize, **hp)
    if args.init and not args.resume:
        init_weights(module.model, args.init)
    if args.teacher:
        set_teacher(module, args.teacher)
    data = KWSDataModule(root, batch_size=args.batch_size, workers=args.workers, seed=args.seed,
                         preload=not args.no_preload, silence_fraction=args.silence_fraction,
                         unknown_fraction=args.unknown_fraction, redraw_unknown=args.redraw_unknown,
                         progress=progress)

    loggers = [CSVLogger(out, name="logs")]
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
        max_epochs=args.epochs, accelerator=args.accelerator, devices=_devices(args.devices),
        num_nodes=args.num_nodes, strategy=args.strategy, precision=args.precision,
        logger=loggers, callbacks=[best, last_every_epoch, LearningRateMonitor("epoch")], enable_progress_bar=progress,
        log_every_n_steps=1, enable_model_summary=progress, deterministic=False,
    )
    started = time.time()
    try:
        trainer.fit(module, datamodule=data, ckpt_path=str(last) if args.resume else None)
    except SystemExit:  # Lightning turns Ctrl-C into sys.exit(1) after its own clean-up
        if not trainer.interrupted:
            raise
        raise _interrupted(last, args.epochs) from None
    seconds = time.time() - started
    if not trainer.is_global_zero:
        return {}

    best_path = best.best_model_path or str(last)
    kept_path = str(last) if args.keep == "last" else best_path
    state = torch.load(kept_path, map_location="cpu", weights_only=True)
    kept_epoch = int(state.get("epoch", -1))
    module.load_state_dict(state["state_dict"])
    model = module.model.cpu().eval()
    device = "cuda" if torch.cuda.is_available() and args.accelerator in ("auto", "gpu", "cuda") else "cpu"
    results = {split: evaluate(model, data.dataset(split), device, progress=progress) for split in ("val", "test")}
    model.cpu()
    summary = {
        "model": args.model, "trainable_mel": args.trainable_mel, "trainable_stft": args.trainable_stft,
        "normalize": args.normalize,
        "data": str(root), "epochs": int(trainer.current_epoch), "kept": args.keep,
        "kept_epoch": kept_epoch,
        "best_epoch": kept_epoch if kept_path == best_path else _epoch_of(best_path),
        **_train_sizes(data.dataset("train")), "unknown_fraction": args.unknown_fraction,
        "redraw_unknown": bool(args.redraw_unknown), "init": str(args.init) if args.init else None,
        "teacher": str(args.teacher) if args.teacher else None,
        **({"distill_weight": args.distill_weight, "distill_temperature": args.distill_temperature}
           if args.teacher else {}),
        "augment": bool(hp["augment"]), "augment_config": {k: list(v) if isinstance(v, tuple) else v
                                                           for k, v in augment_config.items()},
        "seconds": round(seconds, 1),
        **{f"{split}_{key}": results[split][key] for split in results for key in ("accuracy", "f1_macro", "loss", "n")},
    }
    save_checkpoint(model, out / "model.pt", meta=summary)
    (out / "metrics.json").write_text(json.dumps({**summary, "val": results["val"], "test": results["test"]}, indent=1))
    print(f"\n{args.keep} epoch {summary['kept_epoch']}: val accuracy {summary['val_accuracy']:.2%}, "
          f"test accuracy {summary['test_accuracy']:.2%}, test macro F1 {summary['test_f1_macro']:.4f}")
    print(f"model: {out / 'model.pt'}   logs: {loggers[0].log_dir}")
    return summary


def _train_sizes(train) -> dict:
    """Clips an epoch trains on; with --redraw-unknown also the unknown clips it draws from."""
    if train.unknown_per_epoch is None:
        return {"train_clips": len(train)}
    pool = train.class_counts()["unknown"]
    return {"train_clips": len(train) - pool + train.unknown_per_epoch, "train_unknown_pool": pool}


def init_weights(model, checkpoint) -> None:
    """Copy a trained model's weights into ``model``; a one-line error unless they are the same kind of model."""
    from ..checkpoint import load_model

    source = load_model(checkpoint, device="cpu")
    differences = [f"{what} {theirs} (this run: {ours})" for what, theirs, ours in (
        ("model", source.name, model.name),
        ("labels", ",".join(source.labels), ",".join(model.labels)),
        ("front end", source.frontend.config.to_dict(), model.frontend.config.to_dict()),
    ) if theirs != ours]
    theirs, ours = source.state_dict(), model.state_dict()
    if not differences and (theirs.keys() != ours.keys() or any(theirs[k].shape != ours[k].shape for k in ours)):
        differences.append("parameters of other names or shapes (trainable Mel/STFT differ?)")
    if differences:
        raise SpotterError(f"--init {checkpoint}: not the same kind of model: {differences[0]}")
    model.load_state_dict(theirs)


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

    parser = argparse.ArgumentParser(prog="train.py", description="Train a keyword-spotting model (= spotter train).")
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
