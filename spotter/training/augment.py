"""Training augmentation, batched in torch so it runs where the model runs (GPU when present).

* :func:`time_shift` - shift each clip by up to +-100 ms, zero filled (the
  BC-ResNet / TensorFlow recipe).
* :class:`NoiseMixer` - add a random 1 s stretch of background noise at a
  random SNR to a random share of the batch. The SNR is measured over the
  whole clip (``snr_reference="clip"``, the older recipes) or, as the test
  streams and the literature measure it, over the clip's speech only
  (``"speech"``: its 10 ms frames within 30 dB of the loudest); a 0.3 s word
  in a 1 s clip is about 5 dB noisier at the same number that way.
* :func:`random_gain` - scale each clip by a random gain (microphones differ).
* :func:`speed_perturb` - play each clip a little faster or slower (tempo, pitch
  and formants move together, as a shorter or longer vocal tract and a
  faster or slower talker would): new voices from the ones there are.
* :class:`RoomReverb` - play a share of the batch through simulated rooms (a bank of
  ``"diffuse"`` impulse responses from :mod:`spotter.data.rooms`, made once; the ``"image"``
  kind stays out of training, for testing): the talker at a distance in a reverberant room.
* :func:`random_filter` - colour each clip with a random smooth EQ curve (mouth,
  microphone, room and vocoder all tilt the spectrum) and band-limit some clips
  to 3.4..7 kHz (telephone-band and 8 kHz voices, cheap microphones).
* :func:`spectral_blur` - smooth some clips' log-Mel spectra along frequency
  (statistical-parametric vocoders and muffled channels blur formant peaks).
* :func:`spec_augment` - SpecAugment-style frequency and time masks on the
  log-Mel features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from nnAudio.librosa_functions import hz_to_mel, mel_to_hz


SNR_REFERENCES = ("clip", "speech")


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
    speed: tuple[float, float] = (1.0, 1.0)   # playback-rate range; (1, 1) is off
    eq_db: float = 0.0                        # peak size of the random EQ curve in dB; 0 is off
    lowpass_prob: float = 0.0                 # share of clips band-limited
    lowpass_hz: tuple[float, float] = (3400.0, 7000.0)
    blur_prob: float = 0.0                    # share of clips whose log-Mel spectrum is blurred along frequency
    blur_passes: int = 3                      # up to this many passes of a [1 2 1] / 4 kernel
    snr_reference: str = "clip"               # SNR over the whole clip ("clip") or its speech frames ("speech")
    reverb_prob: float = 0.0                  # share of clips played through a simulated room; 0 is off
    reverb_rt60: tuple[float, float] = (0.2, 1.0)      # the rooms' reverberation times, s
    reverb_distance: tuple[float, float] = (0.3, 3.0)  # talker to microphone, m
    warp_prob: float = 0.0                    # share of clips whose spectrum is scaled along frequency (VTLP)
    warp: tuple[float, float] = (0.85, 1.15)  # the scale factors: above 1 a shorter vocal tract (formants and pitch up)
    babble_prob: float = 0.0                  # share of clips with other clips of the batch talking under them
    babble_snr_db: tuple[float, float] = (5.0, 20.0)  # the clip's speech over the babble
    babble_talkers: int = 4                   # other clips summed into one clip's babble

    def __post_init__(self) -> None:
        lo, hi = self.speed
        if not 0.5 <= lo <= hi <= 2.0:
            raise ValueError(f"speed range {self.speed} must satisfy 0.5 <= low <= high <= 2")
        if self.eq_db < 0 or not 0 <= self.lowpass_prob <= 1 or not 0 <= self.blur_prob <= 1:
            raise ValueError("eq_db must be >= 0, lowpass_prob and blur_prob in [0, 1]")
        if self.blur_passes < 1:
            raise ValueError("blur_passes must be at least 1")
        if not 0 <= self.reverb_prob <= 1:
            raise ValueError("reverb_prob must be in [0, 1]")
        if not 0 <= self.warp_prob <= 1 or not 0.5 <= self.warp[0] <= self.warp[1] <= 2.0:
            raise ValueError(f"warp_prob must be in [0, 1] and the warp range {self.warp} within 0.5..2")
        if not 0 <= self.babble_prob <= 1 or self.babble_talkers < 1:
            raise ValueError("babble_prob must be in [0, 1] and babble_talkers at least 1")
        if self.snr_reference not in SNR_REFERENCES:
            raise ValueError(f"snr_reference {self.snr_reference!r} must be one of {', '.join(SNR_REFERENCES)}")


def parse_overrides(items) -> dict:
    """``["speed=0.85,1.15", "eq_db=6"]`` (or a YAML mapping) -> ``AugmentConfig`` keyword arguments.

    Raises ``ValueError`` naming the bad item and the known keys."""
    if not items:
        return {}
    pairs = items.items() if isinstance(items, dict) else (str(i).split("=", 1) if "=" in str(i) else (i, None)
                                                          for i in items)
    fields = AugmentConfig.__dataclass_fields__
    out = {}
    for key, value in pairs:
        key = str(key).strip().replace("-", "_")
        if key not in fields or value is None:
            raise ValueError(f"augmentation setting {key!r}: write KEY=VALUE with KEY one of {', '.join(fields)}")
        default = fields[key].default
        try:
            if isinstance(default, str):
                out[key] = str(value)
            elif isinstance(default, tuple):
                parts = value if isinstance(value, (list, tuple)) else str(value).split(",")
                out[key] = tuple(float(v) for v in parts)
                if len(out[key]) != 2:
                    raise ValueError
            else:
                out[key] = type(default)(float(value))
        except (TypeError, ValueError):
            shape = "LOW,HIGH" if isinstance(default, tuple) else "a number"
            raise ValueError(f"augmentation setting {key}={value!r}: expected {shape}") from None
    AugmentConfig(**out)  # validate ranges now, with the user's values in the message
    return out


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


def speed_perturb(x: torch.Tensor, low: float, high: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Resample each row of ``x`` (B, N) by a random playback rate in [low, high] about its centre.

    A rate above 1 plays faster: the word gets shorter and every frequency is scaled up by the rate.
    Linear interpolation, zero filled, length kept."""
    if low == high == 1.0:
        return x
    b, n = x.shape
    rate = torch.empty(b, 1, device=x.device).uniform_(low, high, generator=generator)
    centre = (n - 1) / 2
    pos = centre + (torch.arange(n, device=x.device, dtype=x.dtype)[None] - centre) * rate
    left = pos.floor()
    frac = pos - left
    padded = torch.nn.functional.pad(x, (1, 2))  # index -1 and n, n+1 read zeros
    i0 = (left.long() + 1).clamp(0, n + 1)
    inside = (pos > -1) & (pos < n)
    out = torch.lerp(padded.gather(1, i0), padded.gather(1, i0 + 1), frac)
    return out * inside


def _mel(hz: torch.Tensor) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + hz / 700.0)


def random_filter(x: torch.Tensor, sample_rate: int, eq_db: float, lowpass_prob: float,
                  lowpass_hz: tuple[float, float], generator: torch.Generator | None = None) -> torch.Tensor:
    """Filter each row of ``x`` (B, N) in the frequency domain.

    EQ: a smooth random gain curve, the sum of three cosines over the Mel scale, at most ``eq_db`` dB
    either way. Band limit: with probability ``lowpass_prob``, a cut-off drawn from ``lowpass_hz``
    with a 300 Hz raised-cosine roll-off."""
    if eq_db <= 0 and lowpass_prob <= 0:
        return x
    b, n = x.shape
    spectrum = torch.fft.rfft(x, dim=1)
    freqs = torch.fft.rfftfreq(n, 1.0 / sample_rate).to(x.device)
    gain_db = torch.zeros(b, freqs.numel(), device=x.device)
    if eq_db > 0:
        u = (_mel(freqs) / _mel(torch.tensor(sample_rate / 2.0))).to(x.device)  # 0..1 on the Mel scale
        k = torch.arange(1, 4, device=x.device, dtype=x.dtype)
        basis = torch.cos(torch.pi * k[:, None] * u[None])                     # (3, F)
        coef = torch.empty(b, 3, device=x.device).uniform_(-1.0, 1.0, generator=generator)
        curve = coef @ basis
        curve = curve - curve.mean(1, keepdim=True)                            # colour, not level
        gain_db = gain_db + eq_db * curve / curve.abs().amax(1, keepdim=True).clamp_min(1e-6) \
            * torch.empty(b, 1, device=x.device).uniform_(0.0, 1.0, generator=generator)
    response = 10.0 ** (gain_db / 20.0)
    if lowpass_prob > 0:
        cut = torch.empty(b, 1, device=x.device).uniform_(*lowpass_hz, generator=generator)
        roll = ((freqs[None] - cut) / 300.0).clamp(0.0, 1.0)
        lowpass = 0.5 * (1.0 + torch.cos(torch.pi * roll))
        use = torch.rand(b, 1, device=x.device, generator=generator) < lowpass_prob
        response = torch.where(use, response * lowpass, response)
    return torch.fft.irfft(spectrum * response, n=n, dim=1)


def speech_power(x: torch.Tensor, frame: int = 160, floor_db: float = 30.0) -> torch.Tensor:
    """Mean power of each row's speech, ``(B, N) -> (B, 1)``: over its ``frame``-sample frames whose power
    is within ``floor_db`` of the row's loudest frame (an all-zero row gives 0)."""
    b, n = x.shape
    frames = x[:, : n - n % frame].reshape(b, -1, frame).pow(2).mean(2)
    active = frames >= frames.amax(1, keepdim=True) * 10.0 ** (-floor_db / 10.0)
    return ((frames * active).sum(1) / active.sum(1).clamp_min(1)).unsqueeze(1)


def batch_babble(x: torch.Tensor, prob: float, snr_db: tuple[float, float], talkers: int,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Other people talking under a ``prob`` share of the clips of ``(B, N)``: ``talkers`` other clips of
    the batch, each rotated in time by a random amount and brought to the same speech power, summed and
    mixed at a random SNR in ``snr_db`` over the clip's speech (:func:`speech_power`). The babble is made
    of the corpus' own voices, words and sentences, a new crowd every batch; silent clips (the silence
    class) are left alone, so that silence stays silence."""
    b, n = x.shape
    if prob <= 0 or b < 2:
        return x
    device = x.device
    power = speech_power(x)  # (B, 1)
    babble = torch.zeros_like(x)
    for _ in range(talkers):
        other = (torch.arange(b, device=device) + torch.randint(1, b, (b,), device=device, generator=generator)) % b
        shift = torch.randint(0, n, (b, 1), device=device, generator=generator)
        rows = x[other].gather(1, (torch.arange(n, device=device)[None] + shift) % n)
        babble += rows * torch.sqrt(1.0 / power[other].clamp_min(1e-10)) * (power[other] > 1e-8)
    snr = torch.empty(b, 1, device=device).uniform_(*snr_db, generator=generator)
    return _add_at_snr(x, babble, babble.pow(2).mean(1, keepdim=True).clamp_min(1e-12), power, snr, prob, generator)


def _add_at_snr(x: torch.Tensor, noise: torch.Tensor, noise_power: torch.Tensor, level: torch.Tensor,
                snr: torch.Tensor, prob: float, generator: torch.Generator | None) -> torch.Tensor:
    """``x`` with ``noise`` (``(B, N)``, of power ``noise_power``) added to a ``prob`` share of the rows,
    scaled so that ``level`` is ``snr`` dB above it (all ``(B, 1)``); a row of level 0 gets none."""
    scale = torch.sqrt(level / noise_power / (10.0 ** (snr / 10.0)))
    use = torch.rand(x.shape[0], 1, device=x.device, generator=generator) < prob
    return x + use * scale * noise


class RoomReverb:
    """Plays a random share of a batch through rooms drawn from a bank of ``count`` impulse responses
    (reverberation time and distance uniform in the given ranges), by FFT convolution; the direct sound
    keeps its time and level, so a word stays where it was in the clip."""

    def __init__(self, count: int, rt60: tuple[float, float], distance: tuple[float, float], seed: int = 0,
                 kind: str = "diffuse") -> None:
        import numpy as np

        from ..data.rooms import impulse_response

        rng = np.random.default_rng(seed)
        responses = [impulse_response(float(rng.uniform(*rt60)), float(rng.uniform(*distance)), rng, kind)
                     for _ in range(count)]
        self.bank = torch.zeros(count, max(len(h) for h in responses))
        for i, h in enumerate(responses):
            self.bank[i, : len(h)] = torch.from_numpy(h)

    def __call__(self, x: torch.Tensor, prob: float, generator: torch.Generator | None = None) -> torch.Tensor:
        if prob <= 0:
            return x
        b, n = x.shape
        use = torch.rand(b, device=x.device, generator=generator) < prob
        if not bool(use.any()):
            return x
        if self.bank.device != x.device:
            self.bank = self.bank.to(x.device)
        pick = torch.randint(0, self.bank.shape[0], (int(use.sum()),), device=x.device, generator=generator)
        size = n + self.bank.shape[1] - 1
        wet = torch.fft.irfft(torch.fft.rfft(x[use], size) * torch.fft.rfft(self.bank[pick], size), size)[:, :n]
        out = x.clone()
        out[use] = wet.to(x.dtype)
        return out


class NoiseMixer:
    """Mixes stretches of the given noise recordings into clips at a random SNR."""

    def __init__(self, noises: list[torch.Tensor], clip_samples: int) -> None:
        usable = [n.float() for n in noises if n.numel() >= clip_samples]
        self.noise = torch.cat(usable) if usable else None
        self.clip_samples = clip_samples

    def __call__(self, x: torch.Tensor, prob: float, snr_db: tuple[float, float],
                 generator: torch.Generator | None = None, reference: str = "clip") -> torch.Tensor:
        """``reference``: the signal power the SNR is relative to, the whole clip's (``"clip"``) or its
        speech frames' (``"speech"``, see :func:`speech_power`)."""
        if self.noise is None or prob <= 0:
            return x
        if self.noise.device != x.device:
            self.noise = self.noise.to(x.device)
        b, n = x.shape
        starts = torch.randint(0, self.noise.numel() - n + 1, (b, 1), device=x.device, generator=generator)
        segments = self.noise[starts + torch.arange(n, device=x.device).unsqueeze(0)]
        snr = torch.empty(b, 1, device=x.device).uniform_(*snr_db, generator=generator)
        signal_power = x.pow(2).mean(1, keepdim=True)
        if reference == "speech":
            signal_power = torch.where(signal_power > 1e-8, speech_power(x), signal_power)
        noise_power = segments.pow(2).mean(1, keepdim=True).clamp_min(1e-12)
        # Silent clips (the silence class) get the noise at a random level of its own.
        level = torch.where(signal_power > 1e-8, signal_power,
                            noise_power * torch.empty_like(snr).uniform_(0.0, 1.0, generator=generator))
        return _add_at_snr(x, segments, noise_power, level, snr, prob, generator)


class AddNoise:
    """A waveform transform for evaluation under noise: each 1-D clip gets a random stretch of
    ``noises`` at exactly ``snr_db`` dB SNR over its speech (:func:`speech_power`), reproducibly
    from ``seed`` when clips come in the same order."""

    def __init__(self, noises: list[torch.Tensor], snr_db: float, seed: int = 0, clip_samples: int = 16000) -> None:
        self.mixer = NoiseMixer(noises, clip_samples)
        if self.mixer.noise is None:
            raise ValueError(f"no noise recording of at least {clip_samples} samples to mix in")
        self.snr_db = float(snr_db)
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.mixer(x[None], 1.0, (self.snr_db, self.snr_db), self.generator, reference="speech")[0]


def spectral_blur(features: torch.Tensor, prob: float, max_passes: int,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Blur ``(B, 1, F, T)`` log-Mel features along frequency: for a ``prob`` share of clips, 1 to
    ``max_passes`` passes of a [1 2 1] / 4 kernel (edges replicated); the rest are returned as they are."""
    if prob <= 0:
        return features
    b = features.shape[0]
    passes = torch.randint(1, max_passes + 1, (b,), device=features.device, generator=generator)
    passes = torch.where(torch.rand(b, device=features.device, generator=generator) < prob, passes, 0)
    out = features
    kernel = torch.tensor([0.25, 0.5, 0.25], device=features.device, dtype=features.dtype).view(1, 1, 3, 1)
    for k in range(1, int(passes.max()) + 1):
        blurred = torch.nn.functional.conv2d(torch.nn.functional.pad(out, (0, 0, 1, 1), mode="replicate"), kernel)
        out = torch.where((passes >= k).view(b, 1, 1, 1), blurred, out)
    return out


def vtl_warp(features: torch.Tensor, prob: float, scale: tuple[float, float], fmin: float, fmax: float,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Vocal-tract length perturbation of ``(B, 1, F, T)`` log-Mel features (Jaitly & Hinton, 2013): for a
    ``prob`` share of clips, the spectrum scaled along frequency by a factor drawn from ``scale``, each
    bin reading the (linearly interpolated) bin of its centre frequency divided by the factor; bins
    beyond the edges repeat the edge. The bins are the front end's: ``F`` centres equally spaced on
    Slaney's Mel scale between ``fmin`` and ``fmax``."""
    if prob <= 0:
        return features
    b, _, f, _ = features.shape
    device = features.device
    factor = torch.empty(b, device=device).uniform_(*scale, generator=generator)
    factor = torch.where(torch.rand(b, device=device, generator=generator) < prob, factor, torch.ones_like(factor))
    # the bins' centres on the Mel scale nnAudio builds the filterbank on (Slaney's, librosa's htk=False)
    lo, hi = hz_to_mel(np.array([float(fmin), float(fmax)]))
    step = (hi - lo) / (f + 1)
    centres_hz = mel_to_hz(lo + step * np.arange(1, f + 1))
    warped_hz = centres_hz[None] / factor.double().cpu().numpy()[:, None]
    source = torch.from_numpy((hz_to_mel(warped_hz) - lo) / step - 1)  # (B, F) bin positions
    source = source.clamp(0, f - 1).to(device=device, dtype=features.dtype)
    i0 = source.floor().long().clamp(max=f - 2)
    frac = (source - i0).view(b, 1, f, 1)
    lower = features.gather(2, i0.view(b, 1, f, 1).expand_as(features))
    upper = features.gather(2, (i0 + 1).view(b, 1, f, 1).expand_as(features))
    return torch.lerp(lower, upper, frac)


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
