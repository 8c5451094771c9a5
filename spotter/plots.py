"""Pictures of the basis functions: what trainable Mel filters and Fourier kernels learned.

``spotter plot CHECKPOINT --out DIR`` writes

* ``mel_filters.png`` - the 40 Mel filters over frequency (one colour each),
  initial (fixed) bases beside the checkpoint's;
* ``fourier_kernels.png`` - STFT kernels 2, 10, 20 and 50 (sine and cosine),
  initial beside the checkpoint's;
* ``mel_filter_moves.png`` - where each Mel filter moved: the shift of its centre (the centroid of its
  weights, in Hz) and the change of its width (their spread), over its initial centre frequency; moves of
  a few Hz, which do not show among the filters themselves;
* ``stft_window.png`` - with a trainable window (``--stft-param window``): the analysis window, the Hann
  window beside the checkpoint's, and the checkpoint's gain per sample; ``stft_window.json`` its numbers
  (:func:`stft_window_shape`);
* ``basis_change.json`` - how far each basis moved (relative L2 norm), and ``mel_filter_moves.json``
  the filters' centres, shifts and width ratios as numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

KERNELS = (2, 10, 20, 50)


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def basis_arrays(model) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in model.frontend.basis_tensors().items()}


def basis_change(initial: dict, trained: dict) -> dict[str, float]:
    """Relative L2 change of each basis tensor."""
    return {k: float(np.linalg.norm(trained[k] - initial[k]) / np.linalg.norm(initial[k])) for k in initial}


def mel_filter_moves(initial: np.ndarray, trained: np.ndarray, sample_rate: int) -> dict[str, list[float]]:
    """Each Mel filter's centre (centroid of its weights over frequency, Hz) initially, how far the trained
    filter's centre moved (Hz) and the ratio of its width (standard deviation of its weights over frequency)
    to the initial one. Works for any parametrisation: it reads the filterbanks themselves."""
    freqs = np.linspace(0, sample_rate / 2, initial.shape[1])

    def centre_and_width(bank: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        weights = np.clip(bank.astype(np.float64), 0, None)
        weights = weights / weights.sum(axis=1, keepdims=True)
        centre = weights @ freqs
        spread = np.sqrt(np.einsum("mf,mf->m", weights, (freqs[None, :] - centre[:, None]) ** 2))
        return centre, spread

    centre0, width0 = centre_and_width(initial)
    centre1, width1 = centre_and_width(trained)
    return {"centre_hz": centre0.tolist(), "centre_shift_hz": (centre1 - centre0).tolist(),
            "width_ratio": (width1 / width0).tolist()}


def mel_filter_moves_figure(moves: dict[str, list[float]], trainable: bool):
    """Two panels over each filter's initial centre (Hz, log scale): its centre shift (Hz) and width change (%)."""
    plt = pyplot()
    centre = np.asarray(moves["centre_hz"])
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    top.stem(centre, moves["centre_shift_hz"], basefmt="k-")
    top.set_ylabel("centre shift (Hz)")
    top.set_title("where each Mel filter moved" + ("" if trainable else " (frozen: nowhere)"))
    bottom.stem(centre, 100 * (np.asarray(moves["width_ratio"]) - 1), basefmt="k-")
    bottom.set_ylabel("width change (%)")
    bottom.set_xscale("log")
    bottom.set_xlabel("filter's initial centre (Hz)")
    fig.tight_layout()
    return fig


def mel_filters_figure(initial: np.ndarray, trained: np.ndarray, sample_rate: int, trainable: bool):
    """Two panels, initial and checkpoint's Mel filters: one line per filter (its weights over frequency)."""
    plt = pyplot()
    freqs = np.linspace(0, sample_rate / 2, initial.shape[1])
    colours = plt.get_cmap("turbo")(np.linspace(0, 1, initial.shape[0]))
    fig, axes = plt.subplots(1, 2, figsize=(13, 4), sharey=True)
    for ax, bank, title in ((axes[0], initial, "initial (fixed) Mel filters"),
                            (axes[1], trained, "checkpoint's Mel filters" + ("" if trainable else " (frozen: identical)"))):
        for i, row in enumerate(bank):
            ax.plot(freqs, row, color=colours[i], linewidth=1)
        ax.set_title(title)
        ax.set_xlabel("frequency (Hz)")
    axes[0].set_ylabel("weight")
    fig.tight_layout()
    return fig


def fourier_kernels_figure(initial: dict, trained: dict, trainable: bool, sample_rate: int):
    """A row per kernel of :data:`KERNELS`: initial sin, checkpoint's sin, initial cos, checkpoint's cos."""
    plt = pyplot()
    n_fft = initial["stft.wsin"].shape[-1]
    t_ms = np.arange(n_fft) / sample_rate * 1000
    fig, axes = plt.subplots(len(KERNELS), 4, figsize=(15, 2.2 * len(KERNELS)), sharex=True)
    tag = "trained" if trainable else "checkpoint (frozen)"
    for r, k in enumerate(KERNELS):
        hz = k * sample_rate / n_fft
        for c, (name, basis, label) in enumerate((("stft.wsin", initial, "initial sin"), ("stft.wsin", trained, f"{tag} sin"),
                                                   ("stft.wcos", initial, "initial cos"), ("stft.wcos", trained, f"{tag} cos"))):
            ax = axes[r, c]
            ax.plot(t_ms, basis[name][k, 0], color="tab:blue" if "initial" in label else "tab:red", linewidth=0.9)
            ax.set_title(f"kernel {k} ({hz:.0f} Hz): {label}", fontsize=9)
            ax.tick_params(labelsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("time (ms)")
    fig.tight_layout()
    return fig


def stft_window_shape(initial: dict, trained: dict, sample_rate: int, far_bins: int = 10) -> dict:
    """What a trained analysis window changed, against the initial (Hann) one: its gain per sample (where the
    Hann window is not 0; at ``gain_time_ms``), the rms duration of its energy (ms: how long a frame listens) and its highest leakage
    beyond ``far_bins`` frequency bins from the main lobe (dB below the peak: how much a bin hears far
    frequencies)."""
    hann, window = (basis["stft.wcos"][0, 0].astype(np.float64) for basis in (initial, trained))
    t_ms = np.arange(hann.size) / sample_rate * 1000

    def duration(w: np.ndarray) -> float:
        energy = w ** 2 / (w ** 2).sum()
        centre = (energy * t_ms).sum()
        return float(np.sqrt((energy * (t_ms - centre) ** 2).sum()))

    def far_leakage(w: np.ndarray, oversample: int = 16) -> float:
        spectrum = np.abs(np.fft.rfft(w, hann.size * oversample))
        return float(20 * np.log10(spectrum[far_bins * oversample:].max() / spectrum.max()))

    inside = hann > 1e-3 * hann.max()
    return {"gain_time_ms": t_ms[inside].tolist(), "gain": (window[inside] / hann[inside]).tolist(),
            "rms_duration_ms": {"hann": duration(hann), "checkpoint": duration(window)},
            "far_bins": far_bins, "far_leakage_db": {"hann": far_leakage(hann), "checkpoint": far_leakage(window)}}


def stft_window_figure(initial: dict, trained: dict, shape: dict, sample_rate: int):
    """Two panels over the frame's time (ms): the analysis window, initial (Hann) and the checkpoint's, and the
    checkpoint's gain per sample (``shape``: :func:`stft_window_shape`). The window is bin 0's cosine kernel, a
    cosine of 0 Hz."""
    plt = pyplot()
    hann, window = initial["stft.wcos"][0, 0], trained["stft.wcos"][0, 0]
    t_ms = np.arange(hann.size) / sample_rate * 1000
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    top.plot(t_ms, hann, color="tab:blue", linewidth=1, label="initial (Hann)")
    top.plot(t_ms, window, color="tab:red", linewidth=1, label="checkpoint's")
    top.set_ylabel("weight")
    top.set_title("the STFT analysis window")
    top.legend(fontsize=8)
    bottom.plot(shape["gain_time_ms"], shape["gain"], color="tab:red", linewidth=1)
    bottom.axhline(1.0, color="k", linewidth=0.5)
    bottom.set_ylabel("gain (checkpoint / Hann)")
    bottom.set_xlabel("time in the frame (ms)")
    fig.tight_layout()
    return fig


def save_figure(fig, path: Path, dpi: int = 110) -> None:
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)


def plot_checkpoint(model, out_dir: str | Path) -> dict:
    """Write the basis pictures of a loaded model; returns the files and the basis change."""
    from .model import build_model

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = model.frontend.config
    initial = basis_arrays(build_model(model.name, frontend=cfg))
    trained = basis_arrays(model)
    moves = mel_filter_moves(initial["mel_basis"], trained["mel_basis"], cfg.sample_rate)
    change = basis_change(initial, trained)
    figures = {"mel_filters.png": mel_filters_figure(initial["mel_basis"], trained["mel_basis"], cfg.sample_rate,
                                                     cfg.trainable_mel),
               "fourier_kernels.png": fourier_kernels_figure(initial, trained, cfg.trainable_stft, cfg.sample_rate),
               "mel_filter_moves.png": mel_filter_moves_figure(moves, cfg.trainable_mel)}
    numbers = {"basis_change.json": change, "mel_filter_moves.json": moves}
    window = None
    if cfg.trainable_stft and cfg.stft_param == "window":
        window = stft_window_shape(initial, trained, cfg.sample_rate)
        figures["stft_window.png"] = stft_window_figure(initial, trained, window, cfg.sample_rate)
        numbers["stft_window.json"] = window
    for name, fig in figures.items():
        save_figure(fig, out / name)
    for name, value in numbers.items():
        (out / name).write_text(json.dumps(value, indent=1))
    return {"files": [str(out / name) for name in [*figures, *numbers]], "relative_change": change,
            "mel_filter_moves": moves, "stft_window": window}
