#!/usr/bin/env python
"""Tune the detector (threshold, smoothing, minimum count, refractory period) on held-out streams.

    python scripts/tune_detector.py --model checkpoints/bcresnet-3-synth.pt \
        data/streams/val20.wav data/streams/valspeech30.wav [--max-fa-per-hour 2]

Each WAV needs its labels CSV beside it (``spotter data stream`` writes both).
The model runs once per stream; every detector setting is then replayed over
the stored posteriors (see spotter/tuning.py).  Prints the best settings.
``--per-keyword`` then gives each keyword its own threshold (for every smoothing
/ minimum count) within the same false-alarm budget; ``--save`` writes the best
row into the checkpoint, where ``spotter listen`` and ``eval-stream`` find it.
"""

import argparse
import json
import pickle
from pathlib import Path

import torch

from spotter.checkpoint import load_model, read_checkpoint, resolve, save_checkpoint
from spotter.device import DEVICE_TYPES, select_device
from spotter.detector import SCORES, DetectorConfig
from spotter.tuning import candidates, grid_search, keyword_thresholds, stream_posteriors


# The global settings searched: 2 scores x 15 thresholds x 5 smoothing windows x 3 minimum counts = 450.
SCORE_GRID = SCORES
THRESHOLD_GRID = (0.5, 0.6, 0.7, 0.8, 0.85, 0.88, 0.9, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99)
SMOOTHING_GRID = (1, 2, 3, 4, 5)
MIN_COUNT_GRID = (1, 2, 3)
KEYWORD_GRID = (0.7, 0.75, 0.8, 0.85, 0.88, 0.9, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99, 0.995)


def _posteriors(model, name, wav, folder, batched):
    """The model's posteriors of one stream, cached in ``folder`` when given (keyed by model file and stream)."""
    if not folder:
        return stream_posteriors(model, wav, batched=batched)
    key = str(Path(name).with_suffix("")).replace("/", "_") if name else "shipped"
    path = Path(folder) / f"{key}-{Path(wav).stem}.pkl"
    if path.is_file() and path.stat().st_mtime > Path(wav).stat().st_mtime:
        with open(path, "rb") as f:
            return pickle.load(f)
    path.parent.mkdir(parents=True, exist_ok=True)
    result = stream_posteriors(model, wav, batched=batched)
    with open(path, "wb") as f:
        pickle.dump(result, f)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("streams", nargs="+", help="WAV files made by `spotter data stream` (labels CSV beside each)")
    p.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    p.add_argument("--max-fa-per-hour", type=float, default=2.0)
    p.add_argument("--max-latency", type=float, default=None,
                   help="only settings whose median detection latency (s after the word's end) is at most this")
    p.add_argument("--tolerance", type=float, default=0.75)
    p.add_argument("--top", type=int, default=12, help="rows to print")
    p.add_argument("--json", help="also write all rows to this JSON file")
    p.add_argument("--per-keyword", action="store_true",
                   help="then give each keyword its own threshold (same smoothing and count as the best row), "
                        "the most hits within the false-alarm budget")
    p.add_argument("--margin-steps", type=int, default=2,
                   help="with --per-keyword: a threshold is charged the false alarms of the one this many grid "
                        "steps lower (default: 2), so thresholds do not sit on the edge of the validation speech")
    p.add_argument("--save", action="store_true",
                   help="write the best settings into the model's checkpoint (meta 'detector'), which listen and "
                        "eval-stream then use by default")
    p.add_argument("--engine", action="store_true",
                   help="score the streams through the streaming engine (as listen does) instead of in batches "
                        "(the same posteriors, several times slower)")
    p.add_argument("--posteriors", metavar="DIR",
                   help="keep each stream's posteriors in DIR (<model>-<stream>.pkl) and reuse them next time")
    p.add_argument("--device-type", choices=DEVICE_TYPES, default="cpu",
                   help="where the batched scoring runs (default: cpu; cuda scores hours of audio in seconds)")
    args = p.parse_args()
    torch.set_num_threads(1)
    model = load_model(args.model, device=select_device(args.device_type))
    streams = [_posteriors(model, args.model, wav, args.posteriors, not args.engine) for wav in args.streams]
    configs = candidates(thresholds=THRESHOLD_GRID, smoothing=SMOOTHING_GRID, min_counts=MIN_COUNT_GRID,
                         refractory=(1.0,), scores=SCORE_GRID)
    rows = grid_search(streams, model.labels, configs, args.tolerance, args.max_fa_per_hour)
    if args.max_latency is not None:
        rows = [r for r in rows if r["latency_median_s"] is not None and r["latency_median_s"] <= args.max_latency]
    hours = sum(s.duration_s for s in streams) / 3600
    print(f"{len(configs)} settings on {', '.join(s.name for s in streams)} ({hours:.2f} h)")
    print(f"{'recall':>7} {'FA/h':>6} {'wrong':>5} {'latency':>15}  settings")
    for r in rows[: args.top]:
        lat = (f"{r['latency_median_s']:.2f}/{r['latency_mean_s']:.2f} s" if r["latency_mean_s"] is not None
               else "-")
        print(f"{r['recall']:>7.1%} {r['fa_per_hour']:>6.1f} {r['wrong']:>5} {lat:>15}  {r['config'].describe()}")
    print("wrong: keywords detected as another keyword; "
          "latency: median/mean seconds from the end of the keyword to its detection")
    if args.per_keyword:
        tuned_rows = []
        for score, smoothing, min_count in sorted({(c.score, c.smoothing_hops, c.min_count) for c in configs}):
            base = DetectorConfig(smoothing_hops=smoothing, min_count=min_count, refractory_s=1.0, score=score)
            tuned = keyword_thresholds(streams, model.labels, base, grid=KEYWORD_GRID, tolerance_s=args.tolerance,
                                       max_fa_per_hour=args.max_fa_per_hour, margin_steps=args.margin_steps)
            row = grid_search(streams, model.labels, [tuned], args.tolerance, args.max_fa_per_hour)[0]
            if args.max_latency is None or (row["latency_median_s"] or 1e9) <= args.max_latency:
                tuned_rows.append(row)
        tuned_rows.sort(key=lambda r: (-(r["recall"] or 0), r["fa_per_hour"], r["latency_median_s"] or 0))
        print("per-keyword thresholds, each smoothing / min count:")
        for r in tuned_rows[: max(1, args.top // 3)]:
            print(f"{r['recall']:>7.1%} {r['fa_per_hour']:>6.1f} {r['wrong']:>5} {r['latency_median_s']:>9.2f} s  "
                  f"{r['config'].describe()}")
        rows = tuned_rows + rows
    if args.save and rows:
        best = rows[0]["config"]
        ckpt = read_checkpoint(resolve(args.model))
        save_checkpoint(model, resolve(args.model), meta={**ckpt.get("meta", {}), "detector": best.to_meta()})
        print(f"saved to {resolve(args.model)}: {best.describe()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{**r, "config": vars(r["config"])} for r in rows], f, indent=1)


if __name__ == "__main__":
    main()
