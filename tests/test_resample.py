"""StreamResampler: chunked output equals scipy's upfirdn of the whole signal; tones survive, aliases don't."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import resample_poly, upfirdn

from conftest import chirp, noise, tone
from spotter.resample import StreamResampler

RATES = [48000, 44100, 22050, 8000]


def run_chunked(resampler: StreamResampler, x: np.ndarray, sizes) -> np.ndarray:
    out, i, k = [], 0, 0
    while i < x.size:
        n = sizes[k % len(sizes)]
        out.append(resampler.process(x[i:i + n]))
        i, k = i + n, k + 1
    return np.concatenate(out)


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_chunked_output_equals_upfirdn_of_whole_signal(rate, seed):
    rng = np.random.default_rng(seed)
    x = (chirp(50, rate / 2.2, seconds=0.5, sr=rate) + noise(0.5, amp=0.2, seed=seed, sr=rate)).astype(np.float32)
    sizes = list(rng.integers(1, 2000, size=50))
    r = StreamResampler(rate)
    y = run_chunked(r, x, sizes)
    expected = upfirdn(r.h, x, r.up, r.down)
    assert y.dtype == np.float32
    assert y.size == -(-x.size * r.up // r.down)  # every output whose newest input has arrived
    np.testing.assert_allclose(y, expected[: y.size], rtol=0, atol=2e-7)


@settings(max_examples=30, deadline=None)
@given(rate=st.sampled_from(RATES), sizes=st.lists(st.integers(0, 700), min_size=1, max_size=20).filter(any))
def test_any_chunking_gives_the_same_output(rate, sizes):
    x = noise(0.1, amp=0.3, seed=3, sr=rate)
    r = StreamResampler(rate)
    whole = r.process(x)
    r.reset()
    np.testing.assert_allclose(run_chunked(r, x, sizes), whole, rtol=0, atol=2e-7)


def test_filter_is_resample_polys():
    """Same filter as scipy's resample_poly: with its delay removed, upfirdn reproduces it."""
    x = tone(1000, seconds=0.1, sr=44100)
    r = StreamResampler(44100)
    delay_in = r.delay_seconds * r.up * r.rate_in  # in upsampled samples
    assert delay_in == (len(r.h) - 1) / 2 and delay_in % r.down == 0
    full = upfirdn(r.h, x, r.up, r.down)[int(delay_in) // r.down:]
    expected = resample_poly(x, r.up, r.down)
    np.testing.assert_allclose(full[: expected.size], expected, atol=1e-6)


def peak_hz_and_level_db(y: np.ndarray, amp: float) -> tuple[float, float]:
    spectrum = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    peak = np.fft.rfftfreq(y.size, 1 / 16000)[spectrum.argmax()]
    return peak, 20 * np.log10(np.sqrt(np.mean(y ** 2)) / (amp / np.sqrt(2)))


def test_tone_passes_and_alias_band_is_attenuated():
    r = StreamResampler(48000)
    settle = 200  # skip the filter's start-up transient
    peak, level = peak_hz_and_level_db(r.process(tone(1000, amp=0.5, sr=48000))[settle:], 0.5)
    assert abs(peak - 1000) < 2 and abs(level) < 0.1
    r.reset()
    # 12 kHz would alias to 4 kHz; resample_poly's Kaiser(5.0) filter stops it by ~68 dB.
    _, level = peak_hz_and_level_db(r.process(tone(12000, amp=0.5, sr=48000))[settle:], 0.5)
    assert level < -60


def test_upsampling_keeps_a_tone():
    r = StreamResampler(8000)
    peak, level = peak_hz_and_level_db(r.process(tone(440, amp=0.5, sr=8000))[200:], 0.5)
    assert abs(peak - 440) < 2 and abs(level) < 0.1


def test_identity_and_delay():
    r = StreamResampler(16000)
    x = tone(440, seconds=0.01)
    y = r.process(x)
    assert np.array_equal(y, x) and y is not x and r.delay_seconds == 0
    assert StreamResampler(48000).delay_seconds == pytest.approx(30 / 48000)
    with pytest.raises(ValueError):
        StreamResampler(0)
