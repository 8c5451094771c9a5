"""The command line as a user runs it: a real subprocess, real exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import spotter
from spotter.checkpoint import load_model, save_checkpoint
from spotter.config import FrontendConfig
from spotter.cli import build_parser
from spotter.model import build_model


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "spotter", *args], capture_output=True, text=True, env=env, timeout=120)


def test_version_and_help():
    out = run("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"spotter {spotter.__version__}"
    out = run("--help")
    assert out.returncode == 0 and "keyword spotter" in out.stdout


def test_every_subcommand_has_help():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert commands
    for name in commands:
        out = run(name, "--help")
        assert out.returncode == 0, (name, out.stderr)
        assert f"usage: spotter {name}" in out.stdout and len(out.stdout) > 100


def test_models_lists_architectures_with_paper_counts():
    out = run("models", "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["model"]: r for r in json.loads(out.stdout)["architectures"]}
    assert rows["bcresnet-1"]["params"] == 9232 and rows["bcresnet-1"]["paper_params"] == 9200
    assert rows["bcresnet-8"]["frontend_trainable_params"] == 241_000


def test_info_describes_a_checkpoint_and_errors_are_one_line(tmp_path):
    path = save_checkpoint(build_model("bcresnet-2"), tmp_path / "m.pt", meta={"note": "hello"})
    out = run("info", str(path), "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["model"] == "bcresnet-2" and info["meta"] == {"note": "hello"} and len(info["labels"]) == 12
    window = build_model("linear", trainable_stft=True, frontend=FrontendConfig(stft_param="window"))
    out = run("info", str(save_checkpoint(window, tmp_path / "w.pt")))
    assert "trainable mel=False stft=True (window)" in out.stdout, out.stdout
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 100)
    out = run("info", str(bad))
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "bad.pt" in out.stderr and "Traceback" not in out.stderr


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "keywords.wav"


@pytest.mark.slow
def test_eval_stream_scores_the_example_and_sees_edited_labels(tmp_path):
    """`spotter eval-stream` on the example recording: all 8 keywords found; the same audio against labels
    with one keyword renamed (a wrong name) and one removed (its detection becomes a false alarm)."""
    labels = tmp_path / "keywords.csv"
    rows = EXAMPLE.with_suffix(".csv").read_text().splitlines()
    out = run("eval-stream", str(EXAMPLE), str(EXAMPLE.with_suffix(".csv")), "--json")
    assert out.returncode == 0, out.stderr
    score = json.loads(out.stdout)
    assert (score["keywords"], score["matched"], score["wrong"], score["missed"], score["false_alarms"]) == (8, 8, 0, 0, 0)
    assert score["recall"] == 1.0 and 0 < score["latency_median_s"] <= score["tolerance_s"] == 0.75
    shipped = load_model().meta["detector"]  # eval-stream uses the shipped model's own detector
    assert (score["threshold"], score["smoothing_hops"], score["min_count"], score["score"]) == (
        shipped["threshold"], shipped["smoothing_hops"], shipped["min_count"], shipped["score"])
    assert score["model"] == "bcresnet-3+bcresnet-3"

    edited = [r.replace("stop,", "go,", 1) if r.startswith("stop,") else r for r in rows if not r.startswith("down,")]
    labels.write_text("\n".join(edited) + "\n")
    out = run("eval-stream", str(EXAMPLE), str(labels), "--json")
    assert out.returncode == 0, out.stderr
    score = json.loads(out.stdout)
    assert (score["keywords"], score["matched"], score["wrong"], score["false_alarms"]) == (7, 6, 1, 1)
    assert score["per_keyword_total"]["go"] == 2 and "down" not in score["per_keyword_total"]

    text = run("eval-stream", str(EXAMPLE), str(labels))
    assert text.returncode == 0 and "matched            6" in text.stdout and "false alarms       1" in text.stdout
    bad = run("eval-stream", str(EXAMPLE), str(tmp_path / "missing.csv"))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "missing.csv" in bad.stderr
