"""The log-Mel front end: an nnAudio spectrogram layer as the model's first layer.

Waveforms ``(B, samples)`` at 16 kHz go in, log-Mel spectrograms
``(B, 1, n_mels, frames)`` come out (40 x 101 for one second).

Choices, and why:

* **nnAudio** computes the STFT as a 1-D convolution with sine/cosine kernels
  (``stft.wsin``, ``stft.wcos``) and the Mel filterbank as a matrix
  (``mel_basis``).  Both can be made trainable (``trainable_stft`` /
  ``trainable_mel`` map to nnAudio's ``trainable_STFT`` / ``trainable_mel``);
  they keep nnAudio's names under :attr:`LogMel.mel`, e.g.
  ``frontend.mel.mel_basis`` and ``frontend.mel.stft.wsin``.
* **Periodic Hann window, power spectrum, Slaney Mel scale with area
  normalisation** (nnAudio's defaults ``htk=False, norm=1``, the same as
  librosa's), 0 Hz to Nyquist.
* **Zero padding of half a window at each end, done here, not by nnAudio**
  (nnAudio runs with ``center=False``).  nnAudio's default is
  ``center=True, pad_mode='reflect'``; zero padding instead means a clip is
  treated as if surrounded by silence (which is what Speech Commands'
  zero-padding of short clips means anyway), and, because the padding is ours,
  the streaming engine can compute only the new frames of each hop with the
  very same layer and get exactly what the offline front end gives.
  Frames: ``1 + samples // hop`` (101 for 16000 samples).
* **Log compression** ``log(|mel| + 1e-6)``, as the BC-ResNet reference.  The
  ``abs`` is a no-op for fixed bases (power is never negative) but matters
  once ``mel_basis`` trains: weights can drift below zero, and a negative
  Mel power would make the log NaN.  A clamp at zero would avoid the NaN but
  zero the gradient of every filter that went negative, so it could never
  recover (the "trainable mel_basis stops updating" trap, nnAudio issue
  #114); ``abs`` keeps the log finite and the gradient alive.
* **A trainable Mel filterbank is trained in the log domain** (``mel_param="log"``, the default):
  each filter's weights on its initial band are ``exp(theta)``, and the filter is rescaled to its
  initial area, so it learns its *shape* (where in its band it listens, how sharply), stays
  non-negative and keeps its gain.  The gradient of ``theta`` is the raw one times the weight, which
  makes it a share of the filter's output (bounded, whatever the weights' size): the raw matrix
  (``mel_param="matrix"``, nnAudio's own ``mel_basis`` as a parameter) has weights of 1e-3..1e-2 and
  a gradient through ``log(mel + 1e-6)`` that is huge in quiet frames, so it is thrown far from its
  start (docs/training.md).  The log-domain weights are ``mel_log``; ``mel.mel_basis`` then stays
  the initial filterbank, and :meth:`LogMel.mel_matrix` is the one in use.
* **Or as triangles that learn where they are** (``mel_param="band"``): each filter keeps its
  triangular shape and Slaney area normalisation, and learns two numbers, its centre (``mel_centre``:
  up to one filter spacing either way, ``tanh``-bounded) and its bandwidth (``mel_width``: a factor
  0.5-2 on both flanks); at zero they are the fixed filterbank.  80 parameters for 40 filters, where
  the log domain has one per weight.
* **Trainable STFT kernels, or the window alone** (``stft_param``): ``kernels`` (the default) trains
  nnAudio's sine and cosine kernels, every weight (231,360 of them); ``window`` keeps the Fourier basis
  and trains the analysis window, ``hann * exp(theta)`` rescaled to the Hann window's sum (``stft_window_log``,
  one number per sample: 480): where in its 30 ms a frame listens, and so how sharply each bin resolves
  frequency, while every kernel stays a sinusoid of its bin's frequency and the spectrum keeps its level.
  At zero it is the fixed front end.
* **Optional per-window mean normalisation** (``normalize="mean"``, cepstral
  mean normalisation done on log-Mel bins): each bin's mean over the
  window is subtracted, so a fixed spectral tilt (microphone, room, a voice's
  or a synthesiser's average spectrum) and the overall level drop out.  It
  is applied by :meth:`LogMel.normalize`, which :meth:`KeywordModel.classify
  <spotter.model.KeywordModel.classify>` calls, so the streaming engine (which
  assembles windows from cached frames) and the offline path normalise the
  same window the same way.
"""

from __future__ import annotations

import math

import torch
from nnAudio.features.mel import MelSpectrogram
from torch import nn

from .config import FrontendConfig


# The Slaney Mel scale (librosa's and nnAudio's default, htk=False): linear below 1 kHz, logarithmic above.
_F_SP, _MIN_LOG_HZ, _LOG_STEP = 200.0 / 3, 1000.0, math.log(6.4) / 27.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP


def _hz_to_mel(hz: float) -> float:
    return hz / _F_SP if hz < _MIN_LOG_HZ else _MIN_LOG_MEL + math.log(hz / _MIN_LOG_HZ) / _LOG_STEP


def _mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    return torch.where(mel < _MIN_LOG_MEL, mel * _F_SP,
                       _MIN_LOG_HZ * torch.exp(_LOG_STEP * (mel.clamp_min(_MIN_LOG_MEL) - _MIN_LOG_MEL)))


#: The attributes of :class:`LogMel` that parametrise a trainable front end's shape (the Mel filters' log-domain
#: weights, or their centres and bandwidths; the STFT window's log gains): they train at the network's learning
#: rate and start where they give the fixed front end.
SHAPE_PARAMETERS = ("mel_log", "mel_centre", "mel_width", "stft_window_log")


class LogMel(nn.Module):
    """Waveform batch ``(B, samples)`` -> log-Mel ``(B, 1, n_mels, frames)``."""

    def __init__(self, config: FrontendConfig | None = None, **overrides) -> None:
        super().__init__()
        config = config or FrontendConfig()
        if overrides:
            config = FrontendConfig(**{**config.to_dict(), **overrides})
        self.config = config
        self.pad = config.n_fft // 2
        log_domain = config.trainable_mel and config.mel_param == "log"
        band = config.trainable_mel and config.mel_param == "band"
        window = config.trainable_stft and config.stft_param == "window"
        self.mel = MelSpectrogram(
            sr=config.sample_rate,
            n_fft=config.n_fft,
            win_length=config.win_length,
            n_mels=config.n_mels,
            hop_length=config.hop_length,
            window="hann",
            center=False,
            power=2.0,
            htk=False,
            fmin=config.fmin,
            fmax=config.fmax,
            norm=1,
            trainable_mel=config.trainable_mel and config.mel_param == "matrix",
            trainable_STFT=config.trainable_stft and not window,
            verbose=False,
        )
        self.mel_log: nn.Parameter | None = None
        if log_domain:
            initial = self.mel.mel_basis.detach()
            support = initial > 0
            self.register_buffer("mel_support", support.to(initial.dtype), persistent=False)
            self.register_buffer("mel_area", initial.sum(dim=1, keepdim=True), persistent=False)
            self.mel_log = nn.Parameter(torch.where(support, initial.clamp_min(1e-30).log(), torch.zeros_like(initial)))
        self.mel_centre: nn.Parameter | None = None
        self.mel_width: nn.Parameter | None = None
        if band:
            fmax = config.fmax if config.fmax is not None else config.sample_rate / 2
            points = torch.linspace(_hz_to_mel(config.fmin), _hz_to_mel(fmax), config.n_mels + 2, dtype=torch.float64)
            self.register_buffer("mel_points", points, persistent=False)
            self.register_buffer("fft_hz", torch.linspace(0, config.sample_rate / 2, config.n_fft // 2 + 1,
                                                          dtype=torch.float64), persistent=False)
            self.mel_centre = nn.Parameter(torch.zeros(config.n_mels))
            self.mel_width = nn.Parameter(torch.zeros(config.n_mels))
        self.stft_window_log: nn.Parameter | None = None
        if window:
            self.stft_window_log = nn.Parameter(torch.zeros(config.n_fft))

    def mel_matrix(self) -> torch.Tensor:
        """The Mel filterbank in use ``(n_mels, bins)``: nnAudio's ``mel_basis``, the log-domain or the band filters."""
        if self.mel_centre is not None:
            return self._band_matrix()
        if self.mel_log is None:
            return self.mel.mel_basis
        weights = torch.exp(self.mel_log) * self.mel_support
        return weights * (self.mel_area / weights.sum(dim=1, keepdim=True))

    def _band_matrix(self) -> torch.Tensor:
        """Triangular filters of learnt centres and bandwidths (Slaney scale and area, as librosa's)."""
        points = self.mel_points
        lower, centre, upper = points[:-2], points[1:-1], points[2:]
        centre_now = centre + torch.tanh(self.mel_centre.double()) * (upper - lower) / 2
        scale = torch.exp(math.log(2.0) * torch.tanh(self.mel_width.double()))
        left = _mel_to_hz(centre_now - (centre - lower) * scale)
        middle = _mel_to_hz(centre_now)
        right = _mel_to_hz(centre_now + (upper - centre) * scale)
        hz = self.fft_hz[None, :]
        rising = (hz - left[:, None]) / (middle - left)[:, None]
        falling = (right[:, None] - hz) / (right - middle)[:, None]
        weights = torch.clamp(torch.minimum(rising, falling), min=0.0) * (2.0 / (right - left))[:, None]
        return weights.to(self.mel.mel_basis.dtype)

    def stft_kernels(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The STFT kernels in use ``(bins, 1, n_fft)``, sine and cosine: nnAudio's, or its Fourier basis under
        the trainable window (``hann * exp(theta)``, rescaled to the Hann window's sum)."""
        stft = self.mel.stft
        if self.stft_window_log is None:
            return stft.wsin, stft.wcos
        hann = stft.window_mask.flatten().to(stft.wsin.dtype)  # nnAudio's kernels hold it already
        gain = torch.exp(self.stft_window_log)
        gain = gain * (hann.sum() / (hann * gain).sum())
        return stft.wsin * gain, stft.wcos * gain

    def shape_parameters(self) -> list[nn.Parameter]:
        """A trainable front end's parameters that train at the network's learning rate (the Mel filters'
        log-domain weights, or centres and bandwidths; the STFT window's log gains); empty for a fixed front end
        or raw bases."""
        return [p for p in (getattr(self, name) for name in SHAPE_PARAMETERS) if p is not None]

    def basis_parameters(self) -> list[torch.Tensor]:
        """The tensors the bases are made from (to notice when a training step changed them)."""
        stft = self.mel.stft
        return [stft.wcos, stft.wsin, self.mel.mel_basis] + self.shape_parameters()

    def n_frames(self, n_samples: int) -> int:
        """Frames produced for a clip of ``n_samples`` samples."""
        return 1 + n_samples // self.config.hop_length

    def power_frames(self, padded: torch.Tensor) -> torch.Tensor:
        """Mel power of already padded audio ``(B, samples)`` -> ``(B, n_mels, frames)``.

        No padding is added: a frame is produced for every full window.  The
        streaming engine uses this to compute only new frames.
        """
        if not self.shape_parameters():
            return self.mel(padded)
        return torch.matmul(self.mel_matrix(), self.stft_power(padded))

    def stft_power(self, padded: torch.Tensor) -> torch.Tensor:
        """Power spectrogram ``(B, bins, frames)`` of already padded audio, through the kernels in use."""
        if self.stft_window_log is None:
            return self.mel.stft(padded, output_format="Magnitude") ** 2
        wsin, wcos = self.stft_kernels()
        x = padded.unsqueeze(1)
        hop = self.config.hop_length
        return nn.functional.conv1d(x, wcos, stride=hop) ** 2 + nn.functional.conv1d(x, wsin, stride=hop) ** 2

    def compress(self, mel_power: torch.Tensor) -> torch.Tensor:
        """Log compression of Mel power (``abs``: see the module notes)."""
        return torch.log(mel_power.abs() + self.config.log_offset)

    def normalize(self, features: torch.Tensor) -> torch.Tensor:
        """The window's normalisation of log-Mel ``(B, 1, n_mels, frames)`` (identity unless configured)."""
        if self.config.normalize == "mean":
            return features - features.mean(dim=-1, keepdim=True)
        return features

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if waveform.dim() == 1:
            waveform = waveform.unsqueeze(0)
        if waveform.dim() != 2:
            raise ValueError(f"expected a waveform batch (B, samples), got shape {tuple(waveform.shape)}")
        padded = nn.functional.pad(waveform, (self.pad, self.pad))
        return self.compress(self.power_frames(padded)).unsqueeze(1)

    def basis_tensors(self) -> dict[str, torch.Tensor]:
        """The basis functions by their nnAudio names (for plots and tests)."""
        wsin, wcos = self.stft_kernels()
        return {"mel_basis": self.mel_matrix(), "stft.wsin": wsin, "stft.wcos": wcos}
