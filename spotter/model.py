"""Classifiers: waveform ``(B, window)`` -> logits ``(B, n_classes)`` (the window: 16000 samples, 1 s,
unless the front end says otherwise: ``FrontendConfig.window_samples``).

Every model is a :class:`KeywordModel`: the log-Mel front end
(:class:`spotter.features.LogMel`) as its first layer, then a network on the
``(B, 1, 40, 101)`` log-Mel image.  Models are picked by name from
:data:`MODELS`:

* ``linear`` - front end, flatten, one ``nn.Linear`` (the nnAudio tutorial's
  baseline).
* ``bcresnet-1``, ``-1.5``, ``-2``, ``-3``, ``-6``, ``-8`` - Broadcasted
  Residual Learning (Kim et al., Interspeech 2021) at width multiplier tau:
  a 5x5 conv head with frequency stride 2; four stages of BC-ResBlocks
  (2, 2, 4, 4 blocks; 8, 12, 16, 20 x tau channels; frequency stride 2 in the
  first block of stages 2 and 3; temporal dilation 1, 2, 4, 8); each block is
  a frequency-wise depthwise conv + SubSpectral Norm (5 sub-bands) (f2),
  frequency average pooling, a dilated temporal depthwise conv + BN + swish +
  1x1 conv + channel dropout (f1), and the f1 output broadcast back over
  frequency and added to f2's output and (in same-width blocks) the input.
  Classifier head: 5x5 depthwise conv (no frequency padding), 1x1 conv to
  32 x tau channels, BN, ReLU, global average pooling, 1x1 conv to classes.

An **ensemble** is named by its members joined with ``+``, e.g.
``bcresnet-3+bcresnet-3``: one front end, then each member network on the same
log-Mel image, and their class probabilities averaged (:class:`EnsembleNet`).
:func:`ensemble` builds one from trained models (``spotter ensemble``).
Their faster inference forms (stacked, folded) are in :mod:`spotter.inference`.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import nn

from .config import ARCHITECTURES, LABELS, FrontendConfig
from .features import LogMel


class KeywordModel(nn.Module):
    """Front end + classifier network, with the facts a checkpoint needs."""

    def __init__(self, name: str, net: nn.Module, frontend: LogMel, labels=LABELS) -> None:
        super().__init__()
        self.name = name
        self.labels = tuple(labels)
        self.frontend = frontend
        self.net = net

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Logits from log-Mel features ``(B, 1, n_mels, frames)`` (normalised here if the front end says so)."""
        return self.net(self.frontend.normalize(features))

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.classify(self.frontend(waveform))

    def frontend_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.frontend.parameters() if p.requires_grad]

    def network_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.net.parameters() if p.requires_grad]


class LinearNet(nn.Module):
    """Flatten the log-Mel image, one linear layer to the classes."""

    def __init__(self, n_mels: int, n_frames: int, n_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(n_mels * n_frames, n_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(features.flatten(1))


class SubSpectralNorm(nn.Module):
    """BatchNorm applied separately to ``n_bands`` frequency sub-bands."""

    def __init__(self, channels: int, n_bands: int = 5, eps: float = 1e-5) -> None:
        super().__init__()
        self.n_bands = n_bands
        self.bn = nn.BatchNorm2d(channels * n_bands, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, f, t = x.shape
        if f % self.n_bands:
            raise ValueError(f"SubSpectralNorm: {f} frequency bins do not split into {self.n_bands} bands")
        x = self.bn(x.reshape(b, c * self.n_bands, f // self.n_bands, t))
        return x.reshape(b, c, f, t)


class BCResBlock(nn.Module):
    """One broadcasted-residual block; a transition block when widths differ."""

    def __init__(self, in_ch: int, out_ch: int, freq_stride: int, dilation: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.transition = in_ch != out_ch
        layers: list[nn.Module] = []
        if self.transition:
            layers += [nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)]
        layers += [
            nn.Conv2d(out_ch, out_ch, (3, 1), stride=(freq_stride, 1), padding=(1, 0), groups=out_ch, bias=False),
            SubSpectralNorm(out_ch, 5),
        ]
        self.f2 = nn.Sequential(*layers)
        self.f1 = nn.Sequential(
            nn.Conv2d(out_ch, out_ch, (1, 3), padding=(0, dilation), dilation=(1, dilation), groups=out_ch, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.SiLU(inplace=True),
            nn.Conv2d(out_ch, out_ch, 1, bias=False),
            nn.Dropout2d(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        two_d = self.f2(x)
        one_d = self.f1(two_d.mean(dim=2, keepdim=True))  # frequency average pooling
        out = two_d + one_d  # broadcast over frequency
        if not self.transition:
            out = out + x
        return torch.relu(out)


class BCResNet(nn.Module):
    """BC-ResNet-tau on log-Mel input ``(B, 1, 40, T)``."""

    BLOCKS = (2, 2, 4, 4)
    STRIDED_STAGES = (1, 2)

    def __init__(self, tau: float, n_classes: int) -> None:
        super().__init__()
        base = int(8 * tau)
        widths = [base * 2, base, int(base * 1.5), base * 2, int(base * 2.5), base * 4]
        self.head = nn.Sequential(
            nn.Conv2d(1, widths[0], 5, stride=(2, 1), padding=2, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        blocks: list[nn.Module] = []
        for stage, n_blocks in enumerate(self.BLOCKS):
            for i in range(n_blocks):
                in_ch = widths[stage] if i == 0 else widths[stage + 1]
                stride = 2 if (i == 0 and stage in self.STRIDED_STAGES) else 1
                blocks.append(BCResBlock(in_ch, widths[stage + 1], stride, dilation=2**stage))
        self.blocks = nn.Sequential(*blocks)
        c = widths[-2]
        self.classifier = nn.Sequential(
            nn.Conv2d(c, c, 5, padding=(0, 2), groups=c, bias=False),
            nn.Conv2d(c, widths[-1], 1, bias=False),
            nn.BatchNorm2d(widths[-1]),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(widths[-1], n_classes, 1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.classifier(self.blocks(self.head(features)))
        return x.flatten(1)


class EnsembleNet(nn.Module):
    """Several networks on the same features; the output is the log of their mean class probability.

    Log-probabilities are valid logits: their softmax is the mean of the members' softmax outputs,
    so everything that takes a model's logits (streaming, evaluation, cross-entropy) scores the
    averaged posteriors. Averaging independently trained models cancels the errors they do not
    share: a window of speech one member takes for a keyword is rarely one the others do too."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two members")
        self.members = nn.ModuleList(members)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        log_probs = torch.stack([torch.log_softmax(m(features), dim=-1) for m in self.members])
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))


ENSEMBLE_JOIN = "+"


def member_names(name: str) -> list[str]:
    """The architectures of a model name: ``["bcresnet-3", "bcresnet-3"]`` for ``"bcresnet-3+bcresnet-3"``."""
    return name.split(ENSEMBLE_JOIN)


def is_architecture(name: str) -> bool:
    """Whether ``name`` is a registered architecture, or an ensemble of two or more of them."""
    return isinstance(name, str) and all(part in MODELS for part in member_names(name))


def _linear(frontend: LogMel, n_classes: int) -> nn.Module:
    return LinearNet(frontend.config.n_mels, frontend.n_frames(frontend.config.window_samples), n_classes)


def _bcresnet(tau: float) -> Callable[[LogMel, int], nn.Module]:
    return lambda frontend, n_classes: BCResNet(tau, n_classes)


#: Model name -> builder of the network that follows the front end.
MODELS: dict[str, Callable[[LogMel, int], nn.Module]] = {
    name: _linear if name == "linear" else _bcresnet(float(name.removeprefix("bcresnet-"))) for name in ARCHITECTURES
}

#: Parameter counts in Kim et al. (2021), Table 2, for comparison (width 1.5
#: is left out: its figure could not be checked against the paper here).
PAPER_PARAMS = {
    "bcresnet-1": 9_200, "bcresnet-2": 27_300, "bcresnet-3": 54_200,
    "bcresnet-6": 188_000, "bcresnet-8": 321_000,
}


def build_model(
    name: str,
    trainable_mel: bool = False,
    trainable_stft: bool = False,
    labels=LABELS,
    frontend: FrontendConfig | None = None,
) -> KeywordModel:
    """A fresh (untrained) model by registry name, e.g. ``"bcresnet-8"``, ``"linear"``, or an
    ensemble ``"bcresnet-3+bcresnet-3"``."""
    if not is_architecture(name):
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)} "
                         f"(or an ensemble of them joined with {ENSEMBLE_JOIN!r})")
    config = frontend or FrontendConfig()
    config = FrontendConfig(**{**config.to_dict(), "trainable_mel": trainable_mel, "trainable_stft": trainable_stft})
    front = LogMel(config)
    parts = member_names(name)
    if len(parts) == 1:
        return KeywordModel(name, MODELS[name](front, len(labels)), front, labels)
    return KeywordModel(name, EnsembleNet([MODELS[p](front, len(labels)) for p in parts]), front, labels)


def ensemble(models: Sequence[KeywordModel]) -> KeywordModel:
    """One model that averages the class probabilities of ``models`` (trained ones, in eval mode).

    The members share one front end, so they must have been trained with the same front-end
    settings and, where it was trainable, the same front-end weights; and the same labels in
    the same order. Members that are ensembles themselves contribute their members.
    Raises ``ValueError`` naming what differs."""
    if len(models) < 2:
        raise ValueError(f"an ensemble needs at least two models, got {len(models)}")
    first = models[0]
    nets: list[nn.Module] = []
    names: list[str] = []
    for i, m in enumerate(models):
        if tuple(m.labels) != tuple(first.labels):
            raise ValueError(f"model {i + 1} has labels {list(m.labels)}, model 1 {list(first.labels)}: "
                             "an ensemble averages the same classes")
        if m.frontend.config != first.frontend.config:
            raise ValueError(f"model {i + 1}'s front end ({m.frontend.config}) differs from model 1's "
                             f"({first.frontend.config}): the members share one front end")
        mine, theirs = m.frontend.state_dict(), first.frontend.state_dict()
        if any(not torch.equal(mine[k].cpu(), theirs[k].cpu()) for k in theirs):
            raise ValueError(f"model {i + 1}'s trained front-end weights differ from model 1's: "
                             "the members share one front end")
        if isinstance(m.net, EnsembleNet):
            nets.extend(m.net.members)
        else:
            nets.append(m.net)
        names.extend(member_names(m.name))
    config = first.frontend.config
    combined = build_model(ENSEMBLE_JOIN.join(names), config.trainable_mel, config.trainable_stft,
                           labels=first.labels, frontend=config)
    combined.frontend.load_state_dict(first.frontend.state_dict())
    for target, source in zip(combined.net.members, nets):
        target.load_state_dict(source.state_dict())
    return combined.to(next(first.parameters()).device).eval()


def output_layers(net: nn.Module, prefix: str = "") -> list[str]:
    """Names of the layers of ``net`` that map to the classes (one per ensemble member): what changes when
    a network learns another label set."""
    if isinstance(net, EnsembleNet):
        return [name for i, m in enumerate(net.members) for name in output_layers(m, f"{prefix}members.{i}.")]
    if isinstance(net, LinearNet):
        return [f"{prefix}fc"]
    if isinstance(net, BCResNet):
        return [f"{prefix}classifier.{len(net.classifier) - 1}"]
    raise TypeError(f"no output layer known for {type(net).__name__}")


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters of ``module`` (buffers such as frozen bases excluded)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
