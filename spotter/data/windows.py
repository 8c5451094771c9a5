"""Training windows cut from streams: keywords as a live spotter hears them.

A corpus clip holds one word, alone, centred, at the level the TTS engine made
it.  A live spotter sees something else: a 1 s window sliding past the word, so
the word sits anywhere in it, often with the tail of the previous word or the
start of the next one at an edge, over a noise floor, at whatever level the
talker had.  Measured on validation streams, the shipped model gave the right
keyword a posterior above 0.85 somewhere around only 78% of the keywords,
although it recognises 99% of clips of the same voices.

:func:`add_stream_windows` closes that gap with the stream generator itself:
it builds streams of single words (no sentences) from the corpus' **training
split** only - training voices, the training region of every noise file - and
cuts from them

* ``per_keyword`` windows around each keyword, at random positions that keep
  the whole word inside with 50 ms to spare, written into the keyword's own
  folder (``<corpus>/<keyword>/streamwin-*.wav``);
* as many around each other word, written into ``<corpus>/streamwin/`` (a
  word folder whose label is ``unknown``).

A window is rejected when it holds more than :data:`MAX_OTHER_KEYWORD` of
another keyword (a keyword window) or more than :data:`MAX_KEYWORD_IN_UNKNOWN`
of any keyword (an unknown window): its label would be a lie.  The files are in
neither split list, so they only ever join training.  Running it again replaces
the windows written before.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from ..config import CLIP_SAMPLES, KEYWORDS, SAMPLE_RATE, UNKNOWN
from .labels import read_labels
from .stream import make_stream

WINDOWS_WORD = "streamwin"
PREFIX = "streamwin-"
MARGIN = int(0.05 * SAMPLE_RATE)
MAX_OTHER_KEYWORD = 0.3
MAX_KEYWORD_IN_UNKNOWN = 0.1
CHUNK_MINUTES = 10.0  # streams are built in pieces of this length (a stream is held in memory as float64)


@dataclass(frozen=True)
class Row:
    label: str
    start: int
    end: int


@dataclass(frozen=True)
class WindowCounts:
    keyword: int
    unknown: int
    rejected: int


def _read_rows(csv_path: Path) -> list[Row]:
    """The stream's labels (:func:`spotter.data.labels.read_labels`) in samples."""
    return [Row(e.label, int(round(e.start * SAMPLE_RATE)), int(round(e.end * SAMPLE_RATE)))
            for e in read_labels(csv_path)]


def _overlap(row: Row, start: int) -> float:
    """Share of ``row``'s speech inside the window starting at ``start``."""
    inside = min(row.end, start + CLIP_SAMPLES) - max(row.start, start)
    return max(0, inside) / max(1, row.end - row.start)


def cut_windows(n_samples: int, rows: list[Row], per_keyword: int, rng: np.random.Generator,
                tries: int = 5) -> tuple[list[tuple[int, str]], int]:
    """Window starts and labels for a stream of ``n_samples`` with labelled ``rows`` (see the module notes).

    Returns ``([(start, label), ...], rejected)``; a word longer than the window minus the margins gets none.
    """
    keywords = [r for r in rows if r.label in KEYWORDS]
    out, rejected = [], 0
    for row in rows:
        if row.label not in KEYWORDS and row.label != UNKNOWN:
            continue  # sentences: not made here (see spotter.data.speech)
        lo = max(0, row.end + MARGIN - CLIP_SAMPLES)
        hi = min(n_samples - CLIP_SAMPLES, row.start - MARGIN)
        if hi < lo:
            continue
        for _ in range(per_keyword):
            for _ in range(tries):
                start = int(rng.integers(lo, hi + 1))
                limit = MAX_OTHER_KEYWORD if row.label in KEYWORDS else MAX_KEYWORD_IN_UNKNOWN
                if all(k is row or _overlap(k, start) <= limit for k in keywords):
                    out.append((start, row.label))
                    break
            else:
                rejected += 1
    return out, rejected


def remove_stream_windows(corpus_dir: str | os.PathLike) -> int:
    """Delete the windows an earlier :func:`add_stream_windows` wrote; returns how many."""
    root = Path(corpus_dir)
    paths = [*root.glob(f"*/{PREFIX}*.wav")]
    for path in paths:
        path.unlink()
    if (root / WINDOWS_WORD).is_dir() and not any((root / WINDOWS_WORD).iterdir()):
        (root / WINDOWS_WORD).rmdir()
    return len(paths)


def add_stream_windows(corpus_dir: str | os.PathLike, minutes: float = 60.0, per_keyword: int = 2, seed: int = 0,
                       progress: bool = True) -> WindowCounts:
    """Cut training windows from ``minutes`` of training-split word streams into the corpus (module notes)."""
    from tqdm import tqdm

    if minutes <= 0 or per_keyword < 1:
        raise ValueError("minutes must be > 0 and per_keyword >= 1")
    root = Path(corpus_dir)
    remove_stream_windows(root)  # never cut windows from windows
    rng = np.random.default_rng([seed, 0x3D])
    n_keyword = n_unknown = n_rejected = 0
    chunks = int(np.ceil(minutes / CHUNK_MINUTES))
    with tempfile.TemporaryDirectory() as tmp, tqdm(total=chunks, unit="stream", desc="stream windows",
                                                    disable=not progress) as bar:
        for i in range(chunks):
            length = min(CHUNK_MINUTES, minutes - i * CHUNK_MINUTES)
            info = make_stream(root, Path(tmp) / "train.wav", minutes=length, seed=seed * 1000 + i, split="train",
                               sentences_share=0.0, progress=False)
            audio, _ = sf.read(info.path, dtype="int16")
            windows, rejected = cut_windows(audio.size, _read_rows(info.csv_path), per_keyword, rng)
            n_rejected += rejected
            for j, (start, label) in enumerate(windows):
                folder = Path(tmp) / (label if label in KEYWORDS else WINDOWS_WORD)
                folder.mkdir(exist_ok=True)
                sf.write(folder / f"{PREFIX}s{seed}c{i}_{j:05d}.wav", audio[start:start + CLIP_SAMPLES], SAMPLE_RATE,
                         subtype="PCM_16")
                if label in KEYWORDS:
                    n_keyword += 1
                else:
                    n_unknown += 1
            bar.update(1)
        # Only now into the corpus: later streams must not draw these windows as clips.
        for path in Path(tmp).glob(f"*/{PREFIX}*.wav"):
            (root / path.parent.name).mkdir(exist_ok=True)
            shutil.move(path, root / path.parent.name / path.name)
    return WindowCounts(n_keyword, n_unknown, n_rejected)
