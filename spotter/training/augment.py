"""Training augmentation, batched in torch so it runs where the model runs (GPU when present).

* :func:`time_shift` - shift each clip by up to +-100 ms, zero filled (the
  BC-ResNet / TensorFlow recipe).
* :class:`NoiseMixer` - add a random 1 s stretch of background noise at a
  random SNR to a random share of the batch.
* :func:`random_gain` - scale each clip by a random gain (microphones differ).
* :func:`spec_augment` - SpecAugment-style frequency and time masks on the
  log-Mel features.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class AugmentConfig:
    shift_ms: float = 100.0
    noise_prob: float = 0.8
    snr_db: tuple[float, float] = (0.0, 25.0)
    gain_db: tuple[float, float] = (-30.0, 6.0)  # quiet talkers a few metres from the mic, too
    freq_masks: int = 2
    freq_mask_width: int = 7
    time_masks: int = 2
    time_mask_width: int = 15


def time_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift each row of ``x`` (B, N) by a random integer in [-max_shift, max_shift], zero filled."""
    if max_shift <= 0:
        return x
    b, n = x.shape
    padded = torch.nn.functional.pad(x, (max_shift, max_shift))
    offsets = torch.randint(0, 2 * max_shift + 1, (b, 1), device=x.device, generator=generator)
    index = torch.arange(n, device=x.device).unsqueeze(0) + offsets
    return padded.gather(1, index)


def random_gain(x: torch.Tensor, low_db: float, high_db: float, generator: torch.Generator | None = None) -> torch.Tensor:
    gains_db = torch.empty(x.shape[0], 1, device=x.device).uniform_(low_db, high_db, generator=generator)
    return x * (10.0 ** (gains_db / 20.0))


class NoiseMixer:
    """Mixes stretches of the given noise recordings into clips at a random SNR."""

    def __init__(self, noises: list[torch.Tensor], clip_samples: int) -> None:
        usable = [n.float() for n in noises if n.numel() >= clip_samples]
        self.noise = torch.cat(usable) if usable else None
        self.clip_samples = clip_samples

    def __call__(self, x: torch.Tensor, prob: float, snr_db: tuple[float, float],
                 generator: torch.Generator | None = None) -> torch.Tensor:
        if self.noise is None or prob <= 0:
            return x
        if self.noise.device != x.device:
            self.noise = self.noise.to(x.device)
        b, n = x.shape
        starts = torch.randint(0, self.noise.numel() - n + 1, (b, 1), device=x.device, generator=generator)
        segments = self.noise[starts + torch.arange(n, device=x.device).unsqueeze(0)]
        snr = torch.empty(b, 1, device=x.device).uniform_(*snr_db, generator=generator)
        signal_power = x.pow(2).mean(1, keepdim=True)
        noise_power = segments.pow(2).mean(1, keepdim=True).clamp_min(1e-12)
        # Silent clips (the silence class) get the noise at a random level of its own.
        reference = torch.where(signal_power > 1e-8, signal_power,
                                noise_power * torch.empty_like(snr).uniform_(0.0, 1.0, generator=generator))
        scale = torch.sqrt(reference / noise_power / (10.0 ** (snr / 10.0)))
        use = (torch.rand(b, 1, device=x.device, generator=generator) < prob).float()
        return x + use * scale * segments


def spec_augment(features: torch.Tensor, freq_masks: int, freq_width: int, time_masks: int, time_width: int,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Mask random frequency bands and time spans of ``(B, 1, F, T)`` with each clip's mean value."""
    b, _, f, t = features.shape
    device = features.device
    fill = features.mean(dim=(2, 3), keepdim=True)
    keep = torch.ones(b, 1, f, t, dtype=torch.bool, device=device)
    for count, width, size, axis in ((freq_masks, freq_width, f, 2), (time_masks, time_width, t, 3)):
        positions = torch.arange(size, device=device)
        for _ in range(count):
            w = torch.randint(0, width + 1, (b,), device=device, generator=generator)
            start = (torch.rand(b, device=device, generator=generator) * (size - w + 1)).long()
            band = (positions[None] >= start[:, None]) & (positions[None] < (start + w)[:, None])  # (B, size)
            band = band[:, None, :, None] if axis == 2 else band[:, None, None, :]
            keep &= ~band
    return torch.where(keep, features, fill)
