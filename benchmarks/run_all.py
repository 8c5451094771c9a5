"""Run every benchmark, print their tables, write benchmarks/results/*.json and the latency-vs-size plot.

    python benchmarks/run_all.py [--quick] [--device auto|cpu|cuda] [--out DIR] [--no-compile]

Each benchmark runs in its own process (thread settings and torch.compile
caches do not leak between them).  Ends with the targets of issue #6 checked
against the figures just measured.  About 8 minutes on a 2-core CPU shared with other jobs
(475 s measured; less on a quiet machine).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import common
from common import RESULTS, machine, machine_line, write_json

HERE = Path(__file__).resolve().parent
SCRIPTS = ["bench_startup.py", "bench_frontend.py", "bench_models.py", "bench_streaming.py", "bench_training.py"]


def plot(models: dict, streaming: dict | None, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.6), dpi=110)
    rows = models["rows"]
    series = sorted({k for r in rows for k in r if k.startswith("t") and k[1:].isdigit() or k == "gpu"})
    for key, marker in zip(series, "os^D"):
        pts = sorted((r["params"], r[key]["window_ms_median"], r["model"]) for r in rows if key in r)
        if not pts:
            continue
        label = f"CPU, {key[1:]} thread{'s' if key != 't1' else ''}" if key != "gpu" else "GPU"
        bc = [pt for pt in pts if pt[2].startswith("bcresnet")]
        (line,) = ax.plot([pt[0] for pt in bc], [pt[1] for pt in bc], marker=marker, linestyle="-",
                          label=f"{label}: whole window")
        other = [pt for pt in pts if not pt[2].startswith("bcresnet")]
        ax.plot([pt[0] for pt in other], [pt[1] for pt in other], marker=marker, linestyle="none", color=line.get_color())
        if key == "t1":
            for x, y, name in pts:
                ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 6), fontsize=8)
    if streaming:
        pts = [(h, next((r["params"] for r in rows if r["model"] == h["architecture"]), None)) for h in streaming["per_hop"]
               if h["device"] == "cpu"]
        pts = [(params, h["engine_hop_ms"]["median"]) for h, params in pts if params]
        if pts:
            ax.plot(*zip(*pts), marker="*", markersize=11, linestyle="none",
                    label="CPU, 1 thread: streaming hop (incremental features)")
    ax.axhline(10, color="grey", linestyle="--", linewidth=0.8)
    ax.text(min(r["params"] for r in rows), 10.3, "10 ms", color="grey", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("network parameters")
    ax.set_ylabel("ms per 1 s window (batch 1, median)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"Latency vs model size: front end + network\n{machine_line(models['machine'])}", fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def targets(models: dict | None, streaming: dict | None, startup: dict | None = None) -> list[tuple[str, str, bool | None]]:
    out: list[tuple[str, str, bool | None]] = []
    for name, result in (startup or {}).get("results", {}).items():
        if "target_s" in result:
            out.append((f"`{name}` starts in < {result['target_s']} s (median wall time)",
                        f"{result['median_s']:.2f} s", result["met"]))
    if streaming:
        hops = {h["architecture"]: h for h in streaming["per_hop"] if h["device"] == "cpu"}
        shipped = streaming["per_hop"][0]
        ms = shipped["engine_hop_ms"]["median"]
        out.append(("shipped model: features + model per window < 10 ms median (100 ms hop, 1 thread)",
                    f"{ms:.2f} ms", ms < 10))
        cpu = streaming["realtime"]["cpu_percent"]
        out.append(("listening costs < 10% of one core (real-time replay)", f"{cpu:.1f}%", cpu < 10))
        if "bcresnet-8" in hops:
            ms8 = hops["bcresnet-8"]["engine_hop_ms"]["median"]
            out.append(("bcresnet-8 runs in real time at 100 ms hop", f"{ms8:.1f} ms per hop", ms8 < 100))
        lat = streaming["fast"]["detection_latency_stream_ms"]["median"]
        out.append((f"detection latency median < 300 ms after the keyword ends ({streaming['fast']['wav']})",
                    "-" if lat is None else f"{lat:.0f} ms", None if lat is None else lat < 300))
        lat_rt = streaming["realtime"]["end_to_end_ms"]["median"]
        out.append(("  ... end to end in the real-time replay (keyword's last sample due -> event)",
                    "-" if lat_rt is None else f"{lat_rt:.0f} ms", None if lat_rt is None else lat_rt < 300))
        sp = shipped["speedup"]
        out.append(("incremental features >= 3x cheaper than recomputing the window", f"{sp:.1f}x", sp >= 3))
    elif models:
        shipped = next(r for r in models["rows"] if r["shipped"])
        ms = shipped["t1"]["window_ms_median"]
        out.append(("shipped model: features + model per window < 10 ms median", f"{ms:.2f} ms", ms < 10))
    return out


def main(argv=None) -> int:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--no-compile", action="store_true", help="bench_models.py without torch.compile")
    args = p.parse_args(argv)
    out_dir = args.out or RESULTS
    started = time.perf_counter()
    timings, failed = {}, []
    for script in SCRIPTS:
        cmd = [sys.executable, str(HERE / script), "--device", args.device, "--out", str(out_dir)]
        cmd += ["--quick"] if args.quick else []
        cmd += ["--no-compile"] if (args.no_compile and script == "bench_models.py") else []
        print(f"\n=== {script} ===", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(cmd, cwd=common.ROOT)
        timings[script] = round(time.perf_counter() - t0, 1)
        if rc:
            failed.append(script)
            print(f"{script} failed (exit {rc})", flush=True)

    def load(name):
        path = Path(out_dir) / f"{name}.json"
        return json.loads(path.read_text()) if path.is_file() and f"bench_{name}.py" not in failed else None

    models, streaming, startup = load("models"), load("streaming"), load("startup")
    png = plot(models, streaming, Path(out_dir) / "latency_vs_size.png") if models else None
    total = time.perf_counter() - started
    print(f"\n=== targets ({machine_line(machine())}) ===")
    checks = targets(models, streaming, startup)
    for what, value, ok in checks:
        mark = "-" if ok is None else ("met" if ok else "MISSED")
        print(f"  {mark:>6}  {what}: {value}")
    print(f"\nwall time: {total:.0f} s ({', '.join(f'{k} {v:.0f} s' for k, v in timings.items())})")
    if png:
        print(f"plot: {png}")
    write_json("run_all", {"machine": machine(), "quick": args.quick, "wall_s": round(total, 1), "scripts_s": timings,
                           "failed": failed, "targets": [{"target": w, "value": v, "met": ok} for w, v, ok in checks]},
               out_dir)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
