"""The two runtimes on each device: torch against ONNX Runtime, batch 1 and batched.

    python benchmarks/bench_runtimes.py [--quick] [--device auto|cpu|cuda] [--model CKPT] [--batches 1,16,64]

For the shipped model (or ``--model``, with its exported graphs beside it), on each device (``auto``:
the CPU, and CUDA when torch sees a GPU):

* **whole windows in batches** (1 s of audio each: front end, every member, averaging; what batch
  scoring and ``spotter eval`` do): torch (the checkpoint's modules on the device, float32 convolutions)
  against the whole ONNX graph (``X.onnx``) in ONNX Runtime with the device's provider (CUDA:
  ``CUDAExecutionProvider``, which needs ``onnxruntime-gpu``; without it the onnx rows say why);
* **one streamed hop** (batch 1, what ``listen`` does every 100 ms: incremental features and the
  network on the newest window, screened as ``listen`` screens, and every member run):
  ``spotter bench`` in each runtime (:func:`spotter.bench.run_bench`).

Median and p99 ms per call, windows per second, and onnx's speed-up over torch on the same device and
batch. One CPU thread on the CPU (as ``listen``), the GPU's own on CUDA. Writes results/runtimes.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from common import ROOT, cuda_sync, devices, machine, machine_line, measure, parser, quiet_warnings, table, write_json

HOP = 1600


def speech_like(seconds: float) -> np.ndarray:
    from spotter.bench import _audio

    return _audio(seconds)


def onnx_model(checkpoint: Path, device: str):
    """The exported model on ``device``'s provider, or the reason it cannot run there."""
    try:
        from spotter.exported import load_exported

        model = load_exported(checkpoint.with_suffix(".onnx"), threads=1, device_type=device)
    except Exception as e:  # noqa: BLE001 - reported in the table instead of a figure
        return None, f"{type(e).__name__}: {e}"
    providers = model.session.get_providers()
    if device == "cuda" and providers[0] != "CUDAExecutionProvider":
        return None, f"no CUDA provider (providers: {', '.join(providers)})"
    return model, None


def whole_windows(checkpoint: Path, device: str, batches: list[int], iters: int) -> dict:
    import torch

    from spotter.checkpoint import load_model
    from spotter.compute import float32_convolutions

    model = load_model(checkpoint, device=device).eval()
    exported, why = onnx_model(checkpoint, device)
    sync = cuda_sync(device)
    audio = speech_like(max(batches) + 1.0)
    rows = {}
    for batch in batches:
        windows = np.stack([audio[i * HOP: i * HOP + 16000] for i in range(batch)]).astype(np.float32)
        on_device = torch.from_numpy(windows).to(device)

        @torch.inference_mode()
        def torch_run():
            with float32_convolutions():
                return torch.softmax(model(on_device).float(), dim=-1).cpu()

        torch_ms = measure(torch_run, iters=iters, sync=sync)
        row = {"torch": torch_ms}
        if exported is not None:
            row["onnx"] = measure(lambda: exported.probs(windows), iters=iters)
            got, want = exported.probs(windows), torch_run().numpy()
            row["max_prob_difference"] = float(np.abs(got - want).max())
        else:
            row["onnx_missing"] = why
        rows[str(batch)] = row
    return rows


def streamed_hop(checkpoint: Path, device: str, iters: int) -> dict:
    """``spotter bench`` in each runtime on ``device``: one hop screened as ``listen`` screens, and every member."""
    from spotter.bench import run_bench

    out = {}
    for runtime in ("torch", "onnx"):
        try:
            r = run_bench(str(checkpoint), device_type=device, runtime=runtime, iterations=iters)
        except Exception as e:  # noqa: BLE001 - reported in the table instead of a figure
            out[f"{runtime}_missing"] = f"{type(e).__name__}: {e}"
            continue
        if r["runtime"] != runtime:  # auto fell back: no exported graph for this device
            out[f"{runtime}_missing"] = f"ran as {r['runtime']}"
            continue
        out[f"{runtime}, screened"] = {"median": r["window_ms_median"], "p99": r["window_ms_p99"]}
        out[f"{runtime}, every member"] = {"median": r["window_ms_every_member_median"], "p99": None}
    return out


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=ROOT / "checkpoints" / "bcresnet-3-synth.pt",
                   help="checkpoint with its exported graph beside it (default: the shipped model)")
    p.add_argument("--batches", default="1,16,64", help="batch sizes of whole windows (default: 1,16,64)")
    args = p.parse_args()
    quiet_warnings()
    import torch

    torch.set_num_threads(1)
    info = machine()
    print(f"machine: {machine_line(info)}", flush=True)
    batches = [int(b) for b in args.batches.split(",")]
    if args.quick:
        batches = batches[:2]
    iters = 20 if args.quick else 200
    result = {"machine": info, "model": str(args.model), "devices": {}}
    try:
        import onnxruntime

        result["onnxruntime"] = onnxruntime.__version__
        result["providers"] = onnxruntime.get_available_providers()
    except ImportError:
        result["onnxruntime"] = None
    for device in devices(args.device):
        whole = whole_windows(args.model, device, batches, iters)
        hops = streamed_hop(args.model, device, iters)
        result["devices"][device] = {"whole_windows": whole, "streamed_hop": hops}
        rows = []
        for batch, r in whole.items():
            t = r["torch"]["median"]
            o = r.get("onnx", {}).get("median")
            rows.append([batch, t, 1000 * int(batch) / t, o if o is not None else r["onnx_missing"][:40],
                         1000 * int(batch) / o if o else "", t / o if o else ""])
        print(table(f"{device}: whole 1 s windows (median ms per batch; windows/s)",
                    ["batch", "torch ms", "torch win/s", "onnx ms", "onnx win/s", "onnx x torch"], rows))
        rows = [[name, r["median"], r["p99"] if r["p99"] is not None else ""]
                for name, r in hops.items() if isinstance(r, dict)]
        print(table(f"{device}: one streamed 100 ms hop, batch 1 (ms; spotter bench)",
                    ["runtime, members", "median", "p99"], rows,
                    notes=[f"{k}: {v}" for k, v in hops.items() if k.endswith("_missing")]))
    write_json("runtimes", result, args.out, announce=True)


if __name__ == "__main__":
    sys.exit(main())
