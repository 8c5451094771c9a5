"""Inference forms of trained networks: the same outputs, less time per window.

:func:`stacked` runs the members of an ensemble of one width as one network of grouped
layers (:class:`StackedNet`: about a third less time per window for two BC-ResNet-3 on a
CPU); :func:`folded` gives a BC-ResNet's inference form (:class:`FoldedBCResNet`: BatchNorm
folded into the convolutions, about a fifth less time again). The streaming engine uses
both through :func:`inference_classifier`. :func:`merged_means` is the form exported to ONNX
(each block's frequency average and temporal convolution as one convolution). Nothing here
trains; the rewrites are copies.
"""

from __future__ import annotations

import copy
import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from .model import BCResBlock, BCResNet, EnsembleNet, KeywordModel, SubSpectralNorm


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


class _FirstMember:
    """An ensemble's first member in its inference form, on windows its front end has normalised."""

    def __init__(self, model: KeywordModel) -> None:
        self.normalize = model.frontend.normalize
        self.net = folded(model.net.members[0])


def screening_classifiers(model) -> tuple[_FirstMember, Callable[[torch.Tensor], torch.Tensor]] | None:
    """For screening an ensemble (:func:`spotter.detector.screen_limit`): its first member, and the other
    members (stacked and folded; logits whose softmax is their mean probability) on the normalised
    window; None for a single network."""
    if not isinstance(model, KeywordModel) or not isinstance(model.net, EnsembleNet):
        return None
    rest = list(model.net.members[1:])
    others = folded(rest[0]) if len(rest) == 1 else folded(stacked(EnsembleNet(rest)))
    return _FirstMember(model), others


class MergedMeanBlock(nn.Module):
    """A :class:`BCResBlock` whose frequency average and temporal depthwise convolution are one
    depthwise convolution spanning all ``n_freq`` rows with the temporal weights divided by
    ``n_freq``: the same sum (to float rounding) in one operator instead of two. In ONNX Runtime
    the convolution stays in its blocked (NCHWc) layout where the average did not (measured: about
    a tenth less time per window for the shipped model on a 2-core x86 CPU). It takes over the
    block's layers: :func:`merged_means` gives it a copy."""

    def __init__(self, block: BCResBlock, n_freq: int) -> None:
        super().__init__()
        self.transition = block.transition
        self.f2 = block.f2
        temporal, norm, act, pointwise = list(block.f1)[:4]  # [4]: dropout
        conv = nn.Conv2d(temporal.in_channels, temporal.out_channels, (n_freq, temporal.kernel_size[1]),
                         padding=(0, temporal.padding[1]), dilation=(1, temporal.dilation[1]),
                         groups=temporal.groups, bias=False).to(temporal.weight.device, temporal.weight.dtype)
        with torch.no_grad():
            conv.weight.copy_(temporal.weight.expand(-1, -1, n_freq, -1) / n_freq)
        self.f1 = nn.Sequential(conv, norm, act, pointwise)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        two_d = self.f2(x)
        out = two_d + self.f1(two_d)  # (B, C, 1, T) broadcast over frequency
        if not self.transition:
            out = out + x
        return torch.relu(out)


def merged_means(net: nn.Module, n_mels: int) -> nn.Module:
    """For export: a :class:`BCResNet` (alone or inside a :class:`StackedNet`) for inputs of ``n_mels``
    frequency rows with every block a :class:`MergedMeanBlock`; any other network as it is. A new
    module in eval mode; ``net`` is left untouched."""
    inner = net.net if isinstance(net, StackedNet) else net
    if not isinstance(inner, BCResNet):
        return net
    fused = copy.deepcopy(inner).eval()
    with torch.no_grad():
        x = fused.head(torch.zeros(1, 1, n_mels, 8, device=next(fused.parameters()).device))
        blocks = []
        for block in fused.blocks:
            blocks.append(MergedMeanBlock(block, block.f2(x).shape[2]))
            x = block(x)
    fused.blocks = nn.Sequential(*blocks)
    return (StackedNet(fused, net.n_members, net.n_classes) if isinstance(net, StackedNet) else fused).eval()
