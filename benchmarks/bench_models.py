"""Models: parameters, MACs, single-window latency and batch throughput of every architecture.

For ``linear`` and every BC-ResNet width: trainable parameters of the network,
multiply-accumulates of the network and of the front end for one 1 s window
(counted with ``torch.utils.flop_counter.FlopCounterMode``: MACs = FLOPs / 2),
the latency of one window at batch 1 (front end + network, as ``spotter
listen`` scores a window that was never seen; median and p99) and the
throughput of batches of 64 clips, on CPU with torch threads 1 and every core,
and on the GPU when present.  Then, for the shipped architecture, eager vs
TorchScript (``torch.jit.trace`` + ``freeze``) vs ``torch.compile``.

    python benchmarks/bench_models.py [--quick] [--device auto|cpu|cuda] [--no-compile]
"""

from __future__ import annotations

import time
import warnings

# common.py, beside this script, also puts the checkout on sys.path
from common import (cuda_sync, devices, machine, machine_line, measure, parser, quiet_warnings, set_threads,
                    table, thread_counts, write_json)

import torch
from torch.utils.flop_counter import FlopCounterMode

BATCH = 64
HOP_MS = 100.0


def macs(fn, *args) -> int:
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        fn(*args)
    return counter.get_total_flops() // 2


def shipped_architecture() -> str:
    from spotter.checkpoint import read_checkpoint, resolve

    try:
        return read_checkpoint(resolve(None))["model"]
    except Exception:  # noqa: BLE001 - no shipped checkpoint: fall back to the documented one
        return "bcresnet-3"


def waveforms(batch: int, device: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (0.1 * torch.randn(batch, 16000, generator=g)).to(device)


def variants(model, x, quick: bool, compile_: bool) -> dict:
    """name -> callable or an error string."""
    out = {"eager": model}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with torch.inference_mode():
                out["torchscript (trace+freeze)"] = torch.jit.freeze(torch.jit.trace(model, x).eval())
    except Exception as err:  # noqa: BLE001
        out["torchscript (trace+freeze)"] = f"failed: {str(err).splitlines()[0][:80]}"
    if compile_ and not quick:
        try:
            compiled = torch.compile(model)
            started = time.perf_counter()
            with torch.inference_mode():
                compiled(x)
            out["torch.compile"] = compiled
            out["_compile_s"] = time.perf_counter() - started
        except Exception as err:  # noqa: BLE001 - e.g. no C++ compiler for inductor
            out["torch.compile"] = f"failed: {str(err).splitlines()[0][:80]}"
    else:
        out["torch.compile"] = "skipped (--quick or --no-compile)"
    return out


def main(argv=None) -> dict:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile (about 40 s of compiling on 2 cores)")
    args = p.parse_args(argv)
    quiet_warnings()
    from spotter.model import MODELS, build_model, count_parameters

    info = machine()
    shipped = shipped_architecture()
    names = list(MODELS)
    if args.quick:
        names = ["linear", "bcresnet-1", shipped, "bcresnet-8"]
        names = list(dict.fromkeys(names))
    one_iters, one_secs = (30, 0.6) if args.quick else (200, 2.0)
    batch_iters, batch_secs = (2, 1.0) if args.quick else (4, 3.0)
    results, rows = [], []
    for device in devices(args.device):
        sync = cuda_sync(device)
        x1, xb = waveforms(1, device), waveforms(BATCH, device)
        for name in names:
            model = build_model(name).to(device).eval()
            with torch.inference_mode():
                feats = model.frontend(x1)
            r = {"model": name, "device": device, "params": count_parameters(model.net),
                 "macs": macs(model.classify, feats), "frontend_macs": macs(model.frontend, x1),
                 "shipped": name == shipped}
            for threads in (thread_counts() if device == "cpu" else [thread_counts()[-1]]):
                set_threads(threads)
                with torch.inference_mode():
                    one = measure(lambda: model(x1), iters=one_iters, warmup=10, max_seconds=one_secs, sync=sync)
                    net = measure(lambda: model.classify(feats), iters=one_iters, warmup=10, max_seconds=one_secs,
                                  sync=sync)
                    batch = measure(lambda: model(xb), iters=batch_iters, warmup=1, max_seconds=batch_secs, sync=sync)
                key = f"t{threads}" if device == "cpu" else "gpu"
                r[key] = {"threads": threads, "window_ms_median": one["median"], "window_ms_p99": one["p99"],
                          "net_ms_median": net["median"], "batch": BATCH, "batch_ms_median": batch["median"],
                          "clips_per_s": BATCH / batch["median"] * 1000}
                rows.append([name + (" *" if r["shipped"] else ""), device, threads, r["params"], r["macs"] / 1e6,
                             one["median"], one["p99"], net["median"], BATCH / batch["median"] * 1000,
                             one["median"] < HOP_MS])
            results.append(r)
    fe_macs = results[0]["frontend_macs"] if results else 0
    print(table(f"Models: one 1 s window at batch 1, and batches of {BATCH} ({machine_line(info)})",
                ["model", "device", "threads", "params", "MMACs", "window ms", "p99 ms", "net ms", "clips/s",
                 f"real time @{HOP_MS:g} ms"], rows,
                [f"* shipped architecture; MMACs: the network's, per window (the front end adds {fe_macs / 1e6:.1f})",
                 "window ms: front end + network for a window never seen (batch 1); net ms: network only;",
                 f"clips/s: batches of {BATCH}, front end + network; real time: window ms < the {HOP_MS:g} ms hop"]))

    # Eager vs TorchScript vs torch.compile, shipped architecture, batch 1.
    compile_rows, compile_results = [], []
    for device in devices(args.device):
        sync = cuda_sync(device)
        threads = 1 if device == "cpu" else thread_counts()[-1]
        set_threads(threads)
        x1 = waveforms(1, device)
        model = build_model(shipped).to(device).eval()
        found = variants(model, x1, args.quick, not args.no_compile)
        compile_s = found.pop("_compile_s", None)
        for variant, fn in found.items():
            if isinstance(fn, str):
                compile_rows.append([variant, device, threads, None, None, fn])
                compile_results.append({"variant": variant, "device": device, "threads": threads, "status": fn})
                continue
            with torch.inference_mode():
                ref = model(x1)
                diff = float((fn(x1) - ref).abs().max())
                stats = measure(lambda: fn(x1), iters=one_iters, warmup=10, max_seconds=one_secs, sync=sync)
            note = f"max |logit diff| {diff:.1e}" + (f", compiling took {compile_s:.0f} s" if variant == "torch.compile" and compile_s else "")
            compile_rows.append([variant, device, threads, stats["median"], stats["p99"], note])
            compile_results.append({"variant": variant, "device": device, "threads": threads,
                                    "window_ms_median": stats["median"], "window_ms_p99": stats["p99"],
                                    "max_logit_diff": diff, "compile_s": compile_s if variant == "torch.compile" else None})
    print()
    print(table(f"Eager vs TorchScript vs torch.compile: {shipped}, one window, batch 1",
                ["variant", "device", "threads", "median ms", "p99 ms", "note"], compile_rows))
    data = {"benchmark": "models", "machine": info, "quick": args.quick, "shipped": shipped, "batch": BATCH,
            "hop_ms": HOP_MS, "rows": results, "compile": compile_results}
    write_json("models", data, args.out, announce=True)
    return data


if __name__ == "__main__":
    main()
