"""The Lightning pair: :class:`KWSModule` (model, loss, optimiser) and :class:`KWSDataModule` (data).

Optimiser and schedule, by default (see :func:`default_hparams`):

* BC-ResNet: the paper's recipe - SGD, momentum 0.9, weight decay 1e-3,
  linear warm-up to lr 0.1 over 5 epochs (fewer for short runs), cosine to 0,
  stepped every batch.
* linear: Adam, lr 1e-3, no warm-up (the nnAudio tutorial's baseline).
* Trainable front-end parameters are in their own parameter groups without
  weight decay (decay would pull the basis functions towards zero): the raw
  bases (``stft.wsin/wcos``, a raw ``mel_basis``) at their own learning rate
  (``frontend_lr``), log-domain Mel weights (``mel_log``), the filters' centres and
  bandwidths (``mel_centre``, ``mel_width``) or the STFT window's log gains
  (``stft_window_log``) at the network's; both can stay frozen for the first
  ``frontend_freeze_epochs`` (the network learns to read the fixed spectrogram
  before the spectrogram moves), and ``frontend_decay``
  pulls them back towards their start (L2-SP: ``decay/2 * ||theta - theta_0||^2``
  in the loss; plain weight decay would pull them towards zero).  The
  nnAudio tutorial left them out of the optimiser, so they never trained; a
  test here checks that they are in and that they move.

Knowledge distillation (:meth:`KWSModule.set_teacher`): a trained model - an
ensemble, typically - scores every training batch as the student sees it (the
same augmented clips, the same SpecAugment masks: a consistent teacher), and
the loss becomes ``(1 - w) * CE(labels) + w * T^2 * KL(teacher_T || student_T)``
with both distributions softened by temperature ``T`` (Hinton et al., 2015).
The student learns the teacher's whole posterior, including how unsure it is
about a noisy word or a stretch of speech, at the cost of one network.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from ..checkpoint import make_checkpoint
from ..errors import SpotterError
from ..config import CLIP_SAMPLES, KEYWORDS, LABELS, SAMPLE_RATE, UNKNOWN, FrontendConfig
from ..model import build_model
from .augment import AugmentConfig, NoiseMixer, RoomReverb, batch_babble, random_filter, random_gain, spec_augment, spectral_blur, speed_perturb, time_shift, vtl_warp
from .options import recipe_defaults


def default_hparams(model: str) -> dict:
    """Optimiser defaults for a model family (overridable one by one; the table: ``options.RECIPES``)."""
    return recipe_defaults(model)


class KWSModule(pl.LightningModule):
    """Trains a :class:`spotter.model.KeywordModel` with augmentation on the fly."""

    def __init__(self, model: str = "bcresnet-1", trainable_mel: bool = False, trainable_stft: bool = False,
                 optimizer: str = "sgd", lr: float = 0.1, frontend_lr: float = 1e-3, weight_decay: float = 1e-3,
                 warmup_epochs: float = 5, augment: bool = True, labels: tuple = LABELS,
                 augment_config: dict | None = None, normalize: str = "none", distill_weight: float = 0.0,
                 distill_temperature: float = 2.0, window_seconds: float = 1.0, mel_param: str = "log",
                 stft_param: str = "kernels", frontend_freeze_epochs: float = 0.0, frontend_decay: float = 0.0) -> None:
        super().__init__()
        self.save_hyperparameters()
        window = int(round(window_seconds * SAMPLE_RATE))
        self.model = build_model(model, trainable_mel=trainable_mel, trainable_stft=trainable_stft, labels=labels,
                                 frontend=FrontendConfig(normalize=normalize, window_samples=window,
                                                         mel_param=mel_param, stft_param=stft_param))
        self.aug = AugmentConfig(**(augment_config or {}))
        self.mixer: NoiseMixer | None = None
        self.rooms = (RoomReverb(256, self.aug.reverb_rt60, self.aug.reverb_distance)
                      if self.aug.reverb_prob > 0 else None)  # a bank of simulated rooms, made once
        self._frontend_start: list[torch.Tensor] = []  # the front end's parameters at the start of fit (L2-SP)
        self._teacher: list = []  # a list, so the teacher is neither a submodule, nor saved, nor optimised
        n = len(labels)
        self.val_acc = MulticlassAccuracy(n, average="micro")
        self.val_f1 = MulticlassF1Score(n, average="macro")
        self.test_acc = MulticlassAccuracy(n, average="micro")

    # -- data-side hooks ---------------------------------------------------
    def set_noise(self, noises: list[torch.Tensor]) -> None:
        """Background recordings to mix into training clips."""
        self.mixer = NoiseMixer(noises, self.model.frontend.config.window_samples)

    def set_teacher(self, teacher) -> None:
        """Distil ``teacher`` (a trained :class:`~spotter.model.KeywordModel`, same labels) into this model.

        Raises ``ValueError`` when its labels differ. With the same front-end settings and no trainable
        front end on either side it scores the student's own (augmented, masked) features; otherwise
        its own front end hears the same augmented waveform."""
        if tuple(teacher.labels) != tuple(self.model.labels):
            raise ValueError(f"its labels {list(teacher.labels)} differ from this run's {list(self.model.labels)}")
        for p in teacher.parameters():
            p.requires_grad_(False)
        self._teacher = [teacher.eval()]

    @property
    def teacher(self):
        return self._teacher[0] if self._teacher else None

    def _shares_features_with_teacher(self) -> bool:
        mine, theirs = self.model.frontend.config, self.teacher.frontend.config
        return mine == theirs and not (mine.trainable_mel or mine.trainable_stft)

    def distillation_loss(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        """``T^2 * KL(softmax(teacher / T) || softmax(student / T))``, averaged over the batch."""
        t = self.hparams.distill_temperature
        return torch.nn.functional.kl_div(torch.log_softmax(student_logits / t, dim=-1),
                                          torch.log_softmax(teacher_logits / t, dim=-1),
                                          log_target=True, reduction="batchmean") * t * t

    def on_fit_start(self) -> None:
        if not self._frontend_start:  # a resumed run has them from its checkpoint
            self._frontend_start = [p.detach().clone() for p in self.model.frontend_parameters()]
        self._frontend_start = [t.to(self.device) for t in self._frontend_start]
        if self.teacher is not None:
            self.teacher.to(self.device).eval()
        datamodule = getattr(self.trainer, "datamodule", None)
        if self.mixer is None and datamodule is not None and getattr(datamodule, "noises", None):
            self.set_noise(datamodule.noises)

    def augment_waveforms(self, x: torch.Tensor) -> torch.Tensor:
        x = time_shift(x, int(self.aug.shift_ms * SAMPLE_RATE / 1000))
        x = speed_perturb(x, *self.aug.speed)
        x = random_filter(x, SAMPLE_RATE, self.aug.eq_db, self.aug.lowpass_prob, self.aug.lowpass_hz)
        if self.rooms is not None:
            x = self.rooms(x, self.aug.reverb_prob)
        x = random_gain(x, *self.aug.gain_db)
        x = batch_babble(x, self.aug.babble_prob, self.aug.babble_snr_db, self.aug.babble_talkers)
        if self.mixer is not None:
            x = self.mixer(x, self.aug.noise_prob, self.aug.snr_db, reference=self.aug.snr_reference)
        return x

    def augment_features(self, features: torch.Tensor) -> torch.Tensor:
        """The augmentations of the log-Mel image ``(B, 1, F, T)``: vocal-tract warp, blur, SpecAugment."""
        cfg = self.model.frontend.config
        features = vtl_warp(features, self.aug.warp_prob, self.aug.warp, cfg.fmin, cfg.fmax or cfg.sample_rate / 2)
        features = spectral_blur(features, self.aug.blur_prob, self.aug.blur_passes)
        return spec_augment(features, self.aug.freq_masks, self.aug.freq_mask_width,
                            self.aug.time_masks, self.aug.time_mask_width)

    # -- steps ---------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        if self.hparams.augment:
            x = self.augment_waveforms(x)
        features = self.model.frontend(x)
        if self.hparams.augment:
            features = self.augment_features(features)
        logits = self.model.classify(features)
        loss = torch.nn.functional.cross_entropy(logits, y)
        if self.teacher is not None and self.hparams.distill_weight > 0:
            with torch.no_grad():
                teacher_logits = (self.teacher.classify(features) if self._shares_features_with_teacher()
                                  else self.teacher(x))
            distill = self.distillation_loss(logits, teacher_logits)
            self.log("train_distill", distill, on_step=False, on_epoch=True, batch_size=len(y))
            w = self.hparams.distill_weight
            loss = (1 - w) * loss + w * distill
        if self.hparams.frontend_decay > 0:
            distance = self.frontend_distance()
            self.log("train_frontend_distance", distance, on_step=False, on_epoch=True, batch_size=len(y))
            loss = loss + 0.5 * self.hparams.frontend_decay * distance
        acc = (logits.argmax(1) == y).float().mean()
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y))
        self.log("train_acc", acc, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y))
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.model(x)
        loss = torch.nn.functional.cross_entropy(logits, y)
        self.val_acc.update(logits, y)
        self.val_f1.update(logits, y)
        self.log("val_loss", loss, on_epoch=True, prog_bar=True, batch_size=len(y), sync_dist=True)
        self.log("val_acc", self.val_acc, on_epoch=True, prog_bar=True)
        self.log("val_f1", self.val_f1, on_epoch=True)

    def test_step(self, batch, batch_idx):
        x, y = batch
        logits = self.model(x)
        self.test_acc.update(logits, y)
        self.log("test_loss", torch.nn.functional.cross_entropy(logits, y), batch_size=len(y), sync_dist=True)
        self.log("test_acc", self.test_acc)

    def frontend_distance(self) -> torch.Tensor:
        """Squared distance of the trainable front end's parameters from where this fit started (L2-SP's
        ``sum ||theta - theta_0||^2``; 0 before the fit starts or with a fixed front end)."""
        params = self.model.frontend_parameters()
        if not self._frontend_start or not params:
            return torch.zeros((), device=self.device)
        return sum(((p - p0) ** 2).sum() for p, p0 in zip(params, self._frontend_start))

    # -- optimisation ----------------------------------------------------------
    def param_groups(self) -> list[dict]:
        """The network; the trainable front end's raw bases (STFT kernels, a raw Mel matrix) at ``frontend_lr``;
        its shape parameters (log-domain Mel weights, the filters' centres and bandwidths, the STFT window's log
        gains) at the network's lr (their gradients are on the network's scale: shares of a filter's output). Neither front-end group has weight decay (it would
        pull the bases to zero)."""
        hp = self.hparams
        groups = [{"params": self.model.network_parameters(), "lr": hp.lr, "weight_decay": hp.weight_decay,
                   "name": "network"}]
        shape = self.model.frontend.shape_parameters()
        raw = [p for p in self.model.frontend_parameters() if all(p is not q for q in shape)]
        if raw:
            groups.append({"params": raw, "lr": hp.frontend_lr, "weight_decay": 0.0, "name": "frontend"})
        if shape:
            groups.append({"params": shape, "lr": hp.lr, "weight_decay": 0.0, "name": "frontend_shape"})
        return groups

    def configure_optimizers(self):
        hp = self.hparams
        groups = self.param_groups()
        if hp.optimizer == "sgd":
            opt = torch.optim.SGD(groups, momentum=0.9, nesterov=False)
        elif hp.optimizer == "adam":
            opt = torch.optim.AdamW(groups)
        else:
            raise ValueError(f"unknown optimizer {hp.optimizer!r} (sgd or adam)")
        total = max(1, int(self.trainer.estimated_stepping_batches))
        max_epochs = max(1, self.trainer.max_epochs or 1)
        warmup = int(total * min(hp.warmup_epochs, max_epochs / 4) / max_epochs)

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

        frozen = int(total * min(hp.frontend_freeze_epochs, max_epochs) / max_epochs)

        def frontend_factor(step: int) -> float:  # 0 while the front end is frozen, then the network's schedule
            return 0.0 if step < frozen else factor(step)

        factors = [frontend_factor if group["name"].startswith("frontend") else factor for group in groups]
        schedule = torch.optim.lr_scheduler.LambdaLR(opt, factors)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # The same self-describing dict `spotter.load_model` reads, so a .ckpt is usable as it is.
        meta = {"epoch": int(self.current_epoch), "hparams": {k: v for k, v in self.hparams.items()
                                                               if isinstance(v, (int, float, str, bool))}}
        checkpoint["spotter"] = make_checkpoint(self.model, meta)
        if self._frontend_start:
            checkpoint["frontend_start"] = [t.cpu() for t in self._frontend_start]

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._frontend_start = list(checkpoint.get("frontend_start", []))


class KWSDataModule(pl.LightningDataModule):
    """Speech-Commands-layout folder -> train/val/test loaders of ``(waveform, label)``."""

    def __init__(self, root: str | Path, batch_size: int = 128, workers: int = 0, seed: int = 0,
                 preload: bool = True, silence_fraction: float = 0.1, unknown_fraction: float = 0.1,
                 redraw_unknown: bool = False, progress: bool = True, keywords=KEYWORDS,
                 clip_samples: int = CLIP_SAMPLES) -> None:
        super().__init__()
        self.clip_samples = clip_samples  # the model's window: every clip is cut or padded to it
        self.keywords = tuple(keywords)
        self.redraw_unknown = redraw_unknown
        self.root = Path(root)
        self.batch_size = batch_size
        self.workers = workers
        self.seed = seed
        self.preload = preload
        self.progress = progress
        self.fractions = {"silence_fraction": silence_fraction, "unknown_fraction": unknown_fraction}
        self.datasets: dict = {}
        self.noises: list[torch.Tensor] = []

    def dataset(self, split: str):
        from ..data.speech_commands import SpeechCommands

        if split not in self.datasets:
            self.datasets[split] = SpeechCommands(self.root, split, seed=self.seed, preload=self.preload,
                                                  progress=self.progress, keywords=self.keywords,
                                                  clip_samples=self.clip_samples, all_unknown=self.redraw_unknown and split == "train", **self.fractions)
        return self.datasets[split]

    def setup(self, stage: str | None = None) -> None:
        from ..data.speech_commands import load_noise

        if stage in (None, "fit"):
            for split in ("train", "val"):
                if len(self.dataset(split)) == 0:
                    raise SpotterError(f"--data {self.root}: the {split} split is empty; a training folder needs "
                                       "word folders and validation_list.txt / testing_list.txt (Speech Commands layout)")
            # Mix only the training region of each noise file: val/test silence is cut from the rest.
            self.noises = [torch.from_numpy(n) for n in load_noise(self.root, split="train")]
        if stage in (None, "test"):
            self.dataset("test")

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        dataset = self.dataset(split)
        sampler = None
        if shuffle and dataset.unknown_per_epoch is not None:
            sampler, shuffle = UnknownRedrawSampler(dataset, self.seed), False
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle, sampler=sampler,
                          num_workers=self.workers, persistent_workers=self.workers > 0,
                          drop_last=split == "train" and len(dataset) > self.batch_size)

    def train_dataloader(self):
        return self._loader("train", True)

    def val_dataloader(self):
        return self._loader("val", False)

    def test_dataloader(self):
        return self._loader("test", False)


class UnknownRedrawSampler(torch.utils.data.Sampler):
    """Every epoch: all keyword and silence examples, plus ``dataset.unknown_per_epoch`` unknown clips drawn
    afresh (without replacement) from all of the dataset's unknown clips, in a new random order."""

    def __init__(self, dataset, seed: int = 0) -> None:
        labels = np.array([ex.label for ex in dataset.examples])
        unknown = dataset.labels.index(UNKNOWN)
        self.fixed = np.flatnonzero(labels != unknown)
        self.unknown = np.flatnonzero(labels == unknown)
        self.per_epoch = min(int(dataset.unknown_per_epoch), len(self.unknown))
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.fixed) + self.per_epoch

    def set_epoch(self, epoch: int) -> None:  # Lightning calls it before every epoch (so --resume draws the same)
        self.epoch = epoch

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        drawn = rng.choice(self.unknown, size=self.per_epoch, replace=False)
        order = np.concatenate([self.fixed, drawn])
        return iter(rng.permutation(order).tolist())


def augment_defaults() -> dict:
    return asdict(AugmentConfig())
