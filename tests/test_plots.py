"""The pictures: `spotter plot` (Mel filters, Fourier kernels) and `eval --plot` (confusion matrix) show the
checkpoint's own numbers, checked from the figures' data, and the CLI writes them as PNGs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from spotter.checkpoint import load_model, save_checkpoint
from spotter.config import FrontendConfig
from spotter.model import build_model
from spotter.plots import (KERNELS, basis_arrays, fourier_kernels_figure, mel_filter_moves, mel_filter_moves_figure,
                           mel_filters_figure, pyplot, stft_window_figure,
                           stft_window_shape)


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory):
    """A checkpoint with trainable bases moved away from their start, as training moves them."""
    model = build_model("linear", trainable_mel=True, trainable_stft=True)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, tensor in model.frontend.named_parameters():
            if name == "mel_log":  # log-domain Mel weights (areas kept: a bit more)
                tensor.add_(torch.log1p(0.3 * torch.rand(tensor.shape, generator=g)))
            else:
                tensor.mul_(1 + 0.2 * torch.rand(tensor.shape, generator=g))
    return save_checkpoint(model, tmp_path_factory.mktemp("plot") / "moved.pt")


def _png_size(path) -> tuple[int, int]:
    image = pyplot().imread(str(path))
    return image.shape[1], image.shape[0]


def test_plot_cli_writes_the_pictures_and_the_basis_change(trained_checkpoint, tmp_path):
    out = tmp_path / "plots"
    run = subprocess.run([sys.executable, "-m", "spotter", "plot", str(trained_checkpoint), "--out", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert _png_size(out / "mel_filters.png") == (13 * 110, 4 * 110)  # figure inches x dpi
    assert _png_size(out / "fourier_kernels.png") == (15 * 110, int(2.2 * len(KERNELS) * 110))
    model = load_model(trained_checkpoint, device="cpu")
    initial = basis_arrays(build_model("linear"))
    trained = basis_arrays(model)
    change = json.loads((out / "basis_change.json").read_text())
    for key in ("mel_basis", "stft.wsin", "stft.wcos"):
        expected = np.linalg.norm(trained[key] - initial[key]) / np.linalg.norm(initial[key])
        assert change[key] == pytest.approx(expected, rel=1e-6) and 0.05 < change[key] < 0.2
    assert "relative change from the initial bases: mel_basis" in run.stdout
    assert _png_size(out / "mel_filter_moves.png") == (9 * 110, 5 * 110)
    moves = json.loads((out / "mel_filter_moves.json").read_text())
    assert moves == mel_filter_moves(initial["mel_basis"], trained["mel_basis"], 16000)
    assert "Mel filters moved most: " in run.stdout
    assert not (out / "stft_window.png").exists()  # only a trainable window has one


def test_plot_stft_window_shows_the_hann_window_the_trained_one_and_their_ratio(tmp_path):
    model = build_model("linear", trainable_stft=True, frontend=FrontendConfig(stft_param="window"))
    with torch.no_grad():
        model.frontend.stft_window_log.copy_(torch.linspace(-0.5, 0.5, 480))  # the frame's end weighed more
    path = save_checkpoint(model, tmp_path / "window.pt")
    run = subprocess.run([sys.executable, "-m", "spotter", "plot", str(path), "--out", str(tmp_path / "plots")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert _png_size(tmp_path / "plots" / "stft_window.png") == (9 * 110, 5 * 110)
    initial, trained = basis_arrays(build_model("linear")), basis_arrays(load_model(path, device="cpu"))
    fig = stft_window_figure(initial, trained, stft_window_shape(initial, trained, 16000), sample_rate=16000)
    try:
        top, bottom = fig.axes
        hann, window = (line.get_ydata() for line in top.lines)
        np.testing.assert_array_equal(hann, initial["stft.wcos"][0, 0])
        np.testing.assert_array_equal(window, trained["stft.wcos"][0, 0])
        gain = bottom.lines[0].get_ydata()
        assert gain[0] < 1 < gain[-1] and np.all(np.diff(gain) > 0)  # the gain rises across the frame
        assert top.lines[0].get_xdata()[-1] == pytest.approx(479 / 16)  # ms
    finally:
        pyplot().close(fig)
    shape = json.loads((tmp_path / "plots" / "stft_window.json").read_text())
    assert shape["gain"] == pytest.approx(gain.tolist())
    duration, leakage = shape["rms_duration_ms"], shape["far_leakage_db"]
    assert shape["far_bins"] == 10 and shape == stft_window_shape(initial, trained, 16000)
    assert duration["checkpoint"] < duration["hann"] == pytest.approx(4.243, abs=1e-3)  # tilted: its energy narrower
    assert leakage["hann"] == pytest.approx(-71.1, abs=0.1) and leakage["checkpoint"] > leakage["hann"]
    assert "STFT window: gain 0.6" in run.stdout and "(Hann 4.243)" in run.stdout


def test_plot_mel_filter_moves_finds_the_filter_that_moved_and_the_one_that_widened(tmp_path):
    """Band filters: filter 20's centre pushed half a spacing up, filter 10 made sqrt(2) wider on the Mel scale;
    the measure names those two and no other, by about those amounts, through a saved checkpoint."""
    model = build_model("linear", trainable_mel=True, frontend=FrontendConfig(mel_param="band"))
    with torch.no_grad():
        model.frontend.mel_centre[20] = np.arctanh(0.5)
        model.frontend.mel_width[10] = np.arctanh(0.5)
    path = save_checkpoint(model, tmp_path / "band.pt")
    initial = basis_arrays(build_model("linear"))["mel_basis"]
    moves = mel_filter_moves(initial, basis_arrays(load_model(path, device="cpu"))["mel_basis"], 16000)
    centre, shift, width = (np.asarray(moves[k]) for k in ("centre_hz", "centre_shift_hz", "width_ratio"))
    assert np.all(np.diff(centre) > 0) and 50 < centre[0] < 100 and 6500 < centre[-1] < 8000
    spacing = (centre[21] - centre[19]) / 2
    assert shift[20] == pytest.approx(spacing / 2, rel=0.1)  # half a filter spacing, in Hz
    assert width[10] == pytest.approx(np.sqrt(2), rel=0.05) and abs(shift[10]) < 0.01 * spacing
    others = np.ones(40, bool)
    others[[10, 20]] = False
    assert np.abs(shift[others]).max() < 1e-3 and np.abs(width[others] - 1).max() < 1e-6
    fig = mel_filter_moves_figure(moves, trainable=True)
    try:
        top, bottom = fig.axes
        np.testing.assert_allclose(top.containers[0].markerline.get_ydata(), shift)
        np.testing.assert_allclose(bottom.containers[0].markerline.get_ydata(), 100 * (width - 1))
        np.testing.assert_allclose(top.containers[0].markerline.get_xdata(), centre)
    finally:
        pyplot().close(fig)


def test_plot_mel_filters_holds_each_of_the_40_filters_initial_and_trained(trained_checkpoint):
    model = load_model(trained_checkpoint, device="cpu")
    initial, trained = basis_arrays(build_model("linear"))["mel_basis"], basis_arrays(model)["mel_basis"]
    assert initial.shape[0] == 40 and not np.allclose(initial, trained)
    fig = mel_filters_figure(initial, trained, 16000, trainable=True)
    try:
        left, right = fig.axes
        for ax, bank in ((left, initial), (right, trained)):
            assert len(ax.lines) == 40
            for line, row in zip(ax.lines, bank):
                np.testing.assert_array_equal(line.get_ydata(), row)
                assert line.get_xdata()[0] == 0 and line.get_xdata()[-1] == 8000  # 0 Hz to Nyquist
        assert "initial" in left.get_title() and "frozen" not in right.get_title()
    finally:
        pyplot().close(fig)


def test_plot_fourier_kernels_are_the_2nd_10th_20th_50th_initial_and_trained(trained_checkpoint):
    model = load_model(trained_checkpoint, device="cpu")
    initial, trained = basis_arrays(build_model("linear")), basis_arrays(model)
    fig = fourier_kernels_figure(initial, trained, trainable=True, sample_rate=16000)
    try:
        axes = np.array(fig.axes).reshape(len(KERNELS), 4)
        assert KERNELS == (2, 10, 20, 50)
        n_fft = initial["stft.wsin"].shape[-1]
        for row, k in zip(axes, KERNELS):
            shown = [ax.lines[0].get_ydata() for ax in row]
            expected = [initial["stft.wsin"][k, 0], trained["stft.wsin"][k, 0],
                        initial["stft.wcos"][k, 0], trained["stft.wcos"][k, 0]]
            for s, e in zip(shown, expected):
                np.testing.assert_array_equal(s, e)
            assert not np.allclose(shown[0], shown[1])  # the trained kernel is pictured, not the initial one twice
            assert row[0].get_title().startswith(f"kernel {k} ({k * 16000 / n_fft:.0f} Hz)")
    finally:
        pyplot().close(fig)


def test_plot_confusion_colours_the_row_shares_and_writes_the_counts(tmp_path):
    from spotter.evaluation.clips import confusion_figure, plot_confusion

    result = {"labels": ["yes", "no", "unknown"], "confusion": [[3, 1, 0], [0, 2, 0], [0, 0, 0]],
              "accuracy": 5 / 6, "f1_macro": 0.8, "n": 6}
    fig = confusion_figure(result)
    try:
        ax = fig.axes[0]
        shares = np.array([[0.75, 0.25, 0], [0, 1, 0], [0, 0, 0]])  # an empty row stays 0, not NaN
        np.testing.assert_allclose(ax.images[0].get_array(), shares)
        cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}
        assert cells == {(0, 0): "3", (0, 1): "1", (1, 1): "2"}
        assert [t.get_text() for t in ax.get_xticklabels()] == result["labels"]
        assert ax.get_title() == "accuracy 83.33%, macro F1 0.800, n=6"
    finally:
        pyplot().close(fig)
    plot_confusion(result, tmp_path / "c.png")
    assert _png_size(tmp_path / "c.png") == (int(7.5 * 120), int(6.5 * 120))
