"""A user's enrollment recordings: read from a folder, written into a profile.

Both use the Speech Commands layout, so the takes can be inspected, reused and deleted::

    DIR/<keyword>/*.wav              takes of that keyword (any rate, channels; one word each)
    DIR/_speech_/*.wav               optional: the user reading keyword-free text
    DIR/_background_noise_/*.wav     optional: the user's room

A profile lives in the user's data directory (:func:`profile_dir`): its recordings in that
layout and ``model.pt``, the enrolled checkpoint that ``spotter listen --profile NAME`` uses.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import BACKGROUND_NOISE_DIR, CLIP_SAMPLES, SAMPLE_RATE
from ..errors import SpotterError
from .takes import TakeError, find_word, load_take, max_word_s, word_clip

SPEECH_DIR = "_speech_"
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
#: The longest free-speech or room recording read (seconds); longer ones are cut.
MAX_EXTRA_S = 600.0
PROFILE_MODEL = "model.pt"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class EnrollmentError(SpotterError, ValueError):
    """Enrollment input that cannot be used; the message names the file or folder and what to do."""


@dataclass
class Take:
    """One usable take: where it came from, the 1 s window around the word, and the word's span in it."""

    source: str
    clip: np.ndarray
    word_s: float
    snr_db: float


@dataclass
class Enrollment:
    """Everything recorded for one user: takes per keyword, their keyword-free speech and their room."""

    takes: dict[str, list[Take]]
    speech: list[np.ndarray] = field(default_factory=list)
    noise: list[np.ndarray] = field(default_factory=list)

    @property
    def keywords(self) -> list[str]:
        return list(self.takes)

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.takes.items()}


def data_home() -> Path:
    """Where spotter keeps a user's files: ``$SPOTTER_DATA_HOME``, else ``$XDG_DATA_HOME/spotter``
    or ``~/.local/share/spotter``."""
    if os.environ.get("SPOTTER_DATA_HOME"):
        return Path(os.environ["SPOTTER_DATA_HOME"]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base).expanduser() / "spotter"


def profile_dir(name: str) -> Path:
    """The folder of profile ``name`` (a plain name: letters, digits, ``-``, ``_``, ``.``)."""
    if not _NAME.match(name or ""):
        raise EnrollmentError(f"--profile {name!r}: use a plain name of letters, digits, '-', '_' or '.'")
    return data_home() / "profiles" / name


def profile_model(name: str) -> Path:
    """The enrolled checkpoint of profile ``name``; a one-line error naming what to run when there is none."""
    path = profile_dir(name) / PROFILE_MODEL
    if not path.is_file():
        known = sorted(p.parent.name for p in (data_home() / "profiles").glob(f"*/{PROFILE_MODEL}"))
        raise EnrollmentError(f"no enrolled profile {name!r} ({path} does not exist); run `spotter enroll "
                              f"--profile {name}` first (profiles: {', '.join(known) or 'none'})")
    return path


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES
                  and not p.name.startswith("."))


def read_take(path: Path, keyword: str, clip_samples: int = CLIP_SAMPLES) -> Take:
    """A take file checked, its word found and cut out in a ``clip_samples`` window (the model's):
    :class:`EnrollmentError` naming the file otherwise."""
    try:
        x = load_take(path)
        word = find_word(x, what=str(path), max_word=max_word_s(clip_samples))
    except TakeError as err:
        raise EnrollmentError(str(err)) from None
    return Take(str(path), word_clip(x, word, clip_samples), word.seconds, word.snr_db)


def _read_extra(folder: Path) -> list[np.ndarray]:
    """The recordings of ``_speech_`` or ``_background_noise_`` as 16 kHz mono (each at most MAX_EXTRA_S)."""
    import soundfile as sf

    from ..data.download import DataError
    from ..data.speech_commands import load_audio

    out = []
    for path in _audio_files(folder):
        try:
            info = sf.info(str(path))
            if info.frames / max(1, info.samplerate) > MAX_EXTRA_S:
                raise EnrollmentError(f"{path}: longer than {MAX_EXTRA_S / 60:.0f} min; cut it shorter")
            x = load_audio(path)
        except (RuntimeError, OSError) as err:
            raise EnrollmentError(f"{path}: not a readable audio file ({' '.join(str(err).split())})") from None
        except DataError as err:
            raise EnrollmentError(str(err)) from None
        if len(x) < SAMPLE_RATE // 2:
            raise EnrollmentError(f"{path}: only {len(x) / SAMPLE_RATE:.2f} s; give at least a few seconds")
        out.append(x)
    return out


def read_enrollment(folder: str | os.PathLike, keywords, clip_samples: int = CLIP_SAMPLES) -> Enrollment:
    """The recordings of ``folder`` (layout in the module docstring), each take's word in a window of
    ``clip_samples`` (the model's); every take is checked before anything
    is used, and any problem is one :class:`EnrollmentError` naming the file or folder."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise EnrollmentError(f"--from-dir {folder}: no such folder; expected {folder}/<keyword>/*.wav")
    keywords = list(keywords)
    extras = (SPEECH_DIR, BACKGROUND_NOISE_DIR)
    subfolders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = [p.name for p in subfolders if p.name not in keywords and p.name not in extras]
    if unknown:
        raise EnrollmentError(f"{root}: unknown folder {unknown[0]!r}; expected keyword folders "
                              f"({', '.join(keywords)}) and optionally {SPEECH_DIR} and {BACKGROUND_NOISE_DIR}")
    takes: dict[str, list[Take]] = {}
    for keyword in keywords:
        folder_k = root / keyword
        if not folder_k.is_dir():
            continue
        files = _audio_files(folder_k)
        if not files:
            raise EnrollmentError(f"{folder_k}: no takes ({', '.join(AUDIO_SUFFIXES)} files); record at least one "
                                  "(3-5 recommended) or remove the folder")
        takes[keyword] = [read_take(path, keyword, clip_samples) for path in files]
    if not takes:
        raise EnrollmentError(f"{root}: no keyword folders; expected {root}/<keyword>/*.wav for some of "
                              f"{', '.join(keywords)}")
    speech = _read_extra(root / SPEECH_DIR) if (root / SPEECH_DIR).is_dir() else []
    noise = _read_extra(root / BACKGROUND_NOISE_DIR) if (root / BACKGROUND_NOISE_DIR).is_dir() else []
    return Enrollment(takes, speech, noise)


def write_recordings(folder: Path, takes: dict[str, list[np.ndarray]], speech: list[np.ndarray],
                     noise: list[np.ndarray]) -> None:
    """Write recordings (16 kHz float) in the layout :func:`read_enrollment` reads, as 16-bit WAV."""
    import soundfile as sf

    def write(path: Path, x: np.ndarray) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), np.clip(x, -1, 1), SAMPLE_RATE, subtype="PCM_16")

    for keyword, clips in takes.items():
        for i, x in enumerate(clips, 1):
            write(folder / keyword / f"take{i:02d}.wav", x)
    for i, x in enumerate(speech, 1):
        write(folder / SPEECH_DIR / f"speech{i:02d}.wav", x)
    for i, x in enumerate(noise, 1):
        write(folder / BACKGROUND_NOISE_DIR / f"room{i:02d}.wav", x)
