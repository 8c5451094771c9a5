"""spotter: a real-time microphone keyword spotter (nnAudio front end + BC-ResNet).

Public API::

    import spotter
    model = spotter.build_model("bcresnet-8", trainable_mel=True)   # fresh model
    model = spotter.load_model()              # the shipped checkpoint, ready to run
    both = spotter.ensemble([model_a, model_b])   # one model averaging trained models' probabilities
    spotter.LABELS                            # the 12 class names, in output order
"""

from .checkpoint import CheckpointError, available_models, load_model, save_checkpoint
from .config import KEYWORDS, LABELS, SAMPLE_RATE, FrontendConfig
from .model import MODELS, build_model, ensemble

__version__ = "0.1.0"

__all__ = [
    "LABELS", "KEYWORDS", "SAMPLE_RATE", "MODELS", "FrontendConfig",
    "build_model", "ensemble", "load_model", "save_checkpoint", "available_models", "CheckpointError",
    "__version__",
]
