"""Self-describing checkpoints: what ``listen`` needs, and nothing that runs code.

A spotter checkpoint is a ``torch.save``-d dict of plain Python values and
tensors::

    {"format": "spotter-checkpoint", "version": 1,
     "model": "bcresnet-1", "labels": [...12 names...],
     "frontend": {FrontendConfig fields}, "state_dict": {...},
     "meta": {free-form: data, epochs, metrics, ...}}

An enrolled checkpoint (:mod:`spotter.enroll`) also keeps its base model, a checkpoint dict of
its own under ``"base"``, which runs beside it (:mod:`spotter.guard`).

Lightning checkpoints written by ``spotter train`` carry the same dict under
the key ``"spotter"`` and are accepted too.  Loading always uses
``torch.load(..., weights_only=True)``: a checkpoint from a stranger cannot
execute code, it is refused instead.
"""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import torch

from .config import SAMPLE_RATE, FrontendConfig
from .compute import select_device
from .locate import DEFAULT_MODEL, SUFFIXES, CheckpointError, available_models, checkpoint_dirs, resolve, shipped_dir
from .model import MODELS, KeywordModel, build_model, is_architecture

__all__ = ["DEFAULT_MODEL", "SUFFIXES", "CheckpointError", "available_models", "checkpoint_dirs", "load_model",
           "make_checkpoint", "model_from_checkpoint", "read_checkpoint", "resolve", "save_checkpoint", "shipped_dir"]

FORMAT = "spotter-checkpoint"
VERSION = 1


def make_checkpoint(model: KeywordModel, meta: dict | None = None) -> dict:
    """The checkpoint dict for ``model`` (tensors moved to CPU); with its base model when it keeps one."""
    ckpt = {
        "format": FORMAT,
        "version": VERSION,
        "model": model.name,
        "labels": list(model.labels),
        "frontend": model.frontend.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": dict(meta or {}),
    }
    beside = getattr(model, "guard", None)
    if beside is not None:
        ckpt["base"] = make_checkpoint(beside.model, getattr(beside.model, "meta", {}))
    return ckpt


def save_checkpoint(model: KeywordModel, path: str | os.PathLike, meta: dict | None = None) -> Path:
    """Write ``model`` as a spotter checkpoint; written to a temp file then renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(make_checkpoint(model, meta), tmp)
    tmp.replace(path)
    return path


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The checkpoint dict of a file, validated; :class:`CheckpointError` when unusable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    try:
        with warnings.catch_warnings():  # torch's notes on odd pickles would add lines to the one-line refusal
            warnings.simplefilter("ignore")
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(f"checkpoint {path}: {_refusal(str(err))}") from None
    except Exception as err:  # torch.load raises many types on damaged files (KeyError, EOFError, ...)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"checkpoint {path}: truncated or not a torch checkpoint ({first})") from None
    if isinstance(raw, dict) and isinstance(raw.get("spotter"), dict):  # a Lightning checkpoint
        raw = raw["spotter"]
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path}: not a spotter checkpoint (no '{FORMAT}' header)")
    if not isinstance(raw.get("version", 0), int):
        raise CheckpointError(f"checkpoint {path}: damaged header (version {raw.get('version')!r} is not a number)")
    if raw.get("version", 0) > VERSION:
        raise CheckpointError(f"checkpoint {path}: format version {raw['version']} is newer than this spotter ({VERSION}); upgrade spotter")
    missing = [k for k in ("model", "labels", "frontend", "state_dict") if k not in raw]
    if missing:
        raise CheckpointError(f"checkpoint {path}: incomplete, missing {', '.join(missing)}")
    if not is_architecture(raw["model"]):
        raise CheckpointError(f"checkpoint {path}: unknown architecture {raw['model']!r} "
                              f"(known: {', '.join(MODELS)}, and ensembles of them joined with '+')")
    return raw


def _refusal(torch_message: str) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in one line (torch's own text is a page)."""
    import re

    found = re.search(r"GLOBAL ([\w.]+)", torch_message)
    if found:
        return (f"refused, it holds Python objects other than tensors and plain values ({found.group(1)}), "
                "and loading it could run code; spotter never does: use a checkpoint saved by spotter")
    found = re.search(r"Unsupported operand \d+", torch_message) or re.search(r"Unpickler error: *([^\n]+)", torch_message)
    detail = found.group(found.lastindex or 0).strip() if found else " ".join(torch_message.split())[:120]
    return (f"refused, not a torch checkpoint of tensors and plain values (a raw pickle or other data: {detail}); "
            "use a checkpoint saved by spotter")


def model_from_checkpoint(ckpt: dict, source: str = "checkpoint") -> KeywordModel:
    """Build the architecture a checkpoint dict describes and load its weights."""
    labels, state = ckpt["labels"], ckpt["state_dict"]
    if not isinstance(labels, (list, tuple)) or not labels or not all(isinstance(x, str) for x in labels):
        raise CheckpointError(f"{source}: its labels are not a list of class names ({type(labels).__name__})")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{source}: its state_dict is not a dict of tensors")
    try:
        if not isinstance(ckpt["frontend"], dict):
            raise TypeError(f"a {type(ckpt['frontend']).__name__}, not a dict")
        frontend = FrontendConfig.from_dict(ckpt["frontend"])
        model = build_model(
            ckpt["model"],
            trainable_mel=frontend.trainable_mel,
            trainable_stft=frontend.trainable_stft,
            labels=labels,
            frontend=frontend,
        )
    except Exception as err:  # noqa: BLE001 - any bad setting: the file is unusable, say why
        detail = " ".join(str(err).split()) or type(err).__name__
        raise CheckpointError(f"{source}: its front-end settings cannot build a model ({detail[:200]})") from None
    if frontend.sample_rate != SAMPLE_RATE:
        raise CheckpointError(f"{source}: the model expects {frontend.sample_rate} Hz audio; spotter streams "
                              f"{SAMPLE_RATE} Hz (retrain it at {SAMPLE_RATE} Hz)")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        detail = " ".join(str(err).split())
        raise CheckpointError(f"{source}: weights do not fit architecture {ckpt['model']!r}: {detail[:300]}") from None
    model.meta = dict(ckpt.get("meta", {}))
    if "base" in ckpt:  # an enrolled model: its base model runs beside it
        from .detector import DetectorConfigError
        from .guard import base_beside

        what = f"{source} (the base model it keeps)"
        base = ckpt["base"]
        if not isinstance(base, dict):
            raise CheckpointError(f"{what}: a {type(base).__name__}, not a checkpoint; enroll again")
        missing = [k for k in ("model", "labels", "frontend", "state_dict") if k not in base]
        if missing:
            raise CheckpointError(f"{what}: incomplete, missing {', '.join(missing)}; enroll again")
        base_model = model_from_checkpoint(base, source=what)
        try:
            model.guard = base_beside(base_model, model.meta.get("guard"), what)
        except DetectorConfigError as err:
            raise CheckpointError(f"{source}: {err}") from None
    return model


def load_model(path_or_name: str | os.PathLike | None = None, device: str | torch.device | None = None) -> KeywordModel:
    """A ready model in eval mode, from a checkpoint path or a shipped model name.

    Labels, architecture and front end come from the checkpoint itself.  An
    unknown name raises :class:`CheckpointError` listing what exists.
    ``device=None`` picks CUDA when available, else CPU.
    """
    device = select_device("auto") if device is None else device
    path = resolve(path_or_name)
    model = model_from_checkpoint(read_checkpoint(path), source=f"checkpoint {path}")
    model.source = str(path)
    beside = getattr(model, "guard", None)
    if beside is not None:
        beside.model.to(device).eval()
    return model.to(device).eval()
