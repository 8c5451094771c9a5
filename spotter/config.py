"""Constants and frozen configuration shared by every part of spotter.

Everything that must agree between training, the checkpoint and the live
stream lives here: the label set, the sample rate, the clip length and the
front-end parameters.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported where it is used: `import spotter` stays light
    import numpy as np

SAMPLE_RATE = 16_000
CLIP_SECONDS = 1.0
CLIP_SAMPLES = int(SAMPLE_RATE * CLIP_SECONDS)
#: The shortest and longest window a model may classify (seconds; FrontendConfig.window_samples).
WINDOW_SECONDS_RANGE = (0.5, 2.0)

#: The ten keywords of the 12-class Speech Commands protocol.
KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN = "unknown"
SILENCE = "silence"
#: The 12 class labels, in the order of the model's outputs.
LABELS = (*KEYWORDS, UNKNOWN, SILENCE)


#: The most keywords a model may have (a custom label set).
MAX_KEYWORDS = 20


def labels_for(keywords) -> tuple[str, ...]:
    """A model's labels for a keyword set: the keywords in order, then ``unknown`` and ``silence``."""
    return (*keywords, UNKNOWN, SILENCE)


def parse_keywords(text: str, what: str = "--keywords") -> tuple[str, ...]:
    """``"lights on, next slide"`` -> ``("lights on", "next slide")``: keywords separated by commas, each
    lower-cased with its spaces normalised. ``ValueError`` (one line, naming ``what``) for an empty keyword,
    a duplicate, ``unknown`` or ``silence``, or more than :data:`MAX_KEYWORDS`."""
    keywords = tuple(" ".join(k.lower().split()) for k in str(text).split(","))
    if not any(keywords):
        raise ValueError(f"{what} {text!r}: no keyword given; name them separated by commas, e.g. 'lights on,lights off'")
    if "" in keywords:
        raise ValueError(f"{what} {text!r}: an empty keyword (two commas in a row, or one at an end)")
    reserved = [k for k in keywords if k in (UNKNOWN, SILENCE)]
    if reserved:
        raise ValueError(f"{what}: {reserved[0]!r} is a class of every model (speech that is no keyword, or "
                         "no speech); choose another word")
    repeated = sorted({k for k in keywords if keywords.count(k) > 1})
    if repeated:
        raise ValueError(f"{what}: {repeated[0]!r} is named twice")
    if len(keywords) > MAX_KEYWORDS:
        raise ValueError(f"{what}: {len(keywords)} keywords; at most {MAX_KEYWORDS}")
    return keywords


def keywords_of(labels) -> tuple[str, ...]:
    """The keywords of a model's label set, in output order: every label but ``unknown`` and ``silence``
    (Speech Commands' ten for the shipped model; a custom model's own words for another)."""
    return tuple(label for label in labels if label not in (UNKNOWN, SILENCE))


def keyword_indices(labels) -> np.ndarray:
    """The output indices of :func:`keywords_of` ``labels``."""
    import numpy as np

    labels = tuple(labels)
    return np.array([labels.index(k) for k in keywords_of(labels)], dtype=int)


#: All 35 words of Google Speech Commands v2 (the keywords plus 25 "unknown" words).
ALL_WORDS = (
    "backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow",
    "forward", "four", "go", "happy", "house", "learn", "left", "marvin", "nine",
    "no", "off", "on", "one", "right", "seven", "sheila", "six", "stop", "three",
    "tree", "two", "up", "visual", "wow", "yes", "zero",
)
#: Folder of background-noise recordings in the Speech Commands layout.
BACKGROUND_NOISE_DIR = "_background_noise_"


#: Architecture names (:data:`spotter.model.MODELS` builds them); an ensemble joins names with "+".
ARCHITECTURES = ("linear", "bcresnet-1", "bcresnet-1.5", "bcresnet-2", "bcresnet-3", "bcresnet-6", "bcresnet-8")

#: What the detector compares with its threshold (:class:`spotter.detector.DetectorConfig`): a keyword's own
#: smoothed probability, or the smoothed probability of any keyword (1 - unknown - silence).
DETECTOR_SCORES = ("class", "any-keyword")
#: How `spotter tune` ranks detector settings within the false-alarm budget: by the recall over all
#: keywords (``pooled``), or by the lowest recall of any one keyword stream (``worst-stream``: one stream
#: per voice or engine, and a setting is as good as the voice it serves worst).
TUNE_OBJECTIVES = ("pooled", "worst-stream")

#: Where a model can run (``--device-type``; :func:`spotter.compute.select_device`): ``auto`` is CUDA when present.
DEVICE_TYPES = ("auto", "cpu", "cuda")
#: What scores windows (``--runtime``): ``onnx`` is the exported graph in ONNX Runtime (no torch), ``torch`` the
#: checkpoint; ``auto`` is onnx when onnxruntime is installed and the checkpoint has its graph beside it.
RUNTIMES = ("auto", "onnx", "torch")

#: Per-window normalisations of the log-Mel image (FrontendConfig.normalize).
NORMALIZATIONS = ("none", "mean")
#: How a trainable Mel filterbank is parametrised (see :mod:`spotter.features`): ``log`` (each filter's weights
#: in the log domain on its initial band, its area kept), ``band`` (triangles that learn their centre and
#: bandwidth) or ``matrix`` (nnAudio's raw matrix).
MEL_PARAMS = ("log", "band", "matrix")
#: How trainable STFT kernels are parametrised (see :mod:`spotter.features`): ``kernels`` (nnAudio's sine and
#: cosine kernels, every weight) or ``window`` (the analysis window alone, in the log domain; the Fourier basis fixed).
STFT_PARAMS = ("kernels", "window")


@dataclass(frozen=True)
class FrontendConfig:
    """Parameters of the log-Mel front end (see :mod:`spotter.features`).

    Defaults are the BC-ResNet paper's: 30 ms Hann window, 10 ms hop, 40 Mel
    bins, 16 kHz audio.
    """

    sample_rate: int = SAMPLE_RATE
    n_fft: int = 480
    win_length: int = 480
    hop_length: int = 160
    n_mels: int = 40
    fmin: float = 0.0
    fmax: float | None = None  # None: sample_rate / 2
    log_offset: float = 1e-6
    trainable_mel: bool = False
    trainable_stft: bool = False
    normalize: str = "none"  # "mean": subtract each Mel bin's mean over the window (see features.py)
    # The window the model classifies (samples): 1 s for Speech Commands' words, up to 1.5 s for a longer
    # phrase (``spotter custom``). Checkpoints without it are 1 s models.
    window_samples: int = CLIP_SAMPLES
    # How a trainable Mel filterbank is parametrised (MEL_PARAMS; only matters with trainable_mel); checkpoints
    # of a trainable filterbank without it used "matrix".
    mel_param: str = "log"
    # How trainable STFT kernels are parametrised (STFT_PARAMS; only matters with trainable_stft).
    stft_param: str = "kernels"

    def __post_init__(self) -> None:
        if self.mel_param not in MEL_PARAMS:
            raise ValueError(f"front end mel_param={self.mel_param!r}: use one of {', '.join(MEL_PARAMS)}")
        if self.stft_param not in STFT_PARAMS:
            raise ValueError(f"front end stft_param={self.stft_param!r}: use one of {', '.join(STFT_PARAMS)}")
        if self.normalize not in NORMALIZATIONS:
            raise ValueError(f"front end normalize={self.normalize!r}: use one of {', '.join(NORMALIZATIONS)}")
        lo, hi = WINDOW_SECONDS_RANGE
        if not (lo * self.sample_rate <= self.window_samples <= hi * self.sample_rate) \
                or self.window_samples % self.hop_length:
            raise ValueError(f"front end window_samples={self.window_samples}: use {lo:g} to {hi:g} s of samples, "
                             f"a multiple of the frame hop ({self.hop_length})")

    @property
    def window_seconds(self) -> float:
        return self.window_samples / self.sample_rate

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "FrontendConfig":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if known.get("trainable_mel"):  # a trainable filterbank saved before the log parametrisation existed
            known.setdefault("mel_param", "matrix")
        return cls(**known)
