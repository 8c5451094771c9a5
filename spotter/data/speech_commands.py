"""The 12-class Speech Commands protocol over any folder in the Speech Commands layout.

Layout (Google Speech Commands v2, or one made by ``spotter data synth``)::

    root/<word>/<speaker>_nohash_<n>.wav      one folder per word, 1 s 16 kHz clips
    root/_background_noise_/*.wav             long noise recordings (optional)
    root/validation_list.txt                  relative paths of the validation clips (optional)
    root/testing_list.txt                     relative paths of the test clips (optional)

Protocol (as TensorFlow's ``input_data.py`` and the 12-class benchmark papers):

* labels are the ten :data:`~spotter.config.KEYWORDS` (or the ``keywords`` given: a
  custom label set, whose folders are named by the keywords, "lights on/" say),
  ``unknown`` (every other word) and ``silence``;
* a clip's split comes from the official lists: in ``testing_list.txt`` ->
  ``test``, in ``validation_list.txt`` -> ``val``, else ``train`` (a missing list
  counts as empty);
* a split holds all its keyword clips, plus ``unknown`` clips drawn (seeded)
  from its other words so that they make ``unknown_fraction`` of the split
  (all of them when there are fewer), plus ``silence`` examples making
  ``silence_fraction`` of the split;
* a silence example is a 1 s stretch of a ``_background_noise_`` file, at a
  stored offset, times a stored gain drawn log-uniformly in
  :data:`SILENCE_GAIN_RANGE` (so a good share is near-zero, i.e. true silence).
  Each split cuts its silence from its own part of every noise file (train the
  first 80 %, val the next 10 %, test the last 10 %), so no silence example of
  the test set is heard in training.  With no noise files, silence examples
  are digital zeros;
* ``split="all"`` is every clip of the folder, lists ignored (for folders that
  have none), keywords and all other words alike, plus silence examples when
  the folder has noise files.

The index is deterministic given the folder's contents, the split and the seed.

Clips shorter than 1 s are zero-padded at the end (as TensorFlow's
``decode_wav(desired_samples=...)``); longer ones are centre-cropped, where the
word of a keyword recording usually is.

Corrupt files: :class:`SpeechCommands` checks every clip when it is built
(``preload=True`` reads them all; otherwise each header is opened, about 40 us a
clip) and leaves out the unreadable ones, listing them in ``.skipped`` and in
one :class:`CorruptClipWarning`.  A file that still fails later, while training,
is reported once (warning naming its path) and replaced by the next readable
clip of the same class, so one bad file never stops a run nor teaches a wrong
label.
"""

from __future__ import annotations

import math
import os
import warnings
import zlib
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset

from ..config import BACKGROUND_NOISE_DIR, CLIP_SAMPLES, KEYWORDS, LABELS, SAMPLE_RATE, SILENCE, UNKNOWN, labels_for
from .download import DataError

SPLITS = ("train", "val", "test", "all")
_SPLIT_ALIASES = {"training": "train", "validation": "val", "valid": "val", "testing": "test"}
VALIDATION_LIST = "validation_list.txt"
TESTING_LIST = "testing_list.txt"
UNKNOWN_INDEX = LABELS.index(UNKNOWN)
SILENCE_INDEX = LABELS.index(SILENCE)
#: Silence gains are drawn log-uniformly in this range (1e-3 is about -60 dB: silence).
SILENCE_GAIN_RANGE = (1e-3, 1.0)
#: The part of every noise file (fractions of its length) each split cuts silence from.
NOISE_REGIONS = {"train": (0.0, 0.8), "val": (0.8, 0.9), "test": (0.9, 1.0), "all": (0.0, 1.0)}
_PCM16 = 32768.0


class CorruptClipWarning(UserWarning):
    """An audio file of the dataset could not be read and was left out."""


class Example(NamedTuple):
    """One entry of a split's index.

    ``path`` is the clip's path relative to the root (``word/file.wav``), or
    ``None`` for a silence example, which is ``gain`` times the 1 s of
    ``noise_file`` (relative path, ``None`` for digital zeros) from sample
    ``offset`` (at :data:`~spotter.config.SAMPLE_RATE`).  ``label`` indexes the
    dataset's labels (:data:`~spotter.config.LABELS` for Speech Commands' keywords).
    """

    path: str | None
    label: int
    noise_file: str | None = None
    offset: int = 0
    gain: float = 1.0


# -- folder layout -----------------------------------------------------------------


def _wav_names(folder: Path) -> list[str]:
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries
                      if e.name.lower().endswith(".wav") and not e.name.startswith(".") and e.is_file())


def list_clips(root: str | os.PathLike) -> list[tuple[str, str]]:
    """``(relative path "word/file.wav", word)`` of every clip in every word folder, sorted.

    Folders starting with ``_`` (``_background_noise_``) or ``.`` are not words.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder; give a folder in the Speech Commands layout (word/clip.wav)")
    with os.scandir(root) as entries:
        words = sorted(e.name for e in entries if e.is_dir() and not e.name.startswith(("_", ".")))
    return [(f"{word}/{name}", word) for word in words for name in _wav_names(root / word)]


def read_split_list(path: str | os.PathLike) -> set[str]:
    """The relative clip paths listed in an official split list; empty when the file is missing."""
    path = Path(path)
    if not path.is_file():
        return set()
    lines = (line.strip().replace("\\", "/") for line in path.read_text(encoding="utf-8").splitlines())
    return {line[2:] if line.startswith("./") else line for line in lines if line}


def split_of(rel_path: str, validation: set[str] | frozenset[str], testing: set[str] | frozenset[str]) -> str:
    """``"test"`` if listed in ``testing``, else ``"val"`` if in ``validation``, else ``"train"``."""
    if rel_path in testing:
        return "test"
    if rel_path in validation:
        return "val"
    return "train"


def word_to_label(word: str, keywords=KEYWORDS) -> str:
    """A keyword is its own label; every other word is ``unknown``."""
    word = word.lower()
    return word if word in keywords else UNKNOWN


def noise_files(root: str | os.PathLike) -> list[Path]:
    """The background-noise recordings of a folder (``_background_noise_/*.wav``), sorted."""
    folder = Path(root) / BACKGROUND_NOISE_DIR
    return [folder / name for name in _wav_names(folder)] if folder.is_dir() else []


def load_noise(root: str | os.PathLike, sample_rate: int = SAMPLE_RATE, split: str = "all") -> list[np.ndarray]:
    """Every readable noise recording of a folder as float32 mono at ``sample_rate`` (for augmentation),
    only the ``split``'s region of each (:data:`NOISE_REGIONS`: training mixes never reuse test noise)."""
    lo, hi = NOISE_REGIONS[_normalise_split(split)]
    out = []
    for path in noise_files(root):
        try:
            x = load_audio(path, sample_rate)
            out.append(x[int(lo * len(x)):int(hi * len(x))])
        except DataError as e:
            warnings.warn(f"skipping noise file: {e}", CorruptClipWarning, stacklevel=2)
    return out


# -- the index ------------------------------------------------------------------------


def _normalise_split(split: str) -> str:
    split = _SPLIT_ALIASES.get(split, split)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    return split


def _round(x: float) -> int:
    return int(math.floor(x + 0.5))


def _noise_lengths(root: Path, sample_rate: int = SAMPLE_RATE) -> list[tuple[str, int]]:
    """(relative path, length in samples at ``sample_rate``) of every noise file whose header reads."""
    out = []
    for path in noise_files(root):
        try:
            info = sf.info(str(path))
        except (RuntimeError, OSError) as e:
            warnings.warn(f"skipping noise file {path}: not readable audio ({e})", CorruptClipWarning, stacklevel=3)
            continue
        if info.frames > 0 and info.samplerate > 0:
            # resample_poly gives ceil(frames * up / down) samples
            out.append((f"{BACKGROUND_NOISE_DIR}/{path.name}", -(-info.frames * sample_rate // info.samplerate)))
    return out


def _silence_examples(noises: list[tuple[str, int]], count: int, split: str,
                      rng: np.random.Generator, silence: int = SILENCE_INDEX,
                      clip_samples: int = CLIP_SAMPLES) -> list[Example]:
    if not noises:
        return [Example(None, silence, None, 0, 0.0) for _ in range(count)]
    lo_frac, hi_frac = NOISE_REGIONS[split]
    log_lo, log_hi = (math.log10(g) for g in SILENCE_GAIN_RANGE)
    out = []
    for _ in range(count):
        rel, n = noises[int(rng.integers(len(noises)))]
        lo, hi = int(lo_frac * n), int(hi_frac * n)
        if hi - lo < clip_samples:  # too short to share out: the whole file
            lo, hi = 0, n
        offset = int(rng.integers(lo, max(lo, hi - clip_samples) + 1))
        gain = float(10.0 ** rng.uniform(log_lo, log_hi))
        out.append(Example(None, silence, rel, offset, gain))
    return out


def unknown_wanted(keyword_examples: int, silence_fraction: float, unknown_fraction: float) -> int:
    """How many unknown examples make ``unknown_fraction`` of a split with this many keyword examples."""
    return _round(unknown_fraction * keyword_examples / (1.0 - silence_fraction - unknown_fraction))


def build_index(root: str | os.PathLike, split: str, seed: int = 0, silence_fraction: float = 0.1,
                unknown_fraction: float = 0.1, balance_all: bool = False, all_unknown: bool = False,
                keywords=KEYWORDS, clip_samples: int = CLIP_SAMPLES) -> list[Example]:
    """The examples of one split (``train``, ``val``, ``test`` or ``all``) for ``keywords``: see the module
    docstring; each example's label indexes ``labels_for(keywords)``.

    ``split="all"`` takes every clip unless ``balance_all``, which samples its
    unknown words down to ``unknown_fraction`` as the other splits do (the
    12-class proportions, for scoring a folder without split lists).
    ``all_unknown`` keeps every unknown clip of the split, with as many silence
    examples as the ``unknown_fraction`` draw would have (for a sampler that draws
    the unknown clips afresh every epoch, see ``spotter train --redraw-unknown``).
    """
    split = _normalise_split(split)
    if not (0 <= silence_fraction < 1 and 0 <= unknown_fraction < 1 and silence_fraction + unknown_fraction < 1):
        raise ValueError("silence_fraction and unknown_fraction must be in [0, 1) and sum to less than 1")
    root = Path(root)
    clips = list_clips(root)
    rng = np.random.default_rng([seed, zlib.crc32(split.encode())])
    validation = read_split_list(root / VALIDATION_LIST)
    testing = read_split_list(root / TESTING_LIST)
    labels = labels_for(keywords)
    chosen, unknown = [], []
    for rel, word in clips:
        if split != "all" and split_of(rel, validation, testing) != split:
            continue
        label = word_to_label(word, keywords)
        if label == UNKNOWN:
            unknown.append(rel)
        else:
            chosen.append(Example(rel, labels.index(label)))
    n_keywords = len(chosen)
    wanted = unknown_wanted(n_keywords, silence_fraction, unknown_fraction)
    if (split == "all" and not balance_all) or all_unknown:
        picked = range(len(unknown))
    else:
        take = min(wanted, len(unknown))
        picked = np.sort(rng.choice(len(unknown), size=take, replace=False)) if take else []
    chosen += [Example(unknown[i], labels.index(UNKNOWN)) for i in picked]
    noises = _noise_lengths(root)
    unknown_in_epoch = min(wanted, len(unknown)) if all_unknown else len(picked)
    n_silence = _round(silence_fraction * (n_keywords + unknown_in_epoch) / (1.0 - silence_fraction))
    if split == "all" and not noises:
        n_silence = 0
    return chosen + _silence_examples(noises, n_silence, split, rng, labels.index(SILENCE), clip_samples)


# -- audio ----------------------------------------------------------------------------


def _open_failure(path: Path, e: Exception) -> DataError:
    if isinstance(e, FileNotFoundError):
        return DataError(f"{path}: no such file")
    if isinstance(e, OSError):
        return DataError(f"{path}: unreadable ({e.strerror or e})")
    reason = getattr(e, "error_string", None) or str(e)
    return DataError(f"{path}: not audio, or a format soundfile cannot read ({reason})")


def _check_size(path: Path) -> None:
    try:
        size = path.stat().st_size
    except OSError as e:
        raise _open_failure(path, e) from None
    if size == 0:
        raise DataError(f"{path}: empty file (0 bytes)")


def probe_audio(path: str | os.PathLike) -> None:
    """Raise :class:`DataError` if the file's header does not read as audio with samples (cheap)."""
    path = Path(path)
    _check_size(path)
    try:
        info = sf.info(str(path))
    except (RuntimeError, OSError) as e:
        raise _open_failure(path, e) from None
    if info.frames <= 0:
        raise DataError(f"{path}: empty (no audio samples)")


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A file as float32 mono at ``sample_rate``: channels averaged, resampled with
    :func:`scipy.signal.resample_poly` when its rate differs; :class:`DataError` on bad files."""
    path = Path(path)
    _check_size(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError) as e:
        raise _open_failure(path, e) from None
    if data.shape[0] == 0:
        raise DataError(f"{path}: empty (no audio samples)")
    x = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if not np.isfinite(x).all():
        raise DataError(f"{path}: holds NaN or infinite samples")
    if rate != sample_rate:
        from scipy.signal import resample_poly

        g = math.gcd(int(rate), int(sample_rate))
        x = resample_poly(x, sample_rate // g, int(rate) // g)
    return np.ascontiguousarray(x, dtype=np.float32)


def fit_length(x: np.ndarray, n: int = CLIP_SAMPLES) -> np.ndarray:
    """Exactly ``n`` samples: zero-padded at the end when shorter, centre-cropped when longer."""
    x = np.asarray(x, dtype=np.float32)
    if len(x) < n:
        return np.pad(x, (0, n - len(x)))
    start = (len(x) - n) // 2
    return x[start:start + n]


# -- the dataset ----------------------------------------------------------------------


def _summarise(skipped: list[tuple[str, str]], shown: int = 5) -> str:
    names = ", ".join(path for path, _ in skipped[:shown])
    more = f" and {len(skipped) - shown} more" if len(skipped) > shown else ""
    return f"{names}{more} (first: {skipped[0][1]})"


class SpeechCommands(Dataset):
    """``(waveform float32 tensor (clip_samples,), label index into .labels)`` of one split of a folder;
    ``keywords`` name the classes besides ``unknown`` and ``silence`` (default: Speech Commands' ten);
    ``clip_samples`` is the model's window (default 16000, 1 s): longer files are centre-cropped to it,
    shorter ones zero-padded at the end.

    ``preload=True`` reads every clip once into one int16 array (exact for the
    16-bit PCM of Speech Commands; half the memory of float32, shared by
    DataLoader workers), with a progress bar.  Otherwise clips are read on
    demand.  ``transform`` (optional) is applied to each waveform tensor.
    Unreadable clips are left out (see the module docstring).
    """

    def __init__(self, root: str | os.PathLike, split: str, seed: int = 0, silence_fraction: float = 0.1,
                 unknown_fraction: float = 0.1, preload: bool = False,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None, progress: bool = True,
                 balance_all: bool = False, all_unknown: bool = False, keywords=KEYWORDS,
                 clip_samples: int = CLIP_SAMPLES) -> None:
        self.root = Path(root)
        self.clip_samples = int(clip_samples)
        self.labels = labels_for(keywords)
        self.split = _normalise_split(split)
        self.transform = transform
        #: ``(relative path, reason)`` of every clip left out as unreadable.
        self.skipped: list[tuple[str, str]] = []
        self._noise: dict[str, np.ndarray] = {}
        self._failed: set[str] = set()
        self._audio: np.ndarray | None = None
        self._rows: np.ndarray | None = None
        examples = build_index(self.root, self.split, seed, silence_fraction, unknown_fraction, balance_all, all_unknown,
                               keywords, self.clip_samples)
        unknown, silence = self.labels.index(UNKNOWN), self.labels.index(SILENCE)
        #: With ``all_unknown``: how many unknown clips an epoch draws (the ``unknown_fraction`` share); else None.
        self.unknown_per_epoch: int | None = (
            min(unknown_wanted(sum(ex.label not in (unknown, silence) for ex in examples),
                               silence_fraction, unknown_fraction),
                sum(ex.label == unknown for ex in examples)) if all_unknown else None)
        self.examples: list[Example] = self._preload(examples, progress) if preload else self._check(examples, progress)
        if self.skipped:
            warnings.warn(f"{self.root} ({self.split}): left out {len(self.skipped)} unreadable clip(s): "
                          f"{_summarise(self.skipped)}", CorruptClipWarning, stacklevel=2)

    def _check(self, examples: list[Example], progress: bool) -> list[Example]:
        from tqdm import tqdm

        keep = []
        for ex in tqdm(examples, desc=f"checking {self.split} clips", unit="clip", disable=not progress, leave=False):
            if ex.path is not None:
                try:
                    probe_audio(self.root / ex.path)
                except DataError as e:
                    self.skipped.append((ex.path, str(e)))
                    continue
            keep.append(ex)
        return keep

    def _preload(self, examples: list[Example], progress: bool) -> list[Example]:
        from tqdm import tqdm

        audio = np.zeros((sum(ex.path is not None for ex in examples), self.clip_samples), dtype=np.int16)
        keep, rows, filled = [], [], 0
        for ex in tqdm(examples, desc=f"loading {self.split} clips", unit="clip", disable=not progress):
            if ex.path is None:
                keep.append(ex)
                rows.append(-1)
                continue
            try:
                x = fit_length(load_audio(self.root / ex.path), self.clip_samples)
            except DataError as e:
                self.skipped.append((ex.path, str(e)))
                continue
            audio[filled] = np.clip(np.rint(x * _PCM16), -_PCM16, _PCM16 - 1)
            keep.append(ex)
            rows.append(filled)
            filled += 1
        self._audio = audio[:filled]
        self._rows = np.asarray(rows, dtype=np.int64)
        for rel, _ in _noise_lengths(self.root):  # load once here so forked workers share them
            self._noise_array(rel)
        return keep

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        ex = self.examples[index]
        if ex.path is None:
            wave = self._silence(ex)
        elif self._audio is not None:
            wave = self._audio[self._rows[index]].astype(np.float32) / np.float32(_PCM16)
        else:
            wave = self._load_clip(index)
        x = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
        if self.transform is not None:
            x = self.transform(x)
        return x, int(ex.label)

    def class_counts(self) -> dict[str, int]:
        """Number of examples of each label, every label of :attr:`labels` present (0 when none)."""
        counts = np.bincount([ex.label for ex in self.examples], minlength=len(self.labels))
        return {name: int(c) for name, c in zip(self.labels, counts)}

    def __repr__(self) -> str:
        return f"SpeechCommands({str(self.root)!r}, {self.split!r}, {len(self)} examples)"

    # -- helpers --------------------------------------------------------------------

    def _report(self, rel: str, error: DataError,
                instead: str = "a readable clip of the same class is used instead") -> None:
        if rel not in self._failed:
            self._failed.add(rel)
            warnings.warn(f"unreadable file {rel} ({error}); {instead}", CorruptClipWarning, stacklevel=3)

    def _load_clip(self, index: int) -> np.ndarray:
        ex = self.examples[index]
        n = len(self.examples)
        for k in range(n):
            other = self.examples[(index + k) % n]
            if other.label != ex.label or other.path is None or other.path in self._failed:
                continue
            try:
                return fit_length(load_audio(self.root / other.path), self.clip_samples)
            except DataError as e:
                self._report(other.path, e)
        raise DataError(f"{self.root}: no readable clip of class {self.labels[ex.label]!r} is left; "
                        "check the folder's audio files")

    def _noise_array(self, rel: str) -> np.ndarray:
        if rel not in self._noise:
            try:
                self._noise[rel] = load_audio(self.root / rel)
            except DataError as e:
                self._report(rel, e, "its silence examples are zeros")
                self._noise[rel] = np.zeros(0, dtype=np.float32)
        return self._noise[rel]

    def _silence(self, ex: Example) -> np.ndarray:
        if ex.noise_file is None or ex.gain == 0.0:
            return np.zeros(self.clip_samples, dtype=np.float32)
        noise = self._noise_array(ex.noise_file)
        return fit_length(noise[ex.offset:ex.offset + self.clip_samples], self.clip_samples) * np.float32(ex.gain)
