"""Front end: log-Mel features of one 1 s clip and of a batch of 256 clips.

nnAudio (spotter's ``LogMel``: nnAudio's ``MelSpectrogram`` as a conv layer)
vs librosa vs torchaudio (when it imports beside the torch in use) vs a plain
``torch.stft`` + Mel matrix, on CPU (torch threads 1 and every core) and, when
present, on the GPU (inputs already on the device, synchronised before every
timer reading).  Every implementation computes the same features as spotter
(16 kHz, 480-sample periodic Hann window, 160-sample hop, 40 Slaney Mel bins,
power, zero padding of half a window, ``log(mel + 1e-6)``); the table's last
column is each one's largest difference from nnAudio in log units.

    python benchmarks/bench_frontend.py [--quick] [--device auto|cpu|cuda]
"""

from __future__ import annotations

# common.py, beside this script, also puts the checkout on sys.path
from common import (devices, machine, machine_line, measure, parser, quiet_warnings, set_threads, table,
                    thread_counts, write_json, cuda_sync)

import numpy as np
import torch

SR, N_FFT, HOP, N_MELS, OFFSET = 16000, 480, 160, 40, 1e-6


def signal_batch(batch: int, seed: int = 0) -> np.ndarray:
    """Clips that look like audio: a tone at a random pitch and level, plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(SR) / SR
    f = rng.uniform(100, 4000, size=(batch, 1))
    amp = 10 ** rng.uniform(-2, -0.5, size=(batch, 1))
    return (amp * np.sin(2 * np.pi * f * t) + 0.01 * rng.standard_normal((batch, SR))).astype(np.float32)


def torchaudio_status() -> tuple[object | None, str]:
    try:
        import torchaudio
    except Exception as err:  # ImportError, or an OSError from a build made for another torch
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        return None, f"not installable beside torch {torch.__version__} (import failed: {first})"
    return torchaudio, f"torchaudio {torchaudio.__version__}"


def implementations(device: str):
    """name -> (make(batch) -> fn, produces numpy?)"""
    import librosa

    from spotter.features import LogMel

    impls = {}
    logmel = LogMel().to(device).eval()

    def nnaudio(x):
        with torch.inference_mode():
            return logmel(x)
    impls["nnAudio"] = nnaudio

    fb = torch.from_numpy(librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=N_MELS, fmin=0.0, fmax=SR / 2,
                                              htk=False, norm="slaney")).to(device)
    window = torch.hann_window(N_FFT, periodic=True, device=device)

    def plain_stft(x):
        with torch.inference_mode():
            spec = torch.stft(x, N_FFT, HOP, N_FFT, window, center=True, pad_mode="constant", return_complex=True)
            return torch.log(fb @ spec.abs().pow(2) + OFFSET)
    impls["torch.stft"] = plain_stft

    torchaudio, _ = torchaudio_status()
    if torchaudio is not None:
        ta = torchaudio.transforms.MelSpectrogram(
            sample_rate=SR, n_fft=N_FFT, win_length=N_FFT, hop_length=HOP, f_min=0.0, f_max=SR / 2,
            n_mels=N_MELS, power=2.0, norm="slaney", mel_scale="slaney", center=True, pad_mode="constant",
        ).to(device)

        def torchaudio_fn(x):
            with torch.inference_mode():
                return torch.log(ta(x) + OFFSET)
        impls["torchaudio"] = torchaudio_fn

    if device == "cpu":
        def librosa_fn(x):  # librosa takes a (batch, samples) array and vectorises over the batch
            mel = librosa.feature.melspectrogram(y=x, sr=SR, n_fft=N_FFT, hop_length=HOP, win_length=N_FFT,
                                                 window="hann", center=True, pad_mode="constant", power=2.0,
                                                 n_mels=N_MELS, fmin=0.0, fmax=SR / 2, htk=False, norm="slaney")
            return np.log(mel + OFFSET)
        impls["librosa"] = librosa_fn
    return impls


def as_numpy(out) -> np.ndarray:
    if isinstance(out, torch.Tensor):
        out = out.detach().float().cpu().numpy()
    return np.asarray(out).reshape(out.shape[0] if out.ndim > 2 else 1, N_MELS, -1)


def main(argv=None) -> dict:
    p = parser(__doc__.splitlines()[0])
    args = p.parse_args(argv)
    quiet_warnings()
    info = machine()
    _, ta_status = torchaudio_status()
    cases = [("1 clip", 1), ("batch 256", 256)]
    audio = {batch: signal_batch(batch) for _, batch in cases}
    rows, results = [], []
    reference: dict[int, np.ndarray] = {}
    for device in devices(args.device):
        impls = implementations(device)
        sync = cuda_sync(device)
        for case, batch in cases:
            x_np = audio[batch]
            x = torch.from_numpy(x_np).to(device)
            for name, fn in impls.items():
                is_torch = name != "librosa"
                inp = x if is_torch else x_np
                out = as_numpy(fn(inp))
                if name == "nnAudio" and batch not in reference:
                    reference[batch] = out
                diff = float(np.abs(out - reference[batch]).max()) if batch in reference else None
                for threads in (thread_counts() if (is_torch and device == "cpu") else [None]):
                    if threads is not None:
                        set_threads(threads)
                    if batch == 1:
                        stats = measure(lambda: fn(inp), iters=50 if args.quick else 300, warmup=5 if args.quick else 20,
                                        max_seconds=1 if args.quick else 4, sync=sync)
                    else:
                        stats = measure(lambda: fn(inp), iters=3 if args.quick else 15, warmup=1 if args.quick else 2,
                                        max_seconds=2 if args.quick else 8, sync=sync)
                    r = {"impl": name, "device": device, "threads": threads, "case": case, "batch": batch,
                         "median_ms": stats["median"], "p99_ms": stats["p99"], "n": stats["n"],
                         "clips_per_s": batch / stats["median"] * 1000, "max_abs_diff_vs_nnaudio": diff}
                    results.append(r)
                    rows.append([name, device, threads if threads is not None else "numpy", case, r["median_ms"],
                                 r["p99_ms"], r["clips_per_s"], "-" if diff is None else f"{diff:.1e}"])
    set_threads(thread_counts()[-1])

    def best(impl, device, batch):
        cands = [r["median_ms"] for r in results if r["impl"] == impl and r["device"] == device and r["batch"] == batch]
        return min(cands) if cands else None

    ratios = {}
    for _, batch in cases:
        lib = best("librosa", "cpu", batch)
        for device in devices(args.device):
            for impl in ("nnAudio", "torch.stft", "torchaudio"):
                t = best(impl, device, batch)
                if lib and t:
                    ratios[f"librosa_cpu / {impl}_{device}, batch {batch}"] = lib / t
    notes = [f"torchaudio: {ta_status}",
             "threads: torch.set_num_threads for the torch rows; librosa runs on numpy (FFT single-threaded, the Mel product on BLAS threads)",
             "diff: largest |log-Mel - nnAudio's| over the batch (log units)"]
    notes += [f"speed-up {k}: {v:.1f}x" for k, v in ratios.items()]
    if "cuda" not in devices(args.device):
        notes.append("no GPU here: the nnAudio paper's GPU-vs-librosa comparison (~100x) needs one")
    print(table(f"Front end: log-Mel of 1 s clips ({machine_line(info)})",
                ["implementation", "device", "threads", "input", "median ms", "p99 ms", "clips/s", "diff"], rows, notes))
    data = {"benchmark": "frontend", "machine": info, "quick": args.quick, "torchaudio": ta_status,
            "rows": results, "ratios": ratios}
    write_json("frontend", data, args.out, announce=True)
    return data


if __name__ == "__main__":
    main()
