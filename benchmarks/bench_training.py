"""Training: clips per second with on-the-fly nnAudio features vs librosa features.

The shipped architecture is trained with PyTorch Lightning on a small corpus
generated on the spot (tones and noise with random labels: speed does not
depend on what the clips say), batches of 128 as ``spotter train``:

* **nnAudio on the fly**: ``KWSModule``'s real ``training_step`` (waveforms
  in, the nnAudio front end as the first layer), augmentation off, and with
  the shipped recipe's augmentation (waveform shift/gain/noise + SpecAugment);
* **librosa precomputed**: the log-Mel features of every clip computed once
  with librosa (one-off cost reported), then steps of the network alone;
* **librosa in the data loader**: librosa features computed per clip in the
  ``Dataset`` every epoch (what on-the-fly augmentation with librosa costs,
  and the comparison of the nnAudio tutorial's ~95x faster epochs on GPU).

Throughput is measured between the ends of training batches (data loading
included), after two warm-up batches.

    python benchmarks/bench_training.py [--quick] [--device auto|cpu|cuda]
"""

from __future__ import annotations

import logging
import time

# common.py, beside this script, also puts the checkout on sys.path
from common import devices, machine, machine_line, parser, quiet_warnings, set_threads, table, thread_counts, write_json

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

BATCH = 128
WARMUP_BATCHES = 2
SR, N_FFT, HOP, N_MELS = 16000, 480, 160, 40


def corpus(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    t = np.arange(SR) / SR
    f = rng.uniform(100, 4000, size=(n, 1))
    amp = 10 ** rng.uniform(-2, -0.5, size=(n, 1))
    x = (amp * np.sin(2 * np.pi * f * t) + 0.01 * rng.standard_normal((n, SR))).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(rng.integers(0, 12, size=n))


def librosa_logmel(x: np.ndarray) -> np.ndarray:
    """spotter's log-Mel with librosa: ``(..., 16000)`` -> ``(..., 1, 40, 101)``."""
    import librosa

    mel = librosa.feature.melspectrogram(y=x, sr=SR, n_fft=N_FFT, hop_length=HOP, win_length=N_FFT, window="hann",
                                         center=True, pad_mode="constant", power=2.0, n_mels=N_MELS, fmin=0.0,
                                         fmax=SR / 2, htk=False, norm="slaney")
    return np.ascontiguousarray(np.log(mel + 1e-6)[..., None, :, :], dtype=np.float32)


class LibrosaClips(Dataset):
    """Waveforms whose features librosa computes as each clip is loaded (every epoch)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x.numpy(), y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        return torch.from_numpy(librosa_logmel(self.x[i])), self.y[i]


def feature_module_class():
    from spotter.training.augment import spec_augment
    from spotter.training.module import KWSModule

    class FeatureKWSModule(KWSModule):
        """KWSModule trained on precomputed features: the same network and optimiser, no front end."""

        def training_step(self, batch, batch_idx):
            features, y = batch
            if self.hparams.augment:  # only SpecAugment is possible on stored features
                features = spec_augment(features, self.aug.freq_masks, self.aug.freq_mask_width,
                                        self.aug.time_masks, self.aug.time_mask_width)
            logits = self.model.classify(features)
            return torch.nn.functional.cross_entropy(logits, y)

    return FeatureKWSModule


class BatchClock:
    """Lightning callback: wall time at the end of every training batch."""

    def __new__(cls):
        import pytorch_lightning as pl

        class _Clock(pl.Callback):
            def __init__(self) -> None:
                self.times: list[float] = []

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
                if torch.cuda.is_available() and pl_module.device.type == "cuda":
                    torch.cuda.synchronize()
                self.times.append(time.perf_counter())
        return _Clock()


def train_throughput(module, loader: DataLoader, steps: int, accelerator: str) -> dict:
    import pytorch_lightning as pl

    clock = BatchClock()
    trainer = pl.Trainer(max_steps=WARMUP_BATCHES + steps, accelerator=accelerator, devices=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, limit_val_batches=0, callbacks=[clock])
    trainer.fit(module, train_dataloaders=loader)
    t = clock.times[WARMUP_BATCHES - 1:]
    seconds = t[-1] - t[0]
    n = BATCH * (len(t) - 1)
    return {"clips": n, "seconds": seconds, "clips_per_s": n / seconds, "step_ms": seconds / (len(t) - 1) * 1000}


def main(argv=None) -> dict:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="architecture (default: the shipped checkpoint's)")
    args = p.parse_args(argv)
    quiet_warnings()
    import warnings

    import pytorch_lightning as pl

    warnings.filterwarnings("ignore")  # Lightning's hints (num_workers, deprecations) are not results
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)

    from bench_models import shipped_architecture
    from spotter.training.module import KWSModule, default_hparams

    info = machine()
    arch = args.model or shipped_architecture()
    threads = set_threads(thread_counts()[-1])
    steps = 3 if args.quick else 5
    n_clips = BATCH * (WARMUP_BATCHES + steps)
    x, y = corpus(n_clips)
    hp = default_hparams(arch)
    results, rows = [], []
    for device in devices(args.device):
        accelerator = "gpu" if device == "cuda" else "cpu"

        def module(cls=KWSModule, augment=False):
            pl.seed_everything(0, verbose=False)
            m = cls(model=arch, **{**hp, "augment": augment})
            if augment:
                m.set_noise([torch.from_numpy(0.05 * np.random.default_rng(1).standard_normal(10 * SR).astype(np.float32))])
            return m

        waves = DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=True, drop_last=True)
        r = train_throughput(module(), waves, steps, accelerator)
        results.append({"mode": "nnAudio on the fly", "device": device, **r})
        r = train_throughput(module(augment=True), waves, steps, accelerator)
        results.append({"mode": "nnAudio on the fly + augmentation", "device": device, **r})

        started = time.perf_counter()
        feats = torch.from_numpy(librosa_logmel(x.numpy()))
        pre_s = time.perf_counter() - started
        pre = train_throughput(module(feature_module_class()), DataLoader(TensorDataset(feats, y), batch_size=BATCH,
                               shuffle=True, drop_last=True), steps, accelerator)
        results.append({"mode": "librosa precomputed (model-only steps)", "device": device, **pre,
                        "precompute_s": pre_s, "precompute_clips_per_s": n_clips / pre_s})
        r = train_throughput(module(feature_module_class()), DataLoader(LibrosaClips(x, y), batch_size=BATCH,
                             shuffle=True, drop_last=True), steps, accelerator)
        results.append({"mode": "librosa in the data loader (every epoch)", "device": device, **r})
    for r in results:
        r["threads"] = threads
        r["epoch_s_21000_clips"] = 21000 / r["clips_per_s"]
        rows.append([r["mode"], r["device"], threads, r["step_ms"], r["clips_per_s"], 21000 / r["clips_per_s"]])
    ratios = {}
    for device in devices(args.device):
        by = {r["mode"]: r for r in results if r["device"] == device}
        ratios[f"{device}: nnAudio on the fly / librosa in the loader"] = (
            by["nnAudio on the fly"]["clips_per_s"] / by["librosa in the data loader (every epoch)"]["clips_per_s"])
        ratios[f"{device}: nnAudio on the fly / librosa precomputed"] = (
            by["nnAudio on the fly"]["clips_per_s"] / by["librosa precomputed (model-only steps)"]["clips_per_s"])
    pre_rows = [r for r in results if "precompute_s" in r]
    notes = [f"{arch}, batch {BATCH}, {steps} timed steps after {WARMUP_BATCHES} warm-up, corpus of {n_clips} "
             "generated clips; epoch s: 21,000 clips (the shipped model's corpus)"]
    notes += [f"librosa precompute (one-off, {r['device']}): {r['precompute_s']:.2f} s for {n_clips} clips = "
              f"{r['precompute_clips_per_s']:,.0f} clips/s ({21000 / r['precompute_clips_per_s']:.1f} s for 21,000)"
              for r in pre_rows]
    notes += [f"{k}: {v:.2f}x" for k, v in ratios.items()]
    print(table(f"Training throughput ({machine_line(info)})",
                ["mode", "device", "threads", "step ms", "clips/s", "epoch s"], rows, notes))
    data = {"benchmark": "training", "machine": info, "quick": args.quick, "model": arch, "batch": BATCH,
            "rows": results, "ratios": ratios}
    write_json("training", data, args.out, announce=True)
    return data


if __name__ == "__main__":
    main()
