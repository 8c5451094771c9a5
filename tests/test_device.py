import pytest
import torch

from spotter.device import DeviceError, select_device


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
