#!/usr/bin/env python
"""Print the fixed vs trainable front-end table from the runs of scripts/results_table.sh (markdown).

Each row: the mean and spread (sample standard deviation) over the seeds that finished, and the
trainable row minus its fixed row, seed by seed (the same seed gives both the same start, data order
and, with the front end frozen at first, the same first epochs). A paired row (``then-*``: the seed's
fixed run continued with a trainable front end) is compared with ``then-fixed``, the same run continued
with the fixed front end. Differences are on data/flite200 where both runs were scored on it (five
times flite40's takes of the same persons), else on data/flite40; their mean comes with a 95% interval
(Student's t over the seeds): an interval that holds 0 is a difference the seeds do not resolve."""

import json
import statistics
import sys
from pathlib import Path

from scipy import stats

MODELS = ("linear", "bcresnet-1", "bcresnet-3")
# Experiments beside the table (docs/experiments/configs): melmatrix, the raw matrix; melfrozen, the log-domain
# filterbank never unfrozen, stftfrozen the same for STFT kernels (controls: the fixed front end by another numerical
# path); stftdecay, the STFT row pulled towards its start (--frontend-decay, L2-SP).
SCRATCH = ("fixed", "mel", "stft", "both", "melmatrix", "melfrozen", "stftfrozen", "stftdecay")
PAIRED = ("then-fixed", "then-mel", "then-band", "then-stft", "then-both", "then-window")
MEL, STFT, BAND, WINDOW = 40 * 241, 2 * 241 * 480, 2 * 40, 480
PARAMS = {"fixed": 0, "mel": MEL, "stft": STFT, "both": MEL + STFT, "melmatrix": MEL, "melfrozen": 0, "stftfrozen": 0,
          "stftdecay": STFT, "then-fixed": 0, "then-mel": MEL, "then-band": BAND, "then-stft": STFT,
          "then-both": MEL + STFT, "then-window": WINDOW}


def accuracy(path: Path) -> float | None:
    try:
        return json.loads(path.read_text())["accuracy"]
    except (OSError, ValueError, KeyError):
        return None


def scores(run: Path) -> dict | None:
    try:
        m = json.loads((run / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    out = {"held": m["test_accuracy"], "minutes": m["seconds"] / 60}
    for key, name in (("sel", "flite-sel"), ("test", "flite-test"), ("sel200", "flite-200-sel"),
                      ("test200", "flite-200-test")):
        out[key] = accuracy(run / f"{name}.json")
    return out if out["sel"] is not None or out["sel200"] is not None else None


def spread(values: list) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1%} ± {sd:.1%}".replace("%", "", 1)


def minus(run: dict, ref: dict, part: str) -> float | None:
    """Points of accuracy ``run`` has over ``ref`` (the same seed's fixed run) on ``part`` (sel or test)."""
    for key in (part + "200", part):
        if run[key] is not None and ref[key] is not None:
            return (run[key] - ref[key]) * 100
    return None


def differences(values: list) -> str:
    """Per seed, then the mean and its 95% interval: "-0.4 +1.1 +0.0 = +0.2 [-1.6, +2.0]"."""
    per_seed = " ".join("?" if v is None else f"{v:+.1f}" for v in values)
    known = [v for v in values if v is not None]
    if len(known) < 2:
        return per_seed
    mean = statistics.mean(known)
    half = stats.t.ppf(0.975, len(known) - 1) * statistics.stdev(known) / len(known) ** 0.5
    return f"{per_seed} = {mean:+.1f} [{mean - half:+.1f}, {mean + half:+.1f}]"


def main(root: str = "runs") -> None:
    print("| model | front end | trainable params | seeds | held-out voices | flite selection (slt, awb) "
          "| flite test (rms, kal16, kal) | flite200 selection | flite200 test "
          "| selection minus fixed, per seed = mean [95%] | test minus fixed, per seed = mean [95%] | minutes |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for model in MODELS:
        reference = {}
        for fe in SCRATCH + PAIRED:
            runs = {int(p.name.rsplit("-s", 1)[1]): scores(p) for p in Path(root).glob(f"table-{model}-{fe}-s*")
                    if p.is_dir()}
            runs = {seed: s for seed, s in sorted(runs.items()) if s}
            if fe in ("fixed", "then-fixed"):
                reference = runs
            if not runs:
                continue
            sel_diff, diff = ("" if fe in ("fixed", "then-fixed") else
                              differences([minus(runs[s], reference[s], part) for s in runs if s in reference])
                              for part in ("sel", "test"))
            col = {k: [r[k] for r in runs.values()] for k in ("held", "sel", "test", "sel200", "test200", "minutes")}
            print(f"| {model} | {fe} | {PARAMS[fe]:,} | {len(runs)} | {spread(col['held'])} | {spread(col['sel'])} "
                  f"| {spread(col['test'])} | {spread(col['sel200'])} | {spread(col['test200'])} | {sel_diff} | {diff} "
                  f"| {statistics.mean(col['minutes']):.1f} |")


if __name__ == "__main__":
    main(*sys.argv[1:])
