"""The onnx runtime: exported graphs equal torch, listen runs without torch, and bad graphs are refused."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from spotter.checkpoint import load_model, save_checkpoint
from spotter.cli import main
from spotter.exported import ExportedModelError, file_sha256, load_exported, open_exported
from spotter.model import build_model
from spotter.detector import detector_settings
from spotter.pipeline import Engine, EngineConfig

pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "keywords.wav"
SHIPPED = ROOT / "checkpoints" / "bcresnet-3-synth.pt"


def _posteriors_and_detections(model, audio):
    events = Engine(model, EngineConfig(screen=False)).feed(audio)  # every window and member, no gate
    probs = np.array([e.probs for e in events if hasattr(e, "probs")])
    detections = [(e.keyword, round(e.time, 3)) for e in events if hasattr(e, "keyword")]
    return probs, detections


def test_shipped_graph_is_exported_from_the_shipped_checkpoint():
    graph = load_exported(SHIPPED.with_suffix(".onnx"))
    assert graph.checkpoint_sha256 == file_sha256(SHIPPED), "checkpoints/*.onnx is stale: run `spotter export`"
    torch_model = load_model(SHIPPED, device="cpu")
    assert graph.labels == torch_model.labels and graph.name == torch_model.name
    assert graph.meta["detector"] == torch_model.meta["detector"]
    assert graph.frontend.config == torch_model.frontend.config


def test_exported_graphs_equal_torch_on_every_window_of_the_example():
    audio, rate = sf.read(EXAMPLE, dtype="float32")
    assert rate == 16000
    torch_model = load_model(SHIPPED, device="cpu")
    exported = load_exported(SHIPPED.with_suffix(".onnx"))
    want, want_detections = _posteriors_and_detections(torch_model, audio)
    got, got_detections = _posteriors_and_detections(exported, audio)  # the streaming form, hop by hop
    assert got.shape == want.shape == (audio.size // 1600, 12)
    assert np.abs(got - want).max() <= 1e-4
    assert got_detections == want_detections and len(want_detections) == 8
    # The whole graph on the same windows, batched: waveform in, probabilities out.
    padded = np.concatenate([np.zeros(16000, np.float32), audio])
    ends = np.arange(1600, audio.size + 1, 1600)
    windows = np.stack([padded[end: end + 16000] for end in ends])
    assert np.abs(exported.probs(windows) - want).max() <= 1e-4


def test_listen_in_the_onnx_runtime_imports_no_torch():
    code = ("import sys, json; from spotter.cli import main; "
            f"rc = main(['listen', '--wav', {str(EXAMPLE)!r}, '--json', '--runtime', 'onnx']); "
            "heavy = sorted({'torch', 'nnAudio', 'pytorch_lightning', 'scipy'} & {m.split('.')[0] for m in sys.modules}); "
            "print(json.dumps({'rc': rc, 'heavy': heavy}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert json.loads(lines[-1]) == {"rc": 0, "heavy": []}
    assert sum('"detection"' in line for line in lines) == 8
    assert "onnx" in out.stderr  # the start line names the runtime


def test_export_cli_writes_graphs_that_listen_uses_and_notices_a_changed_checkpoint(tmp_path, capsys):
    pytest.importorskip("onnxscript")
    torch.manual_seed(0)
    ckpt = save_checkpoint(build_model("bcresnet-1").eval(), tmp_path / "small.pt", meta={"detector": {"threshold": 0.7}})
    assert open_exported(str(ckpt), "auto") is None  # no graph yet: the torch runtime
    assert main(["export", str(ckpt)]) == 0
    assert (tmp_path / "small.onnx").is_file() and (tmp_path / "small.stream.onnx").is_file()
    exported = open_exported(str(ckpt), "auto")
    assert exported is not None and exported.meta == {"detector": {"threshold": 0.7}}
    assert open_exported(str(ckpt), "torch") is None
    torch.manual_seed(1)
    save_checkpoint(build_model("bcresnet-1").eval(), ckpt)  # retrained into the same file: the graph is stale
    assert open_exported(str(ckpt), "auto") is None
    capsys.readouterr()
    assert main(["listen", "--wav", str(EXAMPLE), "--model", str(ckpt), "--runtime", "onnx", "--json"]) != 0
    err = capsys.readouterr().err.strip()
    assert "was not exported from" in err and "spotter export" in err and len(err.splitlines()) == 1


def test_a_trained_front_end_is_exported_as_trained(tmp_path):
    """The graphs carry the checkpoint's own bases: log-domain Mel filters and Fourier kernels moved as
    training moves them give torch's probabilities (export checks every hop to 1e-4), not the fixed ones'."""
    pytest.importorskip("onnxscript")
    from spotter.export import export_onnx  # noqa: PLC0415 - needs the exporter's packages

    torch.manual_seed(0)
    model = build_model("linear", trainable_mel=True, trainable_stft=True)
    with torch.no_grad():
        model.net.fc.weight.mul_(0.2)  # unsure outputs: a front-end difference shows in every probability
        model.frontend.mel_log.add_(0.5 * torch.randn_like(model.frontend.mel_log))
        for kernel in (model.frontend.mel.stft.wsin, model.frontend.mel.stft.wcos):
            kernel.mul_(1 + 0.2 * torch.randn_like(kernel))
    model.eval()
    fixed = build_model("linear").eval()
    fixed.net.load_state_dict(model.net.state_dict())
    out, _ = export_onnx(model, tmp_path / "trained.onnx")
    window = sf.read(EXAMPLE, dtype="float32")[0][16000:32000][None]
    got = load_exported(out).probs(window)[0]
    with torch.inference_mode():
        trained = torch.softmax(model(torch.from_numpy(window)), -1)[0].numpy()
        untrained = torch.softmax(fixed(torch.from_numpy(window)), -1)[0].numpy()
    assert np.abs(got - trained).max() <= 1e-4
    assert np.abs(got - untrained).max() > 1e-2


def test_bad_graphs_and_runtimes_get_one_line_errors(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a graph at all")
    with pytest.raises(ExportedModelError, match="not a usable ONNX graph"):
        load_exported(bad)
    shutil.copy(SHIPPED.with_suffix(".onnx"), tmp_path / "alone.onnx")  # no streaming form beside it
    with pytest.raises(ExportedModelError, match="streaming form alone.stream.onnx is missing"):
        load_exported(tmp_path / "alone.onnx")
    ckpt = tmp_path / "plain.pt"
    shutil.copy(SHIPPED, ckpt)
    cases = [(["--model", str(SHIPPED.with_suffix(".onnx")), "--runtime", "torch"], "the torch runtime needs its checkpoint"),
             (["--model", str(ckpt), "--runtime", "onnx"], "has no exported graph beside it")]
    for flags, message in cases:
        assert main(["listen", "--wav", str(EXAMPLE), "--json", *flags]) != 0
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err


def test_bench_times_both_runtimes():
    from spotter.bench import run_bench

    onnx = run_bench(None, device_type="cpu", iterations=5, warmup=1, runtime="onnx")
    plain = run_bench(None, device_type="cpu", iterations=5, warmup=1, runtime="torch")
    assert onnx["runtime"] == "onnx" and onnx["runtime_version"].startswith("onnxruntime")
    assert plain["runtime"] == "torch" and plain["runtime_version"].startswith("torch")
    assert onnx["window_ms_median"] > 0 and plain["window_ms_median"] > 0
    # the shipped pair is screened in both runtimes; the every-member figure is timed too
    assert onnx["members"] == plain["members"] == 2 and 0 <= onnx["screened_percent"] <= 100
    assert onnx["window_ms_every_member_median"] > 0


def _run(model, audio, screen):
    engine = Engine(model, EngineConfig(screen=screen))  # every window, no gate
    events = engine.feed(audio)
    probs = np.array([e.probs for e in events if hasattr(e, "probs")])
    detections = [(e.keyword, round(e.time, 3), e.confidence) for e in events if hasattr(e, "keyword")]
    summary = engine.summary()
    summary["screened"] = np.array([e.screened for e in events if hasattr(e, "probs")])
    return probs, detections, summary


def test_screening_the_shipped_pair_gives_the_same_detections_for_less_work():
    """listen runs the second member only where the first one's keyword probability could lead to a
    detection: on the example recording the same detections, the ensemble's probabilities wherever both
    ran, and where only the first ran the whole ensemble was far from any threshold."""
    from spotter.detector import screen_limit

    audio = sf.read(EXAMPLE, dtype="float32")[0]
    exported = load_exported(SHIPPED.with_suffix(".onnx"))
    assert exported.members == 2 and exported.screen_sessions is not None  # shipped beside the checkpoint
    want, want_detections, plain = _run(exported, audio, screen=False)
    got, got_detections, screened = _run(exported, audio, screen=True)
    assert plain["screened_windows"] == 0 and screened["screened_windows"] >= 100  # of 277 windows
    assert len(got_detections) == len(want_detections) == 8
    for (kw, t, confidence), (want_kw, want_t, want_confidence) in zip(got_detections, want_detections):
        assert (kw, t) == (want_kw, want_t) and abs(confidence - want_confidence) < 1e-5
    keywords = slice(0, 10)
    first_alone = screened["screened"]
    assert first_alone.sum() == screened["screened_windows"] and not plain["screened"].any()
    assert (got[first_alone, keywords].sum(axis=1) < screen_limit(detector_settings(exported.meta), 2)).all()
    assert np.abs(got[~first_alone] - want[~first_alone]).max() <= 1e-5  # both members ran: the ensemble
    assert want[first_alone, keywords].sum(axis=1).max() < 2 * 0.85 - 1  # below what a detection needs
    assert np.abs(got[first_alone] - want[first_alone]).max() > 0.05  # and these really were one member's


def test_an_exported_ensemble_brings_its_screening_pair_and_a_single_network_none(tmp_path, capsys):
    pytest.importorskip("onnxscript")
    from spotter.model import ensemble

    torch.manual_seed(0)
    pair = ensemble([build_model("bcresnet-1").eval(), build_model("bcresnet-1").eval()])
    ckpt = save_checkpoint(pair, tmp_path / "pair.pt")
    assert main(["export", str(ckpt)]) == 0  # checks every graph against torch
    assert "pair.screen.onnx, pair.rest.onnx" in capsys.readouterr().err
    assert open_exported(str(ckpt), "onnx").members == 2
    save_checkpoint(build_model("bcresnet-1").eval(), ckpt)  # a single network exported over it
    assert main(["export", str(ckpt)]) == 0
    assert not (tmp_path / "pair.screen.onnx").exists() and not (tmp_path / "pair.rest.onnx").exists()
    single = open_exported(str(ckpt), "onnx")
    assert single.members == 1 and single.screen_sessions is None
    assert main(["listen", "--wav", str(EXAMPLE), "--model", str(ckpt), "--json", "--runtime", "onnx"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["screened_windows"] == 0


def test_listen_screens_by_default_and_not_with_no_screen(capsys):
    counts = {}
    for flags in ([], ["--no-screen"]):
        assert main(["listen", "--wav", str(EXAMPLE), "--json", "--runtime", "onnx", *flags]) == 0
        lines = capsys.readouterr().out.splitlines()
        counts[tuple(flags)] = (json.loads(lines[-1])["screened_windows"], sum('"detection"' in x for x in lines))
    assert counts[()][0] > 50 and counts[("--no-screen",)][0] == 0
    assert counts[()][1] == counts[("--no-screen",)][1] == 8
