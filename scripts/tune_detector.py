#!/usr/bin/env python
"""Tune the detector (threshold, smoothing, minimum count, refractory period) on held-out streams.

    python scripts/tune_detector.py --model checkpoints/bcresnet-3-synth.pt \
        data/streams/val20.wav data/streams/valspeech30.wav [--max-fa-per-hour 2]

Each WAV needs its labels CSV beside it (``spotter data stream`` writes both).
The model runs once per stream; every detector setting is then replayed over
the stored posteriors (see spotter/tuning.py).  Prints the best settings.
"""

import argparse
import json

import torch

from spotter.checkpoint import load_model
from spotter.tuning import candidates, describe, grid_search, stream_posteriors


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
    args = p.parse_args()
    torch.set_num_threads(1)
    model = load_model(args.model, device="cpu")
    streams = [stream_posteriors(model, wav) for wav in args.streams]
    configs = candidates(thresholds=(0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97, 0.98, 0.99), smoothing=(1, 2, 3, 5),
                         min_counts=(1, 2, 3), refractory=(1.0,))
    rows = grid_search(streams, model.labels, configs, args.tolerance, args.max_fa_per_hour)
    if args.max_latency is not None:
        rows = [r for r in rows if r["latency_median_s"] is not None and r["latency_median_s"] <= args.max_latency]
    hours = sum(s.duration_s for s in streams) / 3600
    print(f"{len(configs)} settings on {', '.join(s.name for s in streams)} ({hours:.2f} h)")
    print(f"{'recall':>7} {'FA/h':>6} {'latency':>15}  settings")
    for r in rows[: args.top]:
        lat = (f"{r['latency_median_s']:.2f}/{r['latency_mean_s']:.2f} s" if r["latency_mean_s"] is not None
               else "-")
        print(f"{r['recall']:>7.1%} {r['fa_per_hour']:>6.1f} {lat:>15}  {describe(r['config'])}")
    print("latency: median/mean seconds from the end of the keyword to its detection")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{**r, "config": vars(r["config"])} for r in rows], f, indent=1)


if __name__ == "__main__":
    main()
