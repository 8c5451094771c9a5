"""Self-describing checkpoints: round trip, and every bad file refused with a one-line reason."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

import spotter
from spotter.checkpoint import CheckpointError, load_model, make_checkpoint, save_checkpoint
from spotter.model import build_model
from spotter.config import FrontendConfig

from conftest import chirp, tone


@pytest.fixture
def clips() -> torch.Tensor:
    import numpy as np

    return torch.from_numpy(np.stack([tone(500), chirp(100, 6000)]))


def _perturbed(name="bcresnet-1", **kw):
    torch.manual_seed(1)
    model = build_model(name, **kw)
    with torch.no_grad():  # make weights and BN statistics non-default so a bad load would show
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        for n, b in model.named_buffers():
            if n.endswith("running_mean"):
                b.add_(0.1)
    return model.eval()


@pytest.mark.parametrize("name,kw", [("bcresnet-1", {}), ("linear", {"trainable_mel": True, "trainable_stft": True}),
                                     ("linear", {"trainable_mel": True, "frontend": FrontendConfig(mel_param="matrix")}),
                                     ("bcresnet-1", {"trainable_mel": True, "frontend": FrontendConfig(mel_param="band")}),
                                     ("bcresnet-1", {"trainable_stft": True, "frontend": FrontendConfig(stft_param="window")}),
                                     ("bcresnet-1", {"frontend": FrontendConfig(normalize="mean")})])
def test_round_trip_gives_identical_logits(tmp_path, clips, name, kw):
    model = _perturbed(name, **kw)
    path = save_checkpoint(model, tmp_path / "m.pt", meta={"epochs": 3, "val_accuracy": 0.5})
    loaded = load_model(path, device="cpu")
    assert loaded.name == name and loaded.labels == spotter.LABELS
    assert loaded.frontend.config == model.frontend.config
    assert loaded.meta == {"epochs": 3, "val_accuracy": 0.5}
    assert not loaded.training
    with torch.inference_mode():
        assert torch.equal(loaded(clips), model(clips))


def _saved_before(model, key: str, tmp_path):
    """``model`` saved as a checkpoint written before front-end setting ``key`` existed, and loaded back."""
    ckpt = make_checkpoint(model)
    del ckpt["frontend"][key]
    torch.save(ckpt, tmp_path / "old.pt")
    return load_model(tmp_path / "old.pt", device="cpu")


def test_trainable_filterbank_saved_before_the_log_domain_loads_as_the_raw_matrix(tmp_path, clips):
    """A checkpoint whose front-end settings have no ``mel_param`` trained nnAudio's raw matrix."""
    model = _perturbed("linear", trainable_mel=True, frontend=FrontendConfig(mel_param="matrix"))
    loaded = _saved_before(model, "mel_param", tmp_path)
    assert loaded.frontend.config.mel_param == "matrix"
    with torch.inference_mode():
        assert torch.equal(loaded(clips), model(clips))
    # and a fixed front end saved then is the same front end as a fixed one now
    assert FrontendConfig.from_dict({k: v for k, v in FrontendConfig().to_dict().items() if k != "mel_param"}) \
        == FrontendConfig()


def test_named_model_is_found_in_checkpoint_dirs(tmp_path, monkeypatch):
    save_checkpoint(_perturbed(), tmp_path / "tiny-test.pt")
    monkeypatch.setenv("SPOTTER_CHECKPOINTS", str(tmp_path))
    assert load_model("tiny-test", device="cpu").name == "bcresnet-1"
    assert "tiny-test" in spotter.available_models()
    with pytest.raises(CheckpointError, match=r"'nope' not found.*available: .*tiny-test"):
        load_model("nope")


def _write(path, obj):
    torch.save(obj, path)
    return path


class Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED_BY_CHECKPOINT",))


def test_bad_checkpoints_are_refused_with_file_and_reason(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    good = save_checkpoint(_perturbed(), tmp_path / "good.pt")
    data = good.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.pt").write_text("hello, I am not a checkpoint\n")
    _write(tmp_path / "plain.pt", {"weights": torch.zeros(3)})
    wrong = make_checkpoint(_perturbed())
    wrong["model"] = "bcresnet-8"
    _write(tmp_path / "wrong_arch.pt", wrong)
    unknown = make_checkpoint(_perturbed())
    unknown["model"] = "resnet-152"
    _write(tmp_path / "unknown_arch.pt", unknown)
    with open(tmp_path / "evil.pt", "wb") as fh:
        pickle.dump({"format": "spotter-checkpoint", "x": Evil()}, fh)
    _write(tmp_path / "evil_zip.pt", {"format": "spotter-checkpoint", "x": Evil()})
    cases = {
        "missing.pt": "not found",
        "truncated.pt": "truncated or not a torch checkpoint",
        "text.pt": "truncated or not a torch checkpoint|refused",
        "plain.pt": "not a spotter checkpoint",
        "wrong_arch.pt": "weights do not fit architecture 'bcresnet-8'",
        "unknown_arch.pt": "unknown architecture 'resnet-152'",
        "evil.pt": "refused",
        "evil_zip.pt": "refused",
    }
    for name, reason in cases.items():
        with pytest.raises(CheckpointError, match=reason) as info:
            load_model(str(tmp_path / name), device="cpu")
        message = str(info.value)
        assert "\n" not in message and name in message, message
    assert not (tmp_path / "PWNED_BY_CHECKPOINT").exists(), "a checkpoint executed code"


def test_checkpoint_from_before_front_end_normalisation_loads_unnormalised(tmp_path, clips):
    """Checkpoints written before ``normalize`` existed (the shipped one among them) have no such key."""
    model = _perturbed("bcresnet-1")
    loaded = _saved_before(model, "normalize", tmp_path)
    assert loaded.frontend.config.normalize == "none"
    with torch.inference_mode():
        assert torch.equal(loaded(clips), model(clips))
