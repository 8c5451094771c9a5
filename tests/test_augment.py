"""Augmentation does what it says, on real signals."""

import numpy as np
import torch

import pytest

from spotter.training.augment import (AugmentConfig, NoiseMixer, batch_babble, parse_overrides, random_filter, random_gain,
                                      spec_augment, spectral_blur, speed_perturb, time_shift, vtl_warp)

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


def test_speech_referenced_snr_is_measured_over_the_word_not_the_clip():
    # A 0.3 s tone burst ("a word") in a 1 s clip: over the whole clip its power is 10*log10(0.3) = -5.2 dB
    # lower than over the word, so clip-referenced mixing at 10 dB leaves the word itself at ~15 dB.
    word = torch.zeros(16, 16000)
    word[:, 4800:9600] = torch.from_numpy(tone(700.0, seconds=0.3))  # on 10 ms frame boundaries
    noise_rec = torch.from_numpy(noise(5.0, amp=0.3, seed=5))
    speech = slice(4800, 9600)

    def snr_over_word(reference):
        mixer = NoiseMixer([noise_rec], 16000)
        noisy = mixer(word, prob=1.0, snr_db=(10.0, 10.0), generator=torch.Generator().manual_seed(0),
                      reference=reference)
        added = noisy - word
        return 10 * torch.log10(word[:, speech].pow(2).mean(1) / added.pow(2).mean(1))

    torch.testing.assert_close(snr_over_word("speech"), torch.full((16,), 10.0), atol=0.05, rtol=0)
    torch.testing.assert_close(snr_over_word("clip"), torch.full((16,), 10.0 - 10 * np.log10(0.3)), atol=0.05, rtol=0)


def test_snr_reference_is_validated():
    assert parse_overrides(["snr_reference=speech"]) == {"snr_reference": "speech"}
    with pytest.raises(ValueError, match="snr_reference 'word' must be one of clip, speech"):
        parse_overrides(["snr_reference=word"])


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


def _peak_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / 16000)[spectrum.argmax()])


def test_speed_perturb_scales_frequency_and_duration_by_the_rate():
    t = np.arange(16000) / 16000
    burst = (np.sin(2 * np.pi * 1000 * t) * ((t > 0.3) & (t < 0.7))).astype(np.float32)
    x = torch.from_numpy(burst)[None].repeat(3, 1)
    for rate in (0.85, 1.0, 1.15):
        y = speed_perturb(x, rate, rate)[0].numpy()
        active = np.flatnonzero(np.abs(y) > 0.5)
        assert _peak_hz(y) == pytest.approx(1000 * rate, abs=3)
        assert (active[-1] - active[0]) / 16000 == pytest.approx(0.4 / rate, abs=0.002)
        assert abs(active.mean() / 16000 - 0.5) < 0.002  # about the centre: the word stays in the window
    faster = speed_perturb(torch.randn(2, 16000), 1.15, 1.15)
    assert (faster[:, :1000] == 0).all() and (faster[:, -1000:] == 0).all()  # zero filled, nothing wraps
    rates = speed_perturb(x.repeat(3, 1), 0.85, 1.15, generator=torch.Generator().manual_seed(0))
    peaks = [_peak_hz(r.numpy()) for r in rates]
    assert all(850 - 3 <= p <= 1150 + 3 for p in peaks) and len(set(peaks)) >= 7  # a rate per clip


def test_random_filter_eq_is_smooth_bounded_and_band_limit_cuts():
    gen = torch.Generator().manual_seed(0)
    x = torch.from_numpy(np.stack([noise(1.0, seed=s) for s in range(16)])).float()
    y = random_filter(x, 16000, eq_db=8.0, lowpass_prob=0.0, lowpass_hz=(3400, 7000), generator=gen)
    gain_db = 20 * np.log10(np.abs(np.fft.rfft(y.numpy(), axis=1)) / np.abs(np.fft.rfft(x.numpy(), axis=1)))
    assert np.abs(gain_db).max() <= 8.0 + 1e-3 and np.abs(gain_db).max(1).mean() > 2.0
    assert np.abs(np.diff(gain_db, axis=1)).max() < 0.05  # smooth: no more than 0.05 dB per 1 Hz bin
    assert (np.abs(gain_db.mean(1)) < 4).all()  # colour, not level (random_gain does level)
    cut = random_filter(x, 16000, eq_db=0.0, lowpass_prob=1.0, lowpass_hz=(4000, 4000), generator=gen)
    power = np.abs(np.fft.rfft(cut.numpy().astype(np.float64), axis=1)) ** 2
    freqs = np.fft.rfftfreq(16000, 1 / 16000)
    assert power[:, freqs > 4300].sum() < 1e-6 * power.sum()
    assert power[:, freqs < 3900].sum() == pytest.approx((np.abs(np.fft.rfft(x.numpy(), axis=1)) ** 2)[:, freqs < 3900].sum(), rel=1e-4)
    some = random_filter(x, 16000, eq_db=0.0, lowpass_prob=0.5, lowpass_hz=(4000, 4000), generator=gen)
    assert 0 < int((some - x).abs().amax(1).gt(1e-3).sum()) < 16
    assert torch.equal(random_filter(x, 16000, 0.0, 0.0, (4000, 4000)), x)  # off is the identity


def test_augmentation_settings_parse_and_refuse_bad_values():
    assert parse_overrides(["speed=0.85,1.15", "eq_db=6", "lowpass_prob=0.1"]) == \
        {"speed": (0.85, 1.15), "eq_db": 6.0, "lowpass_prob": 0.1}
    assert parse_overrides({"speed": [0.9, 1.1], "time_masks": 3}) == {"speed": (0.9, 1.1), "time_masks": 3}
    assert parse_overrides(None) == {}
    for bad, message in ((["volume=2"], "KEY one of"), (["speed=1.2"], "LOW,HIGH"), (["speed=1.2,0.9"], "low <= high"),
                         (["eq_db=loud"], "a number"), (["eq_db"], "KEY=VALUE"), (["lowpass_prob=2"], r"\[0, 1\]"),
                         (["blur_prob=-0.1"], r"\[0, 1\]"), (["blur_passes=0"], "at least 1")):
        with pytest.raises(ValueError, match=message):
            parse_overrides(bad)
    assert AugmentConfig().speed == (1.0, 1.0)


def test_spectral_blur_widens_a_peak_along_frequency_only_and_keeps_its_mass():
    x = torch.zeros(64, 1, 40, 6)
    x[:, :, 20, :] = 1.0
    gen = torch.Generator().manual_seed(1)
    y = spectral_blur(x, prob=0.5, max_passes=3, generator=gen)
    blurred = (y[:, 0, 20, 0] < 1.0)
    assert 16 < int(blurred.sum()) < 48  # about half the clips
    assert torch.allclose(y.sum(dim=2), x.sum(dim=2))  # mass kept in every frame
    assert torch.equal(y[~blurred], x[~blurred])
    widths = {int((clip[0, :, 0] > 0).sum()) for clip in y[blurred]}
    assert widths <= {3, 5, 7} and len(widths) > 1  # 1 to 3 passes of a 3-tap kernel
    assert torch.equal(y[:, :, :, 0], y[:, :, :, 5])  # time untouched
    assert spectral_blur(x, prob=0.0, max_passes=3) is x


def test_vtl_warp_moves_a_tone_to_the_bin_of_the_scaled_frequency_in_the_share_asked():
    from spotter.features import LogMel

    frontend = LogMel().eval()
    cfg = frontend.config
    with torch.no_grad():
        low, high, higher = (frontend(torch.from_numpy(tone(f))[None]) for f in (900.0, 900.0 * 1.12, 2500.0))
        harmonic = frontend(torch.from_numpy(tone(2500.0 / 1.12))[None])
    fmax = cfg.fmax or cfg.sample_rate / 2

    def peak(features):
        return int(features[0, 0, :, 50].argmax())

    for src, target, factor in ((low, high, 1.12), (harmonic, higher, 1.12), (high, low, 1 / 1.12)):
        warped = vtl_warp(src, 1.0, (factor, factor), cfg.fmin, fmax)
        assert peak(warped) == peak(target) != peak(src)  # below and above 1 kHz, up and down
    assert torch.allclose(vtl_warp(low, 1.0, (1.0, 1.0), cfg.fmin, fmax), low, atol=1e-4)  # scale 1: the same bins
    batch = low.repeat(64, 1, 1, 1)
    warped = vtl_warp(batch, 0.5, (1.12, 1.12), cfg.fmin, fmax, generator=torch.Generator().manual_seed(0))
    moved = (warped - batch).abs().amax(dim=(1, 2, 3)) > 1e-3
    assert 16 < int(moved.sum()) < 48 and torch.equal(warped[~moved], batch[~moved])  # about half the clips
    assert vtl_warp(batch, 0.0, (0.9, 1.1), cfg.fmin, fmax) is batch
    with pytest.raises(ValueError, match="warp"):
        AugmentConfig(warp=(0.3, 1.1))
    assert parse_overrides(["warp_prob=0.5", "warp=0.9,1.1"]) == {"warp_prob": 0.5, "warp": (0.9, 1.1)}


def test_room_reverb_rings_on_after_a_burst_in_the_share_of_clips_asked_and_keeps_the_onset():
    from spotter.training.augment import RoomReverb

    t = torch.arange(16000) / 16000
    burst = torch.where((t >= 0.3) & (t < 0.4), torch.sin(2 * torch.pi * 440 * t), torch.zeros(()))
    x = burst.repeat(64, 1)
    rooms = RoomReverb(16, (0.3, 0.8), (1.0, 3.0), seed=0)
    assert rooms.bank.shape[0] == 16 and int(1.2 * 0.3 * 16000) < rooms.bank.shape[1] <= int(1.2 * 0.8 * 16000)
    gen = torch.Generator().manual_seed(0)
    wet = rooms(x, 0.5, gen)
    tail = wet[:, 8000:9600].pow(2).mean(1).sqrt()  # 0.1 s after the burst ended
    reverberant = tail > 1e-3
    assert 16 < int(reverberant.sum()) < 48  # about half the batch
    assert torch.equal(wet[~reverberant], x[~reverberant])  # the rest untouched
    assert wet[reverberant, :4800].abs().max() < 1e-4  # nothing before the burst starts
    assert torch.allclose(wet[reverberant, 4800], x[reverberant, 4800], atol=1e-4)  # the direct sound, on time
    assert torch.equal(rooms(x, 0.0, gen), x)
    again = RoomReverb(16, (0.3, 0.8), (1.0, 3.0), seed=0)
    assert torch.equal(again.bank, rooms.bank)


def test_training_plays_clips_through_rooms_only_when_asked():
    from spotter.training.module import KWSModule

    assert KWSModule(model="linear").rooms is None
    module = KWSModule(model="linear", augment_config={"reverb_prob": 1.0, "gain_db": (0.0, 0.0), "shift_ms": 0.0})
    t = torch.arange(16000) / 16000
    x = torch.where(t < 0.2, torch.sin(2 * torch.pi * 300 * t), torch.zeros(())).repeat(8, 1)
    wet = module.augment_waveforms(x)
    assert (wet[:, 4800:].pow(2).mean(1) > 1e-6).all()  # every clip rings on in its room
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        parse_overrides(["reverb_prob=2"])
    assert parse_overrides(["reverb_rt60=0.3,0.6"]) == {"reverb_rt60": (0.3, 0.6)}


def test_training_warps_the_log_mel_image_only_when_asked():
    from spotter.training.module import KWSModule

    no_masks = {"freq_masks": 0, "time_masks": 0}
    x = torch.from_numpy(tone(900.0)).repeat(4, 1)
    plain = KWSModule(model="linear", augment_config=no_masks)
    warped = KWSModule(model="linear", augment_config={**no_masks, "warp_prob": 1.0, "warp": (1.12, 1.12)})
    with torch.no_grad():
        features = plain.model.frontend(x)
        higher = plain.model.frontend(torch.from_numpy(tone(900.0 * 1.12))[None])
    assert torch.equal(plain.augment_features(features), features)
    peaks = warped.augment_features(features)[:, 0, :, 50].argmax(dim=1)
    assert (peaks == int(higher[0, 0, :, 50].argmax())).all() and (peaks != int(features[0, 0, :, 50].argmax())).all()


def test_batch_babble_mixes_other_clips_at_the_snr_asked_and_leaves_silence_alone():
    freqs = [300.0 + 200.0 * i for i in range(8)]
    clean = torch.from_numpy(np.stack([tone(f) for f in freqs] + [np.zeros(16000, np.float32)] * 2))
    mixed = batch_babble(clean, 1.0, (10.0, 10.0), talkers=3, generator=torch.Generator().manual_seed(0))
    added = mixed - clean
    snr = 10 * torch.log10(clean[:8].pow(2).mean(1) / added[:8].pow(2).mean(1))
    torch.testing.assert_close(snr, torch.full_like(snr, 10.0), atol=0.01, rtol=0)
    assert torch.equal(mixed[8:], clean[8:])  # the silence class stays silent
    spectrum = torch.fft.rfft(added[:8]).abs()  # 1 Hz bins: each clip hears other tones, never its own
    for i, f in enumerate(freqs):
        others = [g for g in freqs if g != f]
        assert spectrum[i, int(f)] < 0.01 * spectrum[i, [int(g) for g in others]].max()
    assert torch.equal(batch_babble(clean, 0.0, (10.0, 10.0), talkers=3), clean)
    assert parse_overrides(["babble_prob=0.5", "babble_snr_db=0,15", "babble_talkers=6"]) == {
        "babble_prob": 0.5, "babble_snr_db": (0.0, 15.0), "babble_talkers": 6}
    with pytest.raises(ValueError, match="babble_talkers at least 1"):
        parse_overrides(["babble_talkers=0"])
