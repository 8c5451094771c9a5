"""Whose voice is it: a small speaker model that tells an enrolled user's voice from other voices.

An enrolled model runs with its base model beside it (:mod:`spotter.guard`), and the base model's
detections stand so that other voices lose nothing. In the user's own voice that also brings back the
base model's false alarms, which enrollment had removed. :class:`VoiceModel` tells, for the window of
such a detection, whether the user said it: then the enrolled model, which knows that voice, decides
alone.

The model is a GMM-UBM (Reynolds, Quatieri and Dunn, 2000): a Gaussian mixture of cepstra of many voices
(the universal background model, made by ``scripts/make_voice_ubm.py`` from text-to-speech voices of
training engines and shipped as ``spotter/enroll/voice_ubm.npz``), whose means are moved towards the
user's enrollment recordings (MAP adaptation, relevance factor 16). A window's score is the mean
log-likelihood ratio, user against background, over its speech frames (those within 30 dB of its
loudest; cepstral means taken away, so that the microphone, shared by every voice, does not count); the
window is the user's when the score reaches ``threshold``. The newest second of a window is scored
(:data:`WINDOW`). Pure numpy and scipy: it runs in the onnx runtime, without torch. The whole model
(filterbank, background, the user's means) travels in the checkpoint's ``meta["guard"]["voice"]``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.fft import dct
from scipy.special import logsumexp

FRAME = 480  # samples (30 ms at 16 kHz), periodic Hann window, no padding
HOP = 160
N_CEPSTRA = 20  # c1..c19 are kept: c0 (the frame's level) says how loud, not whose voice
SPEECH_DB = 30.0  # frames within this many dB of the window's loudest are scored
PIECE = 100  # frames (1 s): the stretch whose mean cepstrum is taken away
WINDOW = PIECE * HOP  # samples (1 s): the newest piece of a stream's window is what is scored
MIN_FRAMES = 10  # a piece with fewer speech frames says too little
RELEVANCE = 16.0  # MAP adaptation: a component moves fully to the user's frames once it has about this many
#: The score (nats per frame) at which a window is taken for the user's: chosen on the selection persons
#: (docs/experiments.md, "Whose voice: the base model's detections in the user's own voice").
THRESHOLD = 1.5


class VoiceModelError(ValueError):
    """Voice-model parameters that cannot be used (damaged checkpoint or background file)."""


@dataclass(frozen=True)
class VoiceModel:
    mel: np.ndarray  # (mels, FRAME // 2 + 1): the filterbank the cepstra are made with
    weights: np.ndarray  # (K,) background mixture weights
    means: np.ndarray  # (K, D) background means
    variances: np.ndarray  # (K, D) diagonal covariances, shared by the user's model
    user_means: np.ndarray | None = None  # (K, D) after MAP adaptation; None: a background model only
    threshold: float = THRESHOLD

    def __post_init__(self) -> None:
        k, d = self.means.shape
        if (self.weights.shape != (k,) or self.variances.shape != (k, d) or d != N_CEPSTRA - 1
                or self.mel.ndim != 2 or self.mel.shape[1] != FRAME // 2 + 1 or not np.all(self.variances > 0)
                or (self.user_means is not None and self.user_means.shape != (k, d))):
            raise VoiceModelError(f"voice model of shapes weights {self.weights.shape}, means {self.means.shape}, "
                                  f"variances {self.variances.shape}, filterbank {self.mel.shape} does not fit")

    # -- features ------------------------------------------------------------------------------------------
    def features(self, audio: np.ndarray) -> np.ndarray:
        """Cepstra ``(frames, D)`` of the speech frames of 16 kHz ``audio`` (those within ``SPEECH_DB`` of its
        loudest), each second's with that second's mean taken away (cepstral mean normalisation: what the
        microphone and the room add, the same for every voice, leaves the score); none when ``audio`` is
        shorter than a frame."""
        x = np.asarray(audio, dtype=np.float64).reshape(-1)
        if x.size < FRAME:
            return np.zeros((0, N_CEPSTRA - 1))
        frames = np.lib.stride_tricks.sliding_window_view(x, FRAME)[::HOP]
        power = np.abs(np.fft.rfft(frames * _hann(), axis=1)) ** 2
        mel = power @ self.mel.T + 1e-10
        level = np.log(mel.sum(axis=1))
        speech = level >= level.max() - SPEECH_DB * np.log(10) / 10
        cepstra = dct(np.log(mel), type=2, norm="ortho", axis=1)[:, 1:N_CEPSTRA]
        pieces = []
        for a in range(0, max(1, len(cepstra) - PIECE // 2), PIECE):  # a last piece of half a second or more
            c = cepstra[a:a + PIECE][speech[a:a + PIECE]]
            if len(c) >= MIN_FRAMES:
                pieces.append(c - c.mean(axis=0))
        return np.concatenate(pieces) if pieces else np.zeros((0, N_CEPSTRA - 1))

    def _joint(self, means: np.ndarray, x: np.ndarray) -> np.ndarray:
        """``(frames, K)``: log of each component's weight times its density at each frame, with ``means``
        (the squared distances expanded into products: no frames x K x D array, whatever the recording's length)."""
        precision = 1.0 / self.variances
        quad = (x**2) @ precision.T - 2.0 * x @ (means * precision).T + (means**2 * precision).sum(axis=1)[None]
        return np.log(self.weights)[None] - 0.5 * (quad + np.log(2 * np.pi * self.variances).sum(axis=1)[None])

    # -- the user's voice ------------------------------------------------------------------------------------
    def adapted(self, recordings, relevance: float = RELEVANCE) -> "VoiceModel":
        """This background model with its means moved towards the speech frames of ``recordings`` (16 kHz
        arrays: the user's takes and keyword-free speech)."""
        x = np.concatenate([self.features(r) for r in recordings] or [np.zeros((0, N_CEPSTRA - 1))])
        if len(x) == 0:
            raise VoiceModelError("no speech in the recordings to learn the voice from")
        joint = self._joint(self.means, x)
        post = np.exp(joint - logsumexp(joint, axis=1, keepdims=True))  # (frames, K): each component's share
        n = post.sum(axis=0)
        mean_x = (post.T @ x) / np.maximum(n, 1e-12)[:, None]
        alpha = (n / (n + relevance))[:, None]
        return replace(self, user_means=alpha * mean_x + (1 - alpha) * self.means)

    def score(self, audio: np.ndarray) -> float:
        """Mean log-likelihood ratio, user against background, over the speech frames of ``audio`` (nats per
        frame; NaN for audio without a frame)."""
        if self.user_means is None:
            raise VoiceModelError("this voice model has no user: adapt it to the user's recordings first")
        x = self.features(audio)
        if len(x) == 0:
            return float("nan")
        user, background = (logsumexp(self._joint(m, x), axis=1) for m in (self.user_means, self.means))
        return float(np.mean(user - background))

    def is_user(self, audio: np.ndarray) -> bool:
        """Whether the user said ``audio`` (a window of the stream; its newest :data:`WINDOW` samples are
        scored): its :meth:`score` reaches ``threshold``."""
        return bool(self.score(np.asarray(audio).reshape(-1)[-WINDOW:]) >= self.threshold)

    # -- storage ---------------------------------------------------------------------------------------------
    def to_meta(self) -> dict:
        """JSON-able (a checkpoint's meta, an exported graph's metadata); the filterbank as each filter's first
        nonzero bin and its weights."""
        starts, filters = [], []
        for row in self.mel:
            nz = np.flatnonzero(row)
            a, b = (int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, 0)
            starts.append(a)
            filters.append(_floats(row[a:b]))
        out = {"threshold": self.threshold, "mel_start": starts, "mel": filters, "weights": _floats(self.weights),
               "means": _floats(self.means), "variances": _floats(self.variances)}
        if self.user_means is not None:
            out["user_means"] = _floats(self.user_means)
        return out

    @classmethod
    def from_meta(cls, meta: dict) -> "VoiceModel":
        try:
            bins = FRAME // 2 + 1
            mel = np.zeros((len(meta["mel"]), bins))
            for i, (a, row) in enumerate(zip(meta["mel_start"], meta["mel"], strict=True)):
                mel[i, int(a): int(a) + len(row)] = row
            user = meta.get("user_means")
            return cls(mel, np.asarray(meta["weights"], float), np.asarray(meta["means"], float),
                       np.asarray(meta["variances"], float), None if user is None else np.asarray(user, float),
                       float(meta.get("threshold", THRESHOLD)))
        except (KeyError, TypeError, ValueError, IndexError) as err:
            if isinstance(err, VoiceModelError):
                raise
            raise VoiceModelError(f"voice model unusable ({type(err).__name__}: {err})") from None


def _hann() -> np.ndarray:
    return np.hanning(FRAME + 1)[:-1]  # periodic, as the model's front end


def _floats(a: np.ndarray) -> list:
    return np.asarray(a, dtype=np.float64).tolist()  # every digit: a stored model scores as the one enrolled


def background() -> VoiceModel:
    """The shipped background model (``spotter/enroll/voice_ubm.npz``, made by scripts/make_voice_ubm.py)."""
    from importlib.resources import files

    path = files("spotter.enroll") / "voice_ubm.npz"
    try:
        with np.load(str(path)) as z:
            return VoiceModel(z["mel"], z["weights"], z["means"], z["variances"])
    except (OSError, KeyError, ValueError) as err:
        raise VoiceModelError(f"{path}: unusable ({err}); reinstall spotter") from None
