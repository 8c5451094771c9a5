"""Incremental log-Mel features: each hop computes only the frames it has not seen.

The front end (:class:`spotter.features.LogMel`) zero-pads half a window on
each side of a 1 s clip, so of a window's 101 frames the 97 inner ones
(frames 2..98) depend only on stream audio and are the same frames, shifted,
in every window that contains them; only the two frames at each edge touch
the padding.  :class:`StreamingFeatures` therefore

* keeps a cache of the stream's inner frames (computed once, when their
  480 samples have arrived), and
* per window computes the 4 edge frames from the window's first and last
  400 samples with the zero padding,

and returns exactly what the offline front end returns for that window
(tested: equal to float32 rounding).  Which frames a window needs, and the
stream's recent audio, are kept by :class:`spotter.framing.WindowFramer`
(no torch; the exported ONNX runtime uses it too).
Frames are computed from the front end's own basis tensors (nnAudio's
``stft.wsin``/``stft.wcos`` Fourier kernels and its Mel filterbank), so trained
bases are used as they are, but not through nnAudio's convolution: for the
dozen or so frames of a hop, cutting the audio into frames and doing ONE
matrix product ``frames @ [wcos; wsin]^T`` is the same arithmetic without a
convolution call's fixed cost, which dominates at this size (measured:
0.26 ms per hop through the layer vs under 0.1 ms this way, against 0.5 ms
for the whole window, 1 thread of a 2-core x86 CPU).
"""

from __future__ import annotations


import numpy as np
import torch

from .compute import float32_convolutions
from .detector import screen_members
from .features import LogMel
from .framing import StreamingError, WindowFramer

__all__ = ["StreamingError", "StreamingFeatures", "TorchWindowScorer", "fourier_mel_bases", "frame_log_mel"]


def fourier_mel_bases(frontend: LogMel) -> tuple[torch.Tensor, torch.Tensor]:
    """The front end's ``[wcos; wsin]^T`` as one ``(n_fft, 2 * bins)`` matrix, and its Mel basis transposed
    ``(bins, n_mels)``: detached copies of nnAudio's own tensors (trained ones as they are)."""
    stft = frontend.mel.stft
    bins = stft.wcos.shape[0]
    fourier = torch.cat([stft.wcos[:bins, 0, :], stft.wsin[:bins, 0, :]]).detach()
    return fourier.t().contiguous(), frontend.mel_matrix().detach().t().contiguous()


def frame_log_mel(frames: torch.Tensor, fourier_t: torch.Tensor, mel_t: torch.Tensor, frontend: LogMel) -> torch.Tensor:
    """Log-Mel ``(n_mels, N)`` of audio frames ``(N, n_fft)``: one matrix product gives the Fourier
    coefficients nnAudio's ``conv1d`` computes frame by frame, then power, Mel and the log."""
    coeffs = frames @ fourier_t  # (frames, 2 * bins): real parts, then imaginary parts
    bins = fourier_t.shape[1] // 2
    power = coeffs[:, :bins].square() + coeffs[:, bins:].square()
    if frontend.mel.stft.trainable:
        power = power + 1e-8  # nnAudio adds this under its sqrt for trainable kernels
    return frontend.compress(power @ mel_t).t()


class StreamingFeatures:
    def __init__(self, frontend: LogMel, max_lag: int = 16000) -> None:
        """Windows of ``frontend.config.window_samples``; ``max_lag``: how far (samples) behind the newest
        sample a requested window may end."""
        cfg = frontend.config
        if cfg.n_fft != cfg.win_length:
            raise StreamingError(f"this model's front end (n_fft {cfg.n_fft}, win_length {cfg.win_length}) cannot "
                                 "stream: listening needs win_length == n_fft, an even number; use a model "
                                 "trained with such a front end")
        self.frontend = frontend
        self.framer = WindowFramer(cfg.n_fft, cfg.hop_length, cfg.window_samples, max_lag)
        self.n_frames = self.framer.n_frames
        self.frames = torch.empty(cfg.n_mels, 0, device=self.device)  # cached inner frames, on the model's device
        self._bases_version: tuple | None = None
        self._bases_cache: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def device(self) -> torch.device:
        """Where the front end's bases are (the model's device): frames are computed and cached there."""
        return self.frontend.mel.mel_basis.device

    @property
    def stream_samples(self) -> int:
        """Real samples received so far (the stream clock)."""
        return self.framer.stream_samples

    def push(self, samples: np.ndarray) -> None:
        """Append new 16 kHz mono samples."""
        self.framer.push(samples)

    def skip(self, n: int) -> None:
        """Advance the stream clock over ``n`` lost samples (see :meth:`WindowFramer.skip`)."""
        self.framer.skip(n)

    def _bases(self) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`fourier_mel_bases`, rebuilt only when a basis tensor changed in place (a front end still training)."""
        tensors = self.frontend.basis_parameters()
        version = tuple(t._version for t in tensors) + tuple(t.data_ptr() for t in tensors)
        if version != self._bases_version:
            self._bases_cache = fourier_mel_bases(self.frontend)
            self._bases_version = version
        return self._bases_cache

    @torch.inference_mode()
    def window_features(self, end: int | None = None) -> torch.Tensor:
        """Log-Mel ``(1, 1, n_mels, frames)`` of the window ending at real sample ``end`` (default: newest)."""
        plan = self.framer.plan(end)
        edge = plan.left.shape[0]
        x = torch.from_numpy(np.concatenate([plan.left, plan.right, plan.new])).to(self.device)
        computed = frame_log_mel(x, *self._bases(), self.frontend)  # all of the window's frames in one product
        if plan.restart or self.frames.device != self.device:  # nothing useful cached, or the model moved
            self.frames = computed[:, 2 * edge:]
        else:
            self.frames = torch.cat([self.frames, computed[:, 2 * edge:]], dim=1)
        self.frames = self.frames[:, -self.framer.n_inner:]
        out = torch.cat([computed[:, :edge], self.frames, computed[:, edge: 2 * edge]], dim=1)
        if out.shape[1] != self.n_frames:
            raise RuntimeError(f"streaming features produced {out.shape[1]} frames, expected {self.n_frames}")
        return out[None, None]


class TorchWindowScorer:
    """The torch runtime's per-window work for :class:`spotter.pipeline.Engine`: incremental features, the
    model in its inference form (:func:`spotter.inference.inference_classifier`), class probabilities.

    With ``screen`` and an ensemble, :meth:`screened_probs` runs its first member and the others only when
    the first member's keyword probability reaches a limit (:func:`spotter.detector.screen_limit`), as the
    onnx runtime does (:class:`spotter.exported.ExportedWindowScorer`)."""

    runtime = "torch"

    def __init__(self, model, max_lag: int, screen: bool = True) -> None:
        from .config import keyword_indices
        from .inference import inference_classifier, screening_classifiers

        self.features = StreamingFeatures(model.frontend, max_lag=max_lag)
        self.framer = self.features.framer
        self.classify = inference_classifier(model)  # stacked and folded for inference (the same outputs)
        self.device = str(next(model.parameters()).device.type)
        pair = screening_classifiers(model) if screen else None
        self.first, self.rest = pair or (None, None)
        self.members = len(model.net.members) if pair else 1  # 1: no screening
        self.keyword_index = keyword_indices(model.labels)
        self.frontend = model.frontend

    @torch.inference_mode()
    def window_probs(self, audio: np.ndarray) -> np.ndarray:
        """Class probabilities of a whole window from its audio (every member; the stream's cache untouched)."""
        waveform = torch.as_tensor(np.asarray(audio, dtype=np.float32)).to(self.device)[None]
        with float32_convolutions():
            logits = self.classify(self.frontend(waveform))
        return torch.softmax(logits.float(), dim=-1)[0].cpu().numpy()

    @torch.inference_mode()
    def probs(self, end: int) -> np.ndarray:
        """The window's class probabilities, every member run."""
        with float32_convolutions():  # on a GPU: float32, not TF32, so the scores equal the CPU's
            logits = self.classify(self.features.window_features(end))
        return torch.softmax(logits.float(), dim=-1)[0].cpu().numpy()

    @torch.inference_mode()
    def screened_probs(self, end: int, limit: float) -> tuple[np.ndarray, bool]:
        """The ensemble's class probabilities, or the first member's alone (and True) when its keyword
        probability stays below ``limit`` (0: never)."""
        if self.first is None:
            return self.probs(end), False
        with float32_convolutions():
            window = self.first.normalize(self.features.window_features(end))
            first = torch.softmax(self.first.net(window).float(), dim=-1)[0].cpu().numpy()
            return screen_members(first, limit, self.keyword_index, self.members,
                                  lambda: torch.softmax(self.rest(window).float(), dim=-1)[0].cpu().numpy())
