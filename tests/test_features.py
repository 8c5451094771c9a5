"""The nnAudio log-Mel front end against independent references, and its trainable bases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spotter.config import FrontendConfig
from spotter.features import LogMel

CFG = FrontendConfig()
# Stated tolerances (nnAudio computes in float32, the references in float64):
# every log-Mel value within 1e-3 (natural log units; measured max 1.9e-4, on a
# chirp), and Mel power within 1e-5 of the clip's peak power (measured 4e-7).
LOG_TOL = 1e-3
POWER_TOL = 1e-5


def slaney_mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Slaney-style Mel filterbank written from the formulas (Auditory Toolbox)."""

    def hz_to_mel(f):
        f = np.asarray(f, dtype=np.float64)
        lin = 3.0 * f / 200.0
        log = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
        return np.where(f >= 1000.0, log, lin)

    def mel_to_hz(m):
        m = np.asarray(m, dtype=np.float64)
        lin = 200.0 * m / 3.0
        log = 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0))
        return np.where(m >= 15.0, log, lin)

    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    freqs = np.linspace(0.0, sr / 2.0, n_fft // 2 + 1)
    bank = np.zeros((n_mels, freqs.size))
    for i in range(n_mels):
        lo, mid, hi = edges[i], edges[i + 1], edges[i + 2]
        rising = (freqs - lo) / (mid - lo)
        falling = (hi - freqs) / (hi - mid)
        bank[i] = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (hi - lo))
    return bank


def reference_log_mel(x: np.ndarray) -> np.ndarray:
    """numpy framing + rfft + hand-written Slaney filterbank: an independent log-Mel."""
    x = np.pad(x.astype(np.float64), (CFG.n_fft // 2, CFG.n_fft // 2))
    n_frames = 1 + (x.size - CFG.n_fft) // CFG.hop_length
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(CFG.win_length) / CFG.win_length)  # periodic Hann
    frames = np.stack([x[i * CFG.hop_length: i * CFG.hop_length + CFG.n_fft] for i in range(n_frames)])
    power = np.abs(np.fft.rfft(frames * window, n=CFG.n_fft, axis=1)) ** 2  # (frames, bins)
    bank = slaney_mel_filterbank(CFG.sample_rate, CFG.n_fft, CFG.n_mels, 0.0, CFG.sample_rate / 2)
    return bank @ power.T  # (mels, frames) power


def nnaudio_power(x: np.ndarray) -> np.ndarray:
    frontend = LogMel()
    with torch.no_grad():
        logmel = frontend(torch.from_numpy(x)[None])[0, 0].double().numpy()
    return np.exp(logmel) - CFG.log_offset, logmel


def test_shape_is_batch_channel_mels_frames():
    out = LogMel()(torch.randn(3, 16000) * 0.1)
    assert out.shape == (3, 1, 40, 101)


@pytest.mark.parametrize("name", ["tone_440", "tone_3k", "chirp", "noise", "tone_plus_noise"])
def test_log_mel_matches_numpy_reference(signals, name):
    x = signals[name]
    ref_power = reference_log_mel(x)
    power, logmel = nnaudio_power(x)
    assert logmel.shape == ref_power.shape == (40, 101)
    assert ref_power.max() > 0.1, "a real signal, not silence"
    diff = np.abs(logmel - np.log(ref_power + CFG.log_offset))
    assert diff.max() < LOG_TOL, f"max log-Mel difference {diff.max():.2e}"
    assert np.abs(power - ref_power).max() / ref_power.max() < POWER_TOL


@pytest.mark.slow  # the first call compiles librosa's numba code: about 20 s
@pytest.mark.parametrize("name", ["tone_440", "chirp", "noise"])
def test_log_mel_matches_librosa(signals, name):
    librosa = pytest.importorskip("librosa")
    x = signals[name]
    padded = np.pad(x, (CFG.n_fft // 2, CFG.n_fft // 2))
    ref = librosa.feature.melspectrogram(
        y=padded.astype(np.float64), sr=CFG.sample_rate, n_fft=CFG.n_fft, hop_length=CFG.hop_length,
        win_length=CFG.win_length, window="hann", center=False, power=2.0, n_mels=CFG.n_mels,
        htk=False, norm="slaney",
    )
    _, logmel = nnaudio_power(x)
    diff = np.abs(logmel - np.log(ref + CFG.log_offset))
    assert diff.max() < LOG_TOL


def test_tone_energy_lands_in_the_right_mel_bin(signals):
    _, logmel = nnaudio_power(signals["tone_440"])
    bank = slaney_mel_filterbank(CFG.sample_rate, CFG.n_fft, CFG.n_mels, 0.0, 8000.0)
    bin_440 = int(np.argmin(np.abs(np.linspace(0, 8000, 241) - 440)))
    assert logmel[:, 50].argmax() == bank[:, bin_440].argmax()


def test_parameters_keep_nnaudio_names_and_are_buffers_when_frozen():
    frozen = LogMel()
    assert [n for n, _ in frozen.named_parameters()] == []
    buffers = dict(frozen.named_buffers())
    for name in ("mel.mel_basis", "mel.stft.wsin", "mel.stft.wcos"):
        assert name in buffers and not buffers[name].requires_grad
    trainable = LogMel(trainable_mel=True, trainable_stft=True, mel_param="matrix")
    params = dict(trainable.named_parameters())
    assert params["mel.mel_basis"].shape == (40, 241)
    assert params["mel.stft.wsin"].shape == params["mel.stft.wcos"].shape == (241, 1, 480)
    log_domain = LogMel(trainable_mel=True)  # the default parametrisation: log-domain weights, nnAudio's basis kept
    assert [n for n, _ in log_domain.named_parameters()] == ["mel_log"]
    assert log_domain.mel_log.shape == (40, 241) and "mel.mel_basis" in dict(log_domain.named_buffers())


def test_log_domain_filterbank_starts_as_the_fixed_one():
    fixed, trainable = LogMel(), LogMel(trainable_mel=True)
    torch.testing.assert_close(trainable.mel_matrix(), fixed.mel_matrix(), rtol=1e-5, atol=1e-9)
    x = torch.randn(2, 16000) * 0.1
    torch.testing.assert_close(trainable(x), fixed(x), rtol=1e-5, atol=1e-5)


def test_log_domain_filters_keep_their_band_sign_and_area():
    """However far training pushes the log-domain weights, every filter stays non-negative, zero outside
    its initial band and of its initial area (what the raw matrix cannot promise: its weights went
    negative and 140x their size in training)."""
    front = LogMel(trainable_mel=True)
    initial = LogMel().mel_matrix()  # nnAudio's fixed filterbank: the bands and areas to keep
    with torch.no_grad():
        front.mel_log.add_(3.0 * torch.randn_like(front.mel_log))  # far larger than training moves them
    moved = front.mel_matrix().detach()
    assert (moved >= 0).all()
    assert (moved[initial == 0] == 0).all(), "a filter reached outside its band"
    torch.testing.assert_close(moved.sum(dim=1), initial.sum(dim=1), rtol=1e-5, atol=0)
    assert (moved - initial).abs().max() > 0.5 * initial.max(), "the shapes did change"
    logmel = front(torch.randn(2, 16000) * 0.1)
    assert torch.isfinite(logmel).all()


def test_band_filters_start_as_the_fixed_ones_and_stay_triangles_near_their_place():
    """Centre-and-bandwidth filters are the fixed filterbank at zero; however far training pushes the 80
    numbers, each filter stays a non-negative triangle of its Slaney area, its peak within one filter spacing
    of where it was, and at least one frequency bin wide (a filter that sees no bin could never train again)."""
    fixed, front = LogMel(), LogMel(trainable_mel=True, mel_param="band")
    assert [n for n, _ in front.named_parameters()] == ["mel_centre", "mel_width"]
    initial = fixed.mel_matrix()
    torch.testing.assert_close(front.mel_matrix(), initial, rtol=1e-5, atol=1e-9)
    x = torch.randn(2, 16000) * 0.1
    torch.testing.assert_close(front(x), fixed(x), rtol=1e-5, atol=1e-5)
    peaks = initial.argmax(dim=1)
    for push in (10.0, -10.0):
        with torch.no_grad():
            front.mel_centre.fill_(push)
            front.mel_width.copy_(push * torch.linspace(-1, 1, 40))  # narrow and wide at both ends
        moved = front.mel_matrix().detach()
        assert (moved >= 0).all() and ((moved > 0).sum(dim=1) >= 1).all()
        spacing = torch.diff(peaks.double()).clamp_min(1)
        shift = (moved.argmax(dim=1) - peaks).abs()[1:-1].double()
        assert (shift <= torch.maximum(spacing[:-1], spacing[1:]) + 1).all(), "a peak ran past its neighbour"
        assert (moved - initial).abs().max() > 0.2 * initial.max(), "the filters did move"
        assert torch.isfinite(front(x)).all()
    front.mel_centre.data.zero_(), front.mel_width.data.zero_()
    front(x).sum().backward()
    assert front.mel_centre.grad.abs().sum() > 0 and front.mel_width.grad.abs().sum() > 0


def test_stft_window_starts_as_the_fixed_one_and_keeps_the_fourier_basis():
    """The trainable window (``stft_param="window"``) is the fixed front end at zero; however far training pushes
    its 480 log gains, every kernel stays its bin's sinusoid under one common window of the Hann window's sum, and
    the gains train."""
    fixed, front = LogMel(), LogMel(trainable_stft=True, stft_param="window")
    assert [n for n, _ in front.named_parameters()] == ["stft_window_log"]
    x = torch.randn(2, 16000) * 0.1
    torch.testing.assert_close(front(x), fixed(x), rtol=1e-5, atol=1e-5)
    hann = fixed.mel.stft.window_mask.flatten().float()
    inside = hann > 1e-3
    with torch.no_grad():
        front.stft_window_log.add_(torch.randn(480))  # far larger than training moves it
    (wsin, wcos), (sin0, cos0) = front.stft_kernels(), fixed.stft_kernels()
    gain = torch.where(inside, wcos[0, 0] / cos0[0, 0], 0.0)  # bin 0's cosine kernel is the window itself
    for moved, initial in ((wsin, sin0), (wcos, cos0)):  # one gain per sample, the same for every kernel
        torch.testing.assert_close(moved[..., inside], (initial * gain)[..., inside], rtol=1e-4, atol=1e-6)
    window = (gain * hann)[inside]
    torch.testing.assert_close(window.sum(), hann.sum(), rtol=1e-4, atol=0)
    assert (window / hann[inside]).max() > 2 * (window / hann[inside]).min(), "the window did change"
    out = front(x)
    assert torch.isfinite(out).all() and (out - fixed(x)).abs().max() > 0.1
    out.sum().backward()
    assert front.stft_window_log.grad.abs().sum() > 0


def test_log_domain_gradient_is_a_share_of_the_filter_output():
    """The log-domain gradient does not grow with small weights: d loss / d theta is bounded by the
    gradient on the log-Mel outputs, unlike the raw matrix's, which is divided by the filter's output."""
    x = torch.randn(4, 16000) * 0.01
    grads = {}
    for param in ("log", "matrix"):
        front = LogMel(trainable_mel=True, mel_param=param)
        front(x).sum().backward()
        tensor = front.mel_log if param == "log" else front.mel.mel_basis
        grads[param] = tensor.grad.abs().max().item()
    frames = 101 * 4
    assert grads["log"] <= frames  # each frame's share of a filter's output is at most 1
    assert grads["matrix"] > 1000 * grads["log"]


def test_trainable_and_frozen_state_dicts_cross_load():
    trained = LogMel(trainable_mel=True, trainable_stft=True, mel_param="matrix")
    frozen = LogMel()
    frozen.load_state_dict(trained.state_dict())
    x = torch.randn(2, 16000) * 0.1
    # The trainable STFT adds 1e-8 under its square root (nnAudio's guard against NaN gradients).
    torch.testing.assert_close(frozen(x), trained(x), rtol=1e-5, atol=1e-5)
