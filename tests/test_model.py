"""The model family: paper sizes, forward/backward, trainable bases that really train, tracing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import spotter
from spotter.config import FrontendConfig
from spotter.inference import FoldedBCResNet, folded, inference_classifier
from spotter.model import MODELS, PAPER_PARAMS, build_model, count_parameters

from conftest import chirp, noise, tone


def batch_of_clips(n: int = 4) -> torch.Tensor:
    clips = [tone(300 + 200 * i) + noise(amp=0.05, seed=i) for i in range(n // 2)]
    clips += [chirp(200, 4000 + 500 * i) for i in range(n - n // 2)]
    return torch.from_numpy(np.stack(clips))


def test_registry_names_and_public_api():
    assert set(MODELS) == {"linear", "bcresnet-1", "bcresnet-1.5", "bcresnet-2", "bcresnet-3", "bcresnet-6", "bcresnet-8"}
    assert spotter.LABELS == ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "unknown", "silence")
    with pytest.raises(ValueError, match="choose one of: linear, bcresnet-1"):
        build_model("bcresnet-99")


@pytest.mark.parametrize("name,paper", sorted(PAPER_PARAMS.items()))
def test_parameter_count_within_10_percent_of_paper(name, paper):
    measured = count_parameters(build_model(name).net)
    print(f"{name}: paper {paper:,} measured {measured:,}")
    assert abs(measured - paper) / paper < 0.10, f"{name}: paper {paper:,}, measured {measured:,}"


def test_bcresnet_1_and_8_match_the_paper_closely():
    assert count_parameters(build_model("bcresnet-1").net) == 9_232
    assert count_parameters(build_model("bcresnet-8").net) == 321_068


def test_widths_grow_with_tau():
    sizes = [count_parameters(build_model(f"bcresnet-{t}").net) for t in ("1", "1.5", "2", "3", "6", "8")]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)


@pytest.mark.parametrize("name", list(MODELS))
def test_forward_and_backward_on_cpu(name):
    model = build_model(name).train()
    x = batch_of_clips(4)
    logits = model(x)
    assert logits.shape == (4, 12)
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 3, 10, 11]))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0
    model.eval()
    with torch.inference_mode():
        assert torch.isfinite(model(x)).all()


def _train_steps(model, steps: int, lr: float = 0.05):
    """A few SGD steps on a real two-class task (tone vs chirp), every trainable parameter included."""
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr, momentum=0.9)
    x = batch_of_clips(8)
    y = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


@pytest.mark.parametrize("name", ["linear", "bcresnet-1"])
def test_trainable_bases_change_and_keep_changing(name):
    torch.manual_seed(0)
    model = build_model(name, trainable_mel=True, trainable_stft=True)

    def bases() -> dict:  # the Mel filters in use are computed from the log-domain weights: read them afresh
        return {k: v.detach().clone() for k, v in model.frontend.basis_tensors().items()}

    start = bases()
    _train_steps(model, 5)
    middle = bases()
    _train_steps(model, 5)
    end = bases()
    for key in ("mel_basis", "stft.wsin", "stft.wcos"):
        first = (middle[key] - start[key]).abs().max().item()
        second = (end[key] - middle[key]).abs().max().item()
        # nnAudio issue #114: a trainable mel_basis that stops updating. Both halves must move it.
        assert first > 1e-6 and second > 1e-6, f"{key} moved {first:.2e} then {second:.2e}"
    with torch.no_grad():
        assert torch.isfinite(model(batch_of_clips(4))).all(), "trained bases must not produce NaN"


def test_frozen_bases_are_bit_identical_after_training():
    torch.manual_seed(0)
    model = build_model("bcresnet-1")
    start = {k: v.clone() for k, v in model.frontend.basis_tensors().items()}
    net_start = [p.detach().clone() for p in model.net.parameters()]
    _train_steps(model, 5)
    for key, value in model.frontend.basis_tensors().items():
        assert torch.equal(value, start[key]), key
    assert any(not torch.equal(a, b.detach()) for a, b in zip(net_start, model.net.parameters())), "the network trained"


@pytest.mark.parametrize("mel,stft,param", [(True, False, "log"), (True, False, "matrix"), (True, False, "band"),
                                            (False, True, "log"), (True, True, "log"), (False, False, "log")])
def test_gradients_reach_exactly_the_trainable_bases(mel, stft, param):
    model = build_model("bcresnet-1", trainable_mel=mel, trainable_stft=stft, frontend=FrontendConfig(mel_param=param))
    torch.nn.functional.cross_entropy(model(batch_of_clips(2)), torch.tensor([1, 2])).backward()
    stft_module = model.frontend.mel.stft
    fe = model.frontend
    mel_weights = {"log": [fe.mel_log], "band": [fe.mel_centre, fe.mel_width], "matrix": [fe.mel.mel_basis]}[param]
    for name, tensor, trainable in ([("mel", w, mel) for w in mel_weights] + [("stft.wsin", stft_module.wsin, stft),
                                                                              ("stft.wcos", stft_module.wcos, stft)]):
        if trainable:
            assert isinstance(tensor, torch.nn.Parameter) and tensor.grad is not None
            assert tensor.grad.abs().sum() > 0, f"{name}: zero gradient"
        else:
            assert tensor is None or (not tensor.requires_grad and tensor.grad is None)
    names = {n for n, _ in model.named_parameters()}
    assert ("frontend.mel_log" in names) == (mel and param == "log")
    assert ("frontend.mel_centre" in names) == ("frontend.mel_width" in names) == (mel and param == "band")
    assert ("frontend.mel.mel_basis" in names) == (mel and param == "matrix")
    assert ("frontend.mel.stft.wsin" in names) == stft and ("frontend.mel.stft.wcos" in names) == stft


@pytest.mark.parametrize("name", ["linear", "bcresnet-1", "bcresnet-8"])
def test_jit_trace_of_the_inference_path_gives_the_same_logits(name):
    model = build_model(name).eval()
    x = batch_of_clips(2)
    with torch.inference_mode():
        expected = model(x)
    traced = torch.jit.trace(model, x[:1], check_trace=False)
    with torch.inference_mode():
        torch.testing.assert_close(traced(x), expected, rtol=1e-4, atol=1e-4)


def test_mean_normalised_front_end_ignores_level_and_a_fixed_spectral_tilt():
    """normalize="mean" subtracts each Mel bin's window mean: a louder clip, or one through a fixed
    filter (a pre-emphasis tilt here), gives the same normalised log-Mel image (up to the log offset
    in near-silent bins and the filter's slope within a bin); without it the difference stays."""
    from spotter.config import FrontendConfig

    x = batch_of_clips(4)
    tilted = torch.cat([x[:, :1], x[:, 1:] - 0.3 * x[:, :-1]], dim=1)  # a gentle high-frequency tilt
    for normalize, same in (("mean", True), ("none", False)):
        front = build_model("bcresnet-1", frontend=FrontendConfig(normalize=normalize)).frontend
        with torch.inference_mode():
            ref, louder, other = (front.normalize(front(clips)) for clips in (x, 4 * x, tilted))
        level, tilt = (ref - louder).abs().median().item(), (ref - other).abs().median().item()
        if same:
            assert level < 0.01 and tilt < 0.02
        else:
            assert level > 2.7 and tilt > 0.2  # log(16) = 2.77


def test_unknown_normalisation_is_refused():
    from spotter.config import FrontendConfig

    with pytest.raises(ValueError, match="normalize='cmvn': use one of none, mean"):
        FrontendConfig(normalize="cmvn")


def _trained_like(name: str, seed: int):
    """A network whose BatchNorm layers hold statistics and affine weights away from their
    defaults, as after training (folding the default ones would be a no-op)."""
    torch.manual_seed(seed)
    model = build_model(name)
    with torch.no_grad():
        for t in model.net.parameters():
            if t.dim() == 1:  # BatchNorm / SubSpectralNorm gamma and beta, the output layer's bias
                t.add_(0.3 * torch.randn_like(t))
        for n, b in model.net.named_buffers():
            if n.endswith("running_mean"):
                b.add_(0.2 * torch.randn_like(b))
            elif n.endswith("running_var"):
                b.mul_(torch.empty_like(b).uniform_(0.5, 2.0))
    return model.eval()


@pytest.mark.parametrize("name", ["bcresnet-1", "bcresnet-3"])
def test_folded_bcresnet_gives_the_networks_outputs(name):
    model = _trained_like(name, seed=5)
    fast = folded(model.net)
    assert isinstance(fast, FoldedBCResNet)
    with torch.inference_mode():
        feats = model.frontend.normalize(model.frontend(batch_of_clips(4)))
        want = model.net(feats)
        torch.testing.assert_close(fast(feats), want, atol=1e-4, rtol=1e-4)
        # the statistics matter: the same network with default BatchNorm gives other logits
        assert (build_model(name).eval().net(feats) - want).abs().max() > 1e-2
    # a frozen copy: training the original afterwards does not change it
    before = fast(feats).clone()
    with torch.no_grad():
        for p in model.net.parameters():
            p.add_(1.0)
    torch.testing.assert_close(fast(feats), before)


def test_only_bcresnets_are_folded():
    linear = build_model("linear").eval()
    assert folded(linear.net) is linear.net
    assert inference_classifier(linear) == linear.classify
    model = _trained_like("bcresnet-1", seed=6)
    fast = inference_classifier(model)
    assert fast != model.classify
    with torch.inference_mode():
        feats = model.frontend(batch_of_clips(2))
        torch.testing.assert_close(fast(feats), model.classify(feats), atol=1e-4, rtol=1e-4)
