"""Start-up: how long the installed `spotter` command takes before it does anything.

    python benchmarks/bench_startup.py [--quick] [--out DIR]

Times whole processes, as a user waits for them: `python -c "import spotter"`,
`spotter --help`, `spotter devices` (lists audio inputs: PortAudio, no torch), and
`spotter info` (loads the shipped checkpoint: torch). Each command runs a few times
after one warm-up run (file caches warm); the median wall time is reported against
the targets (help < 0.3 s, devices < 0.5 s). Writes results/startup.json.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import machine, machine_line, parser, table, write_json

TARGETS_S = {"spotter --help": 0.3, "spotter devices": 0.5}


def _spotter() -> list[str]:
    """The installed `spotter` script beside this Python, else `python -m spotter`."""
    script = Path(sys.executable).with_name("spotter")
    if script.is_file():
        return [str(script)]
    found = shutil.which("spotter")
    return [found] if found else [sys.executable, "-m", "spotter"]


def wall_seconds(command: list[str], runs: int) -> dict:
    subprocess.run(command, capture_output=True, check=False)  # warm the file caches
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, check=False)
        samples.append(time.perf_counter() - start)
    return {"median_s": round(statistics.median(samples), 3), "min_s": round(min(samples), 3),
            "max_s": round(max(samples), 3), "runs": runs, "exit_code": done.returncode}


def main() -> None:
    args = parser(__doc__.split("\n\n")[0]).parse_args()  # --device is accepted (run_all passes it) and unused
    runs = 3 if args.quick else 9
    spotter = _spotter()
    commands = {
        'python -c "import spotter"': [sys.executable, "-c", "import spotter"],
        "spotter --help": [*spotter, "--help"],
        "spotter devices": [*spotter, "devices"],
        "spotter info": [*spotter, "info"],
    }
    results = {name: wall_seconds(command, runs) for name, command in commands.items()}
    for name, target in TARGETS_S.items():
        results[name]["target_s"] = target
        results[name]["met"] = results[name]["median_s"] < target
    info = machine()
    rows = [(name, r["median_s"], r["min_s"], r["max_s"], r.get("target_s"),
             "-" if "met" not in r else ("yes" if r["met"] else "NO")) for name, r in results.items()]
    print(table(f"Start-up, wall time of the whole process ({machine_line(info)})",
                ["command", "median s", "min s", "max s", "target s", "met"], rows,
                notes=[f"{runs} runs each after one warm-up; `spotter devices` exit code "
                       f"{results['spotter devices']['exit_code']} (2: no PortAudio here)"]))
    write_json("startup", {"machine": info, "results": results}, args.out, announce=True)


if __name__ == "__main__":
    main()
