"""`spotter bench`: a real (short) run through the CLI; keys, types and sanity, never timing thresholds."""

from __future__ import annotations

import json
import subprocess
import sys

from spotter.bench import verdict
from spotter.checkpoint import save_checkpoint
from spotter.model import build_model


def run(*args):
    return subprocess.run([sys.executable, "-m", "spotter", "bench", *args], capture_output=True, text=True,
                           timeout=120)


def test_bench_json_has_the_documented_keys():
    out = run("--json", "--iterations", "5", "--device-type", "cpu")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1
    r = json.loads(lines[0])
    for key in ("window_ms_median", "window_ms_p99", "cpu_percent"):
        assert isinstance(r[key], float) and r[key] > 0, (key, r[key])
    assert r["window_ms_p99"] >= r["window_ms_median"]
    assert r["device"] == "cpu" and r["threads"] == 1 and r["hop_ms"] == 100.0 and r["iterations"] == 5
    assert r["architecture"].startswith("bcresnet")
    # auto: the shipped model's exported graph in the onnx runtime when onnxruntime is installed
    assert (r["runtime"], r["model"].rsplit(".", 1)[-1]) in {("onnx", "onnx"), ("torch", "pt")}
    assert r["verdict"].split(":")[0] in ("OK", "WARNING", "TOO SLOW")


def test_bench_text_report_and_a_given_checkpoint(tmp_path):
    path = save_checkpoint(build_model("bcresnet-1"), tmp_path / "small.pt")
    out = run("--model", str(path), "--iterations", "3", "--hop-ms", "50", "--device-type", "cpu")
    assert out.returncode == 0, out.stderr
    assert "bcresnet-1" in out.stdout and "hop 50 ms" in out.stdout
    assert out.stdout.strip().splitlines()[-1].split(":")[0] in ("OK", "WARNING", "TOO SLOW")


def test_bad_model_is_a_one_line_error(tmp_path):
    for bad in ("no-such-model", str(tmp_path / "missing.pt")):
        out = run("--model", bad, "--iterations", "2")
        assert out.returncode != 0
        assert out.stderr.count("\n") == 1 and out.stderr.startswith("spotter: error:"), out.stderr
        assert "Traceback" not in out.stderr and out.stdout == ""
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    out = run("--model", str(junk), "--iterations", "2")
    assert out.returncode != 0 and out.stderr.count("\n") == 1 and "junk.pt" in out.stderr


def test_verdict_levels():
    base = {"hop_ms": 100.0, "window_ms_p99": 5.0}
    assert verdict({**base, "window_ms_median": 2.0, "cpu_percent": 2.0, "hop_percent": 2.0}).startswith("OK: 2.0 ms per 100 ms hop (2% of one core)")
    assert verdict({**base, "window_ms_median": 60.0, "cpu_percent": 60.0, "hop_percent": 60.0}).startswith("WARNING")
    assert verdict({**base, "window_ms_median": 2.0, "window_ms_p99": 150.0, "cpu_percent": 2.0,
                    "hop_percent": 2.0}).startswith("WARNING")
    assert verdict({**base, "window_ms_median": 120.0, "cpu_percent": 120.0, "hop_percent": 120.0}).startswith("TOO SLOW")


def test_the_runtimes_benchmark_compares_torch_and_onnx_on_the_same_windows(tmp_path):
    """benchmarks/bench_runtimes.py (what a GPU machine runs for both runtimes), here on the CPU."""
    import pytest

    pytest.importorskip("onnxruntime")
    out = subprocess.run([sys.executable, "benchmarks/bench_runtimes.py", "--quick", "--device", "cpu",
                          "--batches", "1,4", "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    r = json.loads((tmp_path / "runtimes.json").read_text())
    cpu = r["devices"]["cpu"]
    assert set(cpu["whole_windows"]) == {"1", "4"}
    for row in cpu["whole_windows"].values():
        assert row["torch"]["median"] > 0 and row["onnx"]["median"] > 0
        assert row["max_prob_difference"] <= 1e-4  # the same model in both runtimes
    assert set(cpu["streamed_hop"]) == {"torch, screened", "torch, every member", "onnx, screened",
                                        "onnx, every member"}
    assert "onnx x torch" in out.stdout
