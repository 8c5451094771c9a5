"""Shared helpers of the benchmark scripts: timing, machine facts, tables, JSON.

Timing: ``measure(fn)`` runs ``fn`` a few times to warm up, then times each
call with ``time.perf_counter`` (calling ``sync`` before each reading when
given, e.g. ``torch.cuda.synchronize`` for GPU work) until it has ``iters``
samples or ``max_seconds`` have passed; it reports median, p99, mean and min
in milliseconds.  p99 of fewer than 100 samples is the maximum.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))


def measure(fn: Callable[[], object], iters: int = 200, warmup: int = 10, max_seconds: float = 10.0,
            sync: Callable[[], None] | None = None, min_iters: int = 3) -> dict:
    """Per-call wall time of ``fn`` in ms: ``{"median", "p99", "mean", "min", "n"}``."""
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    samples: list[float] = []
    deadline = time.perf_counter() + max_seconds
    while len(samples) < iters and (len(samples) < min_iters or time.perf_counter() < deadline):
        start = time.perf_counter()
        fn()
        if sync:
            sync()
        samples.append((time.perf_counter() - start) * 1000)
    return summarize(samples)


def summarize(samples_ms: Sequence[float]) -> dict:
    a = np.asarray(samples_ms, dtype=np.float64)
    if a.size == 0:
        return {"median": None, "p99": None, "mean": None, "min": None, "n": 0}
    return {"median": float(np.median(a)), "p99": float(np.percentile(a, 99)), "mean": float(a.mean()),
            "min": float(a.min()), "n": int(a.size)}


def cuda_sync(device) -> Callable[[], None] | None:
    """``torch.cuda.synchronize`` for a CUDA device, else ``None`` (nothing to wait for)."""
    import torch

    return torch.cuda.synchronize if torch.device(device).type == "cuda" else None


def devices(requested: str = "auto") -> list[str]:
    """``cpu``, plus ``cuda`` when it is available (``auto``), or exactly what was asked for."""
    import torch

    if requested == "auto":
        return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if requested == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    return [requested]


def thread_counts() -> list[int]:
    """1 and every core (once when there is a single core)."""
    n = os.cpu_count() or 1
    return [1] if n == 1 else [1, n]


def set_threads(n: int) -> int:
    import torch

    torch.set_num_threads(n)
    return torch.get_num_threads()


def machine() -> dict:
    """What the figures were measured on."""
    import torch

    info = {
        "date": _dt.date.today().isoformat(),
        "cpu": _cpu_name(),
        "cpu_cores": os.cpu_count(),
        "platform": platform.platform(terse=True),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_default_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        info["load_average_1min"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line(info: dict) -> str:
    gpu = info.get("cuda") or "no GPU"
    load = f", load {info['load_average_1min']}" if "load_average_1min" in info else ""
    return (f"{info['date']}, {info['cpu_cores']}-core {info['cpu']}, {gpu}, torch {info['torch']}{load}")


def fmt(value, digits: int = 2) -> str:
    """A table cell: numbers rounded, thousands separated, None as '-'."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    return str(value)


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence], notes: Sequence[str] = ()) -> str:
    """A plain-text table (first column left-aligned, the others right-aligned)."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(str(col)), *(len(r[i]) for r in cells)) if cells else len(str(col))
              for i, col in enumerate(columns)]

    def line(values):
        return "  ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w) for i, (v, w) in enumerate(zip(values, widths)))

    out = [title, line(columns), line("-" * w for w in widths), *(line(r) for r in cells)]
    out += [f"  {n}" for n in notes]
    return "\n".join(out)


def write_json(name: str, data: dict, out_dir: Path | None = None, announce: bool = False) -> Path:
    """Write ``data`` to ``<out_dir or results>/<name>.json``; ``announce``: print where."""
    folder = Path(out_dir) if out_dir else RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(data, indent=1, default=str) + "\n")
    if announce:
        print(f"  -> {path}")
    return path


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="a fast smoke run: fewer iterations and rows")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: CPU, and CUDA too when available (default)")
    p.add_argument("--out", type=Path, default=None, help=f"folder for the JSON (default: {RESULTS})")
    return p


def quiet_warnings() -> None:
    import warnings

    warnings.filterwarnings("ignore", message=".*TracerWarning.*")
    warnings.filterwarnings("ignore", category=UserWarning)
    os.environ.setdefault("TQDM_DISABLE", "1")
