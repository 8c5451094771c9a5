"""Classifiers: waveform ``(B, 16000)`` -> logits ``(B, n_classes)``.

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
:func:`stacked` runs the members of one width as one network of grouped layers
for inference (:class:`StackedNet`: the same outputs, about a third less time
per window for two BC-ResNet-3 on a CPU), and :func:`folded` gives a BC-ResNet's inference form
(:class:`FoldedBCResNet`: BatchNorm folded into the convolutions, about a fifth less time again);
the streaming engine uses both (:func:`inference_classifier`).
"""

from __future__ import annotations

import copy
import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from .config import LABELS, FrontendConfig
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


class StackedNet(nn.Module):
    """The members of an :class:`EnsembleNet` of one BC-ResNet architecture run as one network.

    Each layer holds the members' layers side by side along the channel axis: the head (which
    all members apply to the same input) has their output channels concatenated, every later
    convolution is grouped so member k only sees member k's channels, BatchNorm and
    SubSpectralNorm (per-channel) have their statistics concatenated. The last layer gives
    ``(B, members x classes)``; the output is the log of the members' mean class probability,
    as :class:`EnsembleNet` gives, in one pass of wider layers instead of one pass per member:
    the same arithmetic with half the operator calls for two members (a BC-ResNet-3 window is
    many small operators, each costing more in dispatch than in arithmetic on a CPU)."""

    def __init__(self, net: nn.Module, n_members: int, n_classes: int) -> None:
        super().__init__()
        self.net, self.n_members, self.n_classes = net, n_members, n_classes

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        logits = self.net(features).reshape(features.shape[0], self.n_members, self.n_classes)
        return torch.logsumexp(torch.log_softmax(logits, dim=-1), dim=1) - math.log(self.n_members)


def _stacked_conv(convs: Sequence[nn.Conv2d], shared_input: bool) -> nn.Conv2d:
    c, g = convs[0], len(convs)
    groups = c.groups if shared_input else c.groups * g
    out = nn.Conv2d(c.in_channels * (1 if shared_input else g), c.out_channels * g, c.kernel_size, c.stride,
                    c.padding, c.dilation, groups=groups, bias=c.bias is not None, padding_mode=c.padding_mode)
    out = out.to(c.weight.device, c.weight.dtype)
    with torch.no_grad():
        out.weight.copy_(torch.cat([m.weight for m in convs]))
        if c.bias is not None:
            out.bias.copy_(torch.cat([m.bias for m in convs]))
    return out


def _stacked_batchnorm(norms: Sequence[nn.BatchNorm2d]) -> nn.BatchNorm2d:
    n = norms[0]
    out = nn.BatchNorm2d(n.num_features * len(norms), eps=n.eps, momentum=n.momentum).to(n.weight.device, n.weight.dtype)
    with torch.no_grad():
        for key in ("weight", "bias", "running_mean", "running_var"):
            getattr(out, key).copy_(torch.cat([getattr(m, key) for m in norms]))
        out.num_batches_tracked.copy_(n.num_batches_tracked)
    return out


def stacked(net: nn.Module) -> nn.Module:
    """For inference: ``net`` as a :class:`StackedNet` when it is an :class:`EnsembleNet` of
    BC-ResNets of one width (the same outputs, less time per window); any other network as it is.
    The result is a new module in eval mode; ``net`` is left untouched."""
    if not isinstance(net, EnsembleNet) or not all(isinstance(m, BCResNet) for m in net.members):
        return net
    members = list(net.members)
    shapes = [{k: v.shape for k, v in m.state_dict().items()} for m in members]
    if any(s != shapes[0] for s in shapes[1:]):
        return net  # different widths: the layers do not line up
    fused = copy.deepcopy(members[0])
    layers = [dict(m.named_modules()) for m in members]
    first_conv = True
    for name, module in list(fused.named_modules()):
        parts = [layer[name] for layer in layers]
        if isinstance(module, nn.Conv2d):
            replacement = _stacked_conv(parts, shared_input=first_conv)  # only the head sees the shared input
            first_conv = False
        elif isinstance(module, nn.BatchNorm2d):
            replacement = _stacked_batchnorm(parts)
        else:
            continue
        parent, _, attr = name.rpartition(".")
        setattr(fused.get_submodule(parent) if parent else fused, attr, replacement)
    n_classes = members[0].classifier[-1].out_channels
    return StackedNet(fused, len(members), n_classes).eval()


class _FoldedConv:
    """A convolution's weights and settings for inference, with the BatchNorm that followed it folded
    in (``w * gamma / sigma``, ``(b - mu) * gamma / sigma + beta``); copies, on the layer's device."""

    def __init__(self, conv: nn.Conv2d, norm: nn.BatchNorm2d | None = None) -> None:
        weight, bias = conv.weight, conv.bias
        if norm is not None:
            weight, bias = fuse_conv_bn_weights(weight, bias, norm.running_mean, norm.running_var, norm.eps,
                                                norm.weight, norm.bias)
        self.weight = weight.detach().clone()
        self.bias = None if bias is None else bias.detach().clone()
        self.settings = (conv.stride, conv.padding, conv.dilation, conv.groups)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, *self.settings)


class _FoldedSubSpectralNorm:
    """:class:`SubSpectralNorm` for inference: one multiply-add per (channel, sub-band)."""

    def __init__(self, norm: SubSpectralNorm) -> None:
        bn = norm.bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        self.scale = scale.detach().reshape(-1, 1, 1).clone()
        self.shift = (bn.bias - bn.running_mean * scale).detach().reshape(-1, 1, 1).clone()
        self.n_bands = norm.n_bands

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        b, c, f, t = x.shape
        bands = x.reshape(b, c * self.n_bands, f // self.n_bands, t)
        return torch.addcmul(self.shift, bands, self.scale).reshape(b, c, f, t)


class _FoldedBlock:
    """A :class:`BCResBlock` for inference (see :class:`FoldedBCResNet`)."""

    def __init__(self, block: BCResBlock) -> None:
        f2, f1 = list(block.f2), list(block.f1)
        self.transition = _FoldedConv(f2[0], f2[1]) if block.transition else None
        self.freq_conv, self.subspectral = _FoldedConv(f2[-2]), _FoldedSubSpectralNorm(f2[-1])
        self.time_conv, self.pointwise = _FoldedConv(f1[0], f1[1]), _FoldedConv(f1[3])  # f1[4]: dropout

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y = x if self.transition is None else torch.relu_(self.transition(x))
        two_d = self.subspectral(self.freq_conv(y))
        one_d = self.pointwise(F.silu(self.time_conv(two_d.mean(dim=2, keepdim=True)), inplace=True))
        out = two_d + one_d
        if self.transition is None:
            out += x
        return torch.relu_(out)


class FoldedBCResNet:
    """A trained :class:`BCResNet` (or the stacked network of several) for inference only: every
    BatchNorm folded into the convolution before it, SubSpectralNorm as one multiply-add, dropout
    gone, and the forward pass plain tensor calls rather than a tree of modules. The same outputs
    (to float rounding) in about four fifths of the time at batch 1 on a CPU, where a BC-ResNet's
    many small layers cost more in dispatch than in arithmetic. A frozen copy on the network's
    device and dtype (not an ``nn.Module``: nothing to train or move); training the original
    afterwards does not change it."""

    def __init__(self, net: BCResNet) -> None:
        head, classifier = list(net.head), list(net.classifier)
        self.head = _FoldedConv(head[0], head[1])
        self.blocks = [_FoldedBlock(b) for b in net.blocks]
        self.temporal = _FoldedConv(classifier[0])
        self.pointwise = _FoldedConv(classifier[1], classifier[2])
        self.output = _FoldedConv(classifier[5])

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        x = torch.relu_(self.head(features))
        for block in self.blocks:
            x = block(x)
        x = torch.relu_(self.pointwise(self.temporal(x)))
        return self.output(x.mean(dim=(2, 3), keepdim=True)).flatten(1)


def folded(net: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """For inference: a :class:`BCResNet`, alone or inside a :class:`StackedNet`, as a
    :class:`FoldedBCResNet`; any other network (members of different widths too) as it is.
    ``net`` itself is left untouched."""
    if isinstance(net, BCResNet):
        return FoldedBCResNet(net)
    if isinstance(net, StackedNet) and isinstance(net.net, BCResNet):
        return StackedNet(FoldedBCResNet(net.net), net.n_members, net.n_classes).eval()
    return net


def inference_classifier(model) -> Callable[[torch.Tensor], torch.Tensor]:
    """What scores log-Mel windows for streaming: ``model.classify`` with its network in its
    inference form, when it has one: an ensemble's members :func:`stacked` into one network when
    they line up, and BC-ResNets :func:`folded`. The same outputs to float rounding, less time per
    window. Anything with a ``classify`` method works."""
    if not isinstance(model, KeywordModel):
        return model.classify
    fast = folded(stacked(model.net))
    if fast is model.net:
        return model.classify
    return lambda features: fast(model.frontend.normalize(features))


ENSEMBLE_JOIN = "+"


def member_names(name: str) -> list[str]:
    """The architectures of a model name: ``["bcresnet-3", "bcresnet-3"]`` for ``"bcresnet-3+bcresnet-3"``."""
    return name.split(ENSEMBLE_JOIN)


def is_architecture(name: str) -> bool:
    """Whether ``name`` is a registered architecture, or an ensemble of two or more of them."""
    return isinstance(name, str) and all(part in MODELS for part in member_names(name))


def _linear(frontend: LogMel, n_classes: int) -> nn.Module:
    from .config import CLIP_SAMPLES

    return LinearNet(frontend.config.n_mels, frontend.n_frames(CLIP_SAMPLES), n_classes)


def _bcresnet(tau: float) -> Callable[[LogMel, int], nn.Module]:
    return lambda frontend, n_classes: BCResNet(tau, n_classes)


#: Model name -> builder of the network that follows the front end.
MODELS: dict[str, Callable[[LogMel, int], nn.Module]] = {
    "linear": _linear,
    **{f"bcresnet-{tau:g}": _bcresnet(tau) for tau in (1, 1.5, 2, 3, 6, 8)},
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


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters of ``module`` (buffers such as frozen bases excluded)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
