"""Ensembles: several trained networks on one front end, their class probabilities averaged.

Members here are BC-ResNets with different random weights (as two training runs
would give) on real signals; the properties under test are that the ensemble
computes the mean of its members' probabilities, offline and streaming alike,
that it survives a checkpoint round trip and the command line, and that members
which cannot share a front end are refused with a one-line reason.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from spotter.checkpoint import load_model, save_checkpoint
from spotter.config import SAMPLE_RATE, FrontendConfig
from spotter.events import PosteriorUpdate
from spotter.inference import (FoldedBCResNet, MergedMeanBlock, StackedNet, folded, inference_classifier, merged_means,
                               stacked)
from spotter.model import BCResBlock, EnsembleNet, build_model, ensemble
from spotter.pipeline import Engine, EngineConfig

from conftest import chirp, noise, tone

MEAN = FrontendConfig(normalize="mean")


def _member(seed: int, name: str = "bcresnet-1", **kw):
    torch.manual_seed(seed)
    model = build_model(name, frontend=kw.pop("frontend", MEAN), **kw)
    with torch.no_grad():  # BN statistics away from their defaults, as after training
        for n, b in model.named_buffers():
            if n.endswith("running_mean"):
                b.add_(0.1 * torch.randn_like(b))
    return model.eval()


@pytest.fixture(scope="module")
def clips() -> torch.Tensor:
    return torch.from_numpy(np.stack([tone(500), chirp(100, 6000), noise(amp=0.2, seed=2),
                                      tone(2000, amp=0.2) + noise(amp=0.02, seed=3)]))


def _probs(model, x):
    with torch.inference_mode():
        return torch.softmax(model(x), dim=-1)


def test_ensemble_outputs_the_mean_of_its_members_probabilities(clips):
    a, b, c = _member(1), _member(2), _member(3, "bcresnet-2")
    both = ensemble([a, b, c])
    assert both.name == "bcresnet-1+bcresnet-1+bcresnet-2" and isinstance(both.net, EnsembleNet)
    assert not both.training
    expected = (_probs(a, clips) + _probs(b, clips) + _probs(c, clips)) / 3
    got = _probs(both, clips)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    for member in (a, b, c):  # an ensemble that just passed one member through would fail here
        assert (got - _probs(member, clips)).abs().max() > 1e-3
    with torch.inference_mode():  # its logits are log-probabilities: cross-entropy scores the average
        assert torch.allclose(torch.logsumexp(both(clips), -1), torch.zeros(len(clips)), atol=1e-5)


def test_an_ensemble_of_an_ensemble_is_flat(clips):
    a, b, c = _member(1), _member(2), _member(3)
    nested = ensemble([ensemble([a, b]), c])
    assert nested.name == "bcresnet-1+bcresnet-1+bcresnet-1" and len(nested.net.members) == 3
    torch.testing.assert_close(_probs(nested, clips), _probs(ensemble([a, b, c]), clips), atol=1e-6, rtol=0)


def test_streaming_engine_scores_the_ensemble_as_offline():
    model = ensemble([_member(4), _member(5)])
    stream = np.concatenate([noise(0.6, amp=0.02, seed=7), chirp(200, 5000, 0.7), tone(900, 0.5, amp=0.3),
                             noise(0.8, amp=0.2, seed=8)]).astype(np.float32)
    engine, updates = Engine(model, EngineConfig(screen=False)), []  # every member on every window
    for i in range(0, stream.size, 700):
        updates += [e for e in engine.feed(stream[i: i + 700]) if isinstance(e, PosteriorUpdate)]
    hop = SAMPLE_RATE // 10
    padded = np.concatenate([np.zeros(SAMPLE_RATE, np.float32), stream])
    ends = list(range(hop, stream.size + 1, hop))
    assert [round(u.time * SAMPLE_RATE) for u in updates] == ends
    offline = _probs(model, torch.from_numpy(np.stack([padded[e: e + SAMPLE_RATE] for e in ends]))).numpy()
    np.testing.assert_allclose(np.array([u.probs for u in updates]), offline, atol=1e-5)


def test_checkpoint_round_trip_through_the_command_line(tmp_path, clips):
    a, b = _member(1), _member(2)
    save_checkpoint(a, tmp_path / "a.pt", meta={"data": "corpus-a", "test_accuracy": 0.9, "detector": {"threshold": 0.5}})
    save_checkpoint(b, tmp_path / "b.pt", meta={"data": "corpus-b"})
    out = subprocess.run([sys.executable, "-m", "spotter", "ensemble", str(tmp_path / "a.pt"), str(tmp_path / "b.pt"),
                          "--out", str(tmp_path / "ab.pt")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "bcresnet-1+bcresnet-1" in out.stdout and "spotter tune" in out.stdout
    loaded = load_model(tmp_path / "ab.pt", device="cpu")
    torch.testing.assert_close(_probs(loaded, clips), (_probs(a, clips) + _probs(b, clips)) / 2, atol=1e-6, rtol=0)
    members = loaded.meta["members"]
    assert [m["data"] for m in members] == ["corpus-a", "corpus-b"]
    assert members[0]["checkpoint"].endswith("a.pt") and members[0]["test_accuracy"] == 0.9
    assert "detector" not in loaded.meta and "detector" not in members[0]  # a member's tuning fits only itself
    info = subprocess.run([sys.executable, "-m", "spotter", "info", str(tmp_path / "ab.pt")],
                          capture_output=True, text=True, timeout=120)
    assert info.returncode == 0, info.stderr
    assert "bcresnet-1+bcresnet-1" in info.stdout and "2 models" in info.stdout and "corpus-b" in info.stdout
    info = json.loads(subprocess.run([sys.executable, "-m", "spotter", "info", str(tmp_path / "ab.pt"), "--json"],
                                     capture_output=True, text=True, timeout=120).stdout)
    assert info["params"] == 2 * sum(p.numel() for p in a.net.parameters())


@pytest.mark.parametrize("other,reason", [
    (lambda: _member(2, frontend=FrontendConfig()), "front end"),
    (lambda: _member(2, trainable_mel=True), "front end"),
])
def test_members_that_cannot_share_a_front_end_are_refused(other, reason):
    with pytest.raises(ValueError, match=reason):
        ensemble([_member(1), other()])


def test_trained_front_ends_must_be_the_same_weights():
    a, b = _member(1, trainable_mel=True), _member(2, trainable_mel=True)
    ensemble([a, b])  # same initial bases: they can share
    with torch.no_grad():
        b.frontend_parameters()[0].add_(0.01)
    with pytest.raises(ValueError, match="front-end weights differ"):
        ensemble([a, b])


def test_command_line_refusals_are_one_line(tmp_path):
    save_checkpoint(_member(1), tmp_path / "a.pt")
    save_checkpoint(_member(2, labels=("yes", "no", "unknown", "silence")), tmp_path / "small.pt")
    for args, wanted in ((["a.pt"], "at least two"), (["a.pt", "small.pt"], "labels")):
        out = subprocess.run([sys.executable, "-m", "spotter", "ensemble", *[str(tmp_path / a) for a in args],
                              "--out", str(tmp_path / "x.pt")], capture_output=True, text=True, timeout=120)
        assert out.returncode != 0 and wanted in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert not (tmp_path / "x.pt").exists()


def test_stacked_members_give_the_ensembles_outputs_in_one_network(clips):
    members = [_member(seed, "bcresnet-1.5") for seed in (11, 12, 13)]
    model = ensemble(members)
    fused = stacked(model.net)
    assert isinstance(fused, StackedNet) and not fused.training
    # one network: each layer holds all three members' channels side by side
    assert sum(isinstance(m, torch.nn.Conv2d) for m in fused.modules()) == \
        sum(isinstance(m, torch.nn.Conv2d) for m in members[0].net.modules())
    with torch.inference_mode():
        feats = model.frontend.normalize(model.frontend(clips))
        got = torch.softmax(fused(feats), -1)
        torch.testing.assert_close(got, torch.softmax(model.net(feats), -1), atol=1e-5, rtol=0)
        for member in members:  # all members count, not one passed through
            assert (got - torch.softmax(member.net(feats), -1)).abs().max() > 1e-3
    assert isinstance(model.net.members[0].head[0], torch.nn.Conv2d)  # the ensemble itself is left as it was
    assert model.net.members[0].head[0].out_channels == fused.net.head[0].out_channels // 3


def test_merged_frequency_means_give_the_same_outputs_without_a_frequency_average(clips):
    """The exported form: each block's frequency average and temporal convolution as one convolution
    (trained BatchNorm statistics included), alone and stacked; the network it came from is untouched."""
    members = [_member(seed, "bcresnet-1.5") for seed in (11, 12)]
    model = ensemble(members)
    with torch.inference_mode():
        feats = model.frontend.normalize(model.frontend(clips))
        for net, reference in ((stacked(model.net), model.net), (members[0].net, members[0].net)):
            merged = merged_means(net, model.frontend.config.n_mels)
            inner = merged.net if isinstance(merged, StackedNet) else merged
            assert all(isinstance(b, MergedMeanBlock) for b in inner.blocks) and not merged.training
            widths = [b.f1[0].kernel_size[0] for b in inner.blocks]
            assert widths[0] == model.frontend.config.n_mels // 2 and widths[-1] < widths[0]  # rows after each stride
            torch.testing.assert_close(torch.softmax(merged(feats), -1), torch.softmax(reference(feats), -1),
                                       atol=1e-5, rtol=0)
    assert isinstance(members[0].net.blocks[0], BCResBlock)
    linear = build_model("linear").net
    assert merged_means(linear, 40) is linear


def test_networks_that_do_not_line_up_are_not_stacked():
    single = _member(1)
    assert stacked(single.net) is single.net
    mixed = ensemble([_member(1), _member(2, "bcresnet-2")])
    assert stacked(mixed.net) is mixed.net
    assert inference_classifier(mixed) == mixed.classify  # members as they are, one after the other


def test_the_engine_scores_the_shipped_ensemble_stacked_and_folded_as_offline():
    model = load_model(device="cpu")
    assert isinstance(model.net, EnsembleNet) and isinstance(stacked(model.net), StackedNet)
    assert isinstance(folded(stacked(model.net)).net, FoldedBCResNet)  # and folded
    stream = np.concatenate([noise(0.5, amp=0.02, seed=9), chirp(300, 4000, 0.6), tone(700, 0.4, amp=0.3)])
    engine = Engine(model, EngineConfig(screen=False))
    assert engine.scorer.classify != model.classify  # the engine runs the stacked, folded network
    updates = [e for e in engine.feed(stream.astype(np.float32)) if isinstance(e, PosteriorUpdate)]
    padded = np.concatenate([np.zeros(SAMPLE_RATE, np.float32), stream.astype(np.float32)])
    ends = [round(u.time * SAMPLE_RATE) for u in updates]
    offline = _probs(model, torch.from_numpy(np.stack([padded[e: e + SAMPLE_RATE] for e in ends]))).numpy()
    np.testing.assert_allclose(np.array([u.probs for u in updates]), offline, atol=1e-5)


def test_the_torch_runtime_screens_the_shipped_pair_as_the_onnx_runtime_does():
    """The second member runs only where the first one's keyword probability could lead to a detection:
    the same detections as with every member, the ensemble's probabilities wherever both ran, and the
    posteriors kept for tuning other settings are every member's."""
    import soundfile as sf

    from spotter.detector import detector_from_meta, screen_limit
    from spotter.evaluation.tuning import stream_posteriors

    model = load_model(device="cpu")
    example = Path(__file__).resolve().parents[1] / "examples" / "keywords.wav"
    audio = sf.read(example, dtype="float32")[0]
    runs = {}
    for screen in (False, True):
        engine = Engine(model, EngineConfig(screen=screen))
        events = engine.feed(audio)
        updates = [e for e in events if isinstance(e, PosteriorUpdate)]
        runs[screen] = ([(e.keyword, round(e.time, 3)) for e in events if hasattr(e, "keyword")],
                        np.array([u.probs for u in updates]), np.array([u.screened for u in updates]),
                        engine.summary()["screened_windows"])
    (want, every, _, none), (got, probs, screened, count) = runs[False], runs[True]
    assert got == want and len(want) == 8
    assert none == 0 and count == screened.sum() >= 100  # of 277 windows
    np.testing.assert_allclose(probs[~screened], every[~screened], atol=1e-5)
    limit = screen_limit(detector_from_meta(model.meta), 2)
    assert (probs[screened, :10].sum(axis=1) < limit).all()
    assert every[screened, :10].sum(axis=1).max() < 2 * 0.85 - 1  # the pair, too, far from a detection there
    kept = stream_posteriors(model, example)  # for re-scoring: every member's
    np.testing.assert_allclose(kept.probs, every, atol=1e-5)
