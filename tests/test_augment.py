"""Augmentation does what it says, on real signals."""

import numpy as np
import torch

from spotter.training.augment import NoiseMixer, random_gain, spec_augment, time_shift

from conftest import noise, tone


def test_time_shift_moves_each_clip_within_bounds_and_zero_fills():
    x = torch.zeros(64, 16000)
    x[:, 8000] = 1.0  # an impulse in the middle
    y = time_shift(x, 1600, torch.Generator().manual_seed(0))
    positions = y.argmax(1) - 8000
    assert positions.abs().max() <= 1600 and positions.unique().numel() > 30
    assert torch.all(y.sum(1) == 1.0)  # nothing else appears, nothing duplicated


def test_noise_mixing_hits_the_requested_snr():
    clean = torch.from_numpy(np.stack([tone(440 + 10 * i) for i in range(32)]))
    mixer = NoiseMixer([torch.from_numpy(noise(5.0, amp=0.3, seed=3))], 16000)
    noisy = mixer(clean, prob=1.0, snr_db=(10.0, 10.0), generator=torch.Generator().manual_seed(0))
    added = noisy - clean
    snr = 10 * torch.log10(clean.pow(2).mean(1) / added.pow(2).mean(1))
    torch.testing.assert_close(snr, torch.full_like(snr, 10.0), atol=0.01, rtol=0)
    untouched = mixer(clean, prob=0.0, snr_db=(10.0, 10.0))
    assert torch.equal(untouched, clean)


def test_silent_clips_receive_noise():
    mixer = NoiseMixer([torch.from_numpy(noise(3.0, seed=4))], 16000)
    out = mixer(torch.zeros(8, 16000), prob=1.0, snr_db=(0.0, 0.0), generator=torch.Generator().manual_seed(1))
    assert (out.pow(2).mean(1) > 0).all()


def test_random_gain_range():
    x = torch.from_numpy(np.stack([tone(300)] * 200))
    y = random_gain(x, -18.0, 6.0, torch.Generator().manual_seed(0))
    ratio_db = 20 * torch.log10(y.abs().amax(1) / x.abs().amax(1))
    assert ratio_db.min() >= -18.0 - 1e-4 and ratio_db.max() <= 6.0 + 1e-4 and ratio_db.std() > 3


def test_spec_augment_masks_bands_with_the_clip_mean():
    feats = torch.randn(16, 1, 40, 101)
    out = spec_augment(feats, 2, 7, 2, 15, torch.Generator().manual_seed(0))
    changed = out != feats
    assert changed.any()
    fill = feats.mean(dim=(2, 3), keepdim=True).expand_as(feats)
    assert torch.equal(out[changed], fill[changed])
    # a frequency mask spans whole rows: some row is fully masked in some clip
    assert (changed.all(dim=3)).any() or (changed.all(dim=2)).any()
    assert changed.float().mean() < 0.6
