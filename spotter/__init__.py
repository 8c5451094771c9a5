"""spotter: a real-time microphone keyword spotter (nnAudio front end + BC-ResNet).

Public API::

    import spotter
    model = spotter.build_model("bcresnet-8", trainable_mel=True)   # fresh model
    model = spotter.load_model()              # the shipped checkpoint, ready to run
    both = spotter.ensemble([model_a, model_b])   # one model averaging trained models' probabilities
    spotter.LABELS                            # the 12 class names, in output order

``import spotter`` is light: torch and nnAudio load on first use of a name that needs them.
"""

from __future__ import annotations

import importlib

from .config import KEYWORDS, LABELS, SAMPLE_RATE, FrontendConfig

__version__ = "0.1.0"

# name -> module that defines it; imported on first access (PEP 562), so `spotter --help` needs no torch.
_LAZY = {
    "CheckpointError": "checkpoint", "available_models": "checkpoint", "load_model": "checkpoint",
    "save_checkpoint": "checkpoint", "MODELS": "model", "build_model": "model", "ensemble": "model",
}

__all__ = [
    "LABELS", "KEYWORDS", "SAMPLE_RATE", "MODELS", "FrontendConfig",
    "build_model", "ensemble", "load_model", "save_checkpoint", "available_models", "CheckpointError",
    "__version__",
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
