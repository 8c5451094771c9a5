"""The ``spotter`` command line: argument parsing and dispatch, nothing else.

Each subcommand is a small function that parses nothing itself and imports
its heavy modules lazily, so ``spotter --help`` is quick and commands that do
not touch audio work on a machine without PortAudio.  Errors meant for the
user (:class:`spotter.errors.SpotterError`) are printed as one line, with a
non-zero exit status, never as a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Sequence

from . import __version__
from .errors import SpotterError

Handler = Callable[[argparse.Namespace], int]


def _cmd_models(args: argparse.Namespace) -> int:
    from .checkpoint import available_models
    from .model import MODELS, PAPER_PARAMS, build_model, count_parameters

    rows = []
    for name in MODELS:
        model = build_model(name)
        rows.append({
            "model": name,
            "params": count_parameters(model.net),
            "paper_params": PAPER_PARAMS.get(name),
            "frontend_trainable_params": count_parameters(build_model(name, True, True).frontend),
        })
    if args.json:
        print(json.dumps({"architectures": rows, "checkpoints": available_models()}))
        return 0
    print(f"{'architecture':<14}{'parameters':>12}{'paper':>10}{'+ trainable front end':>24}")
    for r in rows:
        paper = f"{r['paper_params']:,}" if r["paper_params"] else "-"
        print(f"{r['model']:<14}{r['params']:>12,}{paper:>10}{r['frontend_trainable_params']:>+24,}")
    print("\ncheckpoints: " + (", ".join(available_models()) or "none"))
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from .checkpoint import read_checkpoint, resolve, model_from_checkpoint
    from .model import count_parameters

    path = resolve(args.checkpoint)
    ckpt = read_checkpoint(path)
    model = model_from_checkpoint(ckpt, source=f"checkpoint {path}")
    info = {
        "file": str(path),
        "model": ckpt["model"],
        "labels": list(ckpt["labels"]),
        "frontend": ckpt["frontend"],
        "params": count_parameters(model),
        "meta": ckpt.get("meta", {}),
    }
    if args.json:
        print(json.dumps(info, default=str))
        return 0
    print(f"file:      {info['file']}")
    print(f"model:     {info['model']} ({info['params']:,} trainable parameters)")
    print(f"labels:    {' '.join(info['labels'])}")
    fe = info["frontend"]
    print(f"front end: {fe['n_mels']} Mel bins, {fe['win_length']}-sample window, {fe['hop_length']}-sample hop, "
          f"{fe['sample_rate']} Hz; trainable mel={fe['trainable_mel']} stft={fe['trainable_stft']}")
    for key, value in info["meta"].items():
        print(f"{key + ':':<11}{value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spotter",
        description="Real-time keyword spotter: an nnAudio log-Mel front end and a BC-ResNet classifier "
        "for the 12 Speech Commands classes.",
    )
    parser.add_argument("--version", action="version", version=f"spotter {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("models", help="list the model architectures and the available checkpoints",
                       description="List the model architectures (with parameter counts beside the BC-ResNet "
                       "paper's) and the checkpoints that `--model NAME` can load.")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("info", help="describe a checkpoint (architecture, labels, front end, metrics)",
                       description="Describe a checkpoint: architecture, labels, front-end settings and the "
                       "training facts stored in it.")
    p.add_argument("checkpoint", nargs="?", default=None,
                   help="checkpoint file or shipped model name (default: the shipped model)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except SpotterError as err:
        print(f"spotter: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("spotter: interrupted", file=sys.stderr)
        return 130
