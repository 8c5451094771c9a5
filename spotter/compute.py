"""The compute device: the one place that chooses CPU or CUDA for the model.

(In spotter's commands ``--device`` is the microphone; the compute device is ``--device-type``.)
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from .config import DEVICE_TYPES
from .errors import SpotterError


class DeviceError(SpotterError):
    """A device was asked for that this machine cannot provide."""


def select_device(device_type: str | None = "auto") -> torch.device:
    """CUDA when available, else CPU; ``"cpu"`` / ``"cuda"`` force one."""
    kind = (device_type or "auto").lower()
    if kind not in DEVICE_TYPES:
        raise DeviceError(f"unknown device type {device_type!r}: use one of {', '.join(DEVICE_TYPES)}")
    if kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
        raise DeviceError(
            f"--device-type cuda: no CUDA device is available (torch {torch.__version__}, {build}); use --device-type cpu"
        )
    return torch.device(kind)


@contextmanager
def float32_convolutions():
    """cuDNN convolutions in full float32 inside the block.

    On Ampere and later GPUs cuDNN computes float32 convolutions in TF32 by default (a 10-bit mantissa),
    and for large batches it picks TF32 algorithms: the STFT (a convolution in nnAudio) and the network
    then differ from the CPU by more than float rounding. Scoring that must equal the CPU's runs in here."""
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = saved
