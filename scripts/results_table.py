#!/usr/bin/env python
"""Print the fixed vs trainable front-end table from the runs of scripts/results_table.sh (markdown).

Each row: the mean and spread (sample standard deviation) over the seeds that finished, and the
trainable row minus its fixed row, seed by seed (the same seed gives both the same start, data order
and, with the front end frozen at first, the same first epochs)."""

import json
import statistics
import sys
from pathlib import Path

MODELS = ("linear", "bcresnet-1", "bcresnet-3")
# Experiments beside the table (docs/experiments/configs): melmatrix, the raw matrix; melfrozen, the log-domain
# filterbank never unfrozen, stftfrozen the same for STFT kernels (controls: the fixed front end by another numerical
# path); stftdecay, the STFT row pulled towards its start (--frontend-decay, L2-SP).
FRONTENDS = ("fixed", "mel", "stft", "both", "melmatrix", "melfrozen", "stftfrozen", "stftdecay")
PARAMS = {"fixed": 0, "mel": 40 * 241, "stft": 2 * 241 * 480, "both": 40 * 241 + 2 * 241 * 480, "melmatrix": 40 * 241,
          "melfrozen": 0, "stftfrozen": 0, "stftdecay": 2 * 241 * 480}


def scores(run: Path) -> dict | None:
    try:
        m = json.loads((run / "metrics.json").read_text())
        sel = json.loads((run / "flite-sel.json").read_text())
        test = json.loads((run / "flite-test.json").read_text())
    except (OSError, ValueError):
        return None
    return {"held": m["test_accuracy"], "sel": sel["accuracy"], "test": test["accuracy"], "minutes": m["seconds"] / 60}


def spread(values: list[float]) -> str:
    mean = statistics.mean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.1%} ± {sd:.1%}".replace("%", "", 1) if values else "-"


def main(root: str = "runs") -> None:
    print("| model | front end | trainable params | seeds | held-out voices | flite selection (slt, awb) "
          "| flite test (rms, kal16, kal) | selection minus fixed, per seed | test minus fixed, per seed | minutes |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for model in MODELS:
        fixed = {}
        for fe in FRONTENDS:
            runs = {int(p.name.rsplit("-s", 1)[1]): scores(p) for p in Path(root).glob(f"table-{model}-{fe}-s*") if p.is_dir()}
            runs = {seed: s for seed, s in sorted(runs.items()) if s}
            if fe == "fixed":
                fixed = runs
            if not runs:
                continue
            diff, sel_diff = ("" if fe == "fixed" else " ".join(f"{(runs[s][k] - fixed[s][k]) * 100:+.1f}"
                                                                 for s in runs if s in fixed) for k in ("test", "sel"))
            col = {k: [r[k] for r in runs.values()] for k in ("held", "sel", "test", "minutes")}
            print(f"| {model} | {fe} | {PARAMS[fe]:,} | {len(runs)} | {spread(col['held'])} | {spread(col['sel'])} "
                  f"| {spread(col['test'])} | {sel_diff} | {diff} | {statistics.mean(col['minutes']):.1f} |")


if __name__ == "__main__":
    main(*sys.argv[1:])
