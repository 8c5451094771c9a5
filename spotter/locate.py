"""Where checkpoints are: a path, or a shipped model's name. No torch, so the ONNX runtime uses it too."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from .errors import SpotterError

#: The checkpoint ``spotter listen`` uses when none is given.
DEFAULT_MODEL = "bcresnet-3-synth"
SUFFIXES = (".pt", ".ckpt")


class CheckpointError(SpotterError):
    """A checkpoint that cannot be used; the message names the file and why."""


def shipped_dir() -> Path:
    """The folder of the shipped checkpoints: the package data ``spotter.checkpoints`` (the repository's
    ``checkpoints/``, mapped into the package when it is built or installed)."""
    return Path(str(resources.files("spotter.checkpoints")))


def checkpoint_dirs() -> list[Path]:
    """Folders searched for named checkpoints: ``$SPOTTER_CHECKPOINTS``, then the shipped ones."""
    dirs = []
    if os.environ.get("SPOTTER_CHECKPOINTS"):
        dirs.append(Path(os.environ["SPOTTER_CHECKPOINTS"]))
    dirs.append(shipped_dir())
    return dirs


def available_models() -> list[str]:
    """Names of the checkpoints found in :func:`checkpoint_dirs`."""
    names = set()
    for folder in checkpoint_dirs():
        if folder.is_dir():
            names.update(p.stem for p in folder.iterdir() if p.suffix in SUFFIXES)
    return sorted(names)


def resolve(path_or_name: str | os.PathLike | None) -> Path:
    """A checkpoint file from a path or a shipped model name (``None``: the default)."""
    wanted = str(path_or_name) if path_or_name is not None else DEFAULT_MODEL
    path = Path(wanted).expanduser()
    if path.is_file():
        return path
    for folder in checkpoint_dirs():
        for suffix in ("", *SUFFIXES):
            candidate = folder / f"{wanted}{suffix}"
            if candidate.is_file():
                return candidate
    shipped = ", ".join(available_models()) or "none"
    raise CheckpointError(f"checkpoint {wanted!r} not found: no such file and no model of that name (available: {shipped})")


