import pytest
import torch

from spotter.compute import DeviceError, select_device


def test_auto_picks_cuda_only_when_available():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device("auto").type == expected
    assert select_device(None).type == expected
    assert select_device("cpu").type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(DeviceError, match="no CUDA device is available.*--device-type cpu"):
        select_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_model_runs_on_cuda_and_matches_cpu():
    from spotter.model import build_model

    model = build_model("bcresnet-1").eval()
    x = torch.randn(2, 16000) * 0.1
    with torch.inference_mode():
        cpu = model(x)
        gpu = model.to(select_device("cuda"))(x.cuda()).cpu()
    torch.testing.assert_close(gpu, cpu, rtol=1e-3, atol=1e-3)


def test_unknown_device_type():
    with pytest.raises(DeviceError, match="use one of auto, cpu, cuda"):
        select_device("tpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_streaming_engine_on_cuda_equals_cpu_on_every_window():
    """The whole listen path on the GPU (incremental features, network, detector) over the example recording:
    every window's posteriors as on the CPU, and the same detections at the same times."""
    from pathlib import Path

    import numpy as np

    from spotter.checkpoint import load_model
    from spotter.events import Detection, PosteriorUpdate
    from spotter.pipeline import replay_file

    example = Path(__file__).resolve().parents[1] / "examples" / "keywords.wav"
    runs = {}
    for device in ("cpu", "cuda"):
        model = load_model(None, device=device)
        assert next(model.parameters()).device.type == device
        runs[device], _ = replay_file(model, example)
    probs = {d: np.array([e.probs for e in ev if isinstance(e, PosteriorUpdate)]) for d, ev in runs.items()}
    assert probs["cuda"].shape == probs["cpu"].shape and len(probs["cpu"]) > 200
    assert np.abs(probs["cuda"] - probs["cpu"]).max() < 1e-3
    found = {d: [(e.keyword, e.time) for e in ev if isinstance(e, Detection)] for d, ev in runs.items()}
    assert found["cuda"] == found["cpu"] and len(found["cpu"]) == 8


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batched_stream_scoring_on_cuda_equals_cpu():
    """Detector tuning's batched scoring with the model on the GPU: the same posteriors as on the CPU."""
    from pathlib import Path

    import numpy as np

    from spotter.checkpoint import load_model
    from spotter.evaluation.tuning import stream_posteriors

    example = Path(__file__).resolve().parents[1] / "examples" / "keywords.wav"
    runs = {d: stream_posteriors(load_model(None, device=d), example, batched=True) for d in ("cpu", "cuda")}
    assert runs["cuda"].probs.shape == runs["cpu"].probs.shape and len(runs["cpu"].probs) > 200
    assert np.abs(runs["cuda"].probs - runs["cpu"].probs).max() < 1e-3
    np.testing.assert_array_equal(runs["cuda"].times, runs["cpu"].times)
