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
from spotter.pipeline import Engine, EngineConfig

pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "keywords.wav"
SHIPPED = ROOT / "checkpoints" / "bcresnet-3-synth.pt"


def _posteriors_and_detections(model, audio):
    events = Engine(model, EngineConfig()).feed(audio)  # every window, no gate
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
