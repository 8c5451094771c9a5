"""One recorded take of a keyword: find the spoken word in it, or say why it cannot be used.

A take is a short recording (from the microphone, or a file of any rate and channel count)
that should hold one keyword said once. :func:`find_word` locates the word by its energy
against the take's own background (10 ms frames, the quietest tenth as the noise floor)
and refuses, with a reason a person can act on, a take that holds no word, one that is
clipped, one whose sound lasts longer than a keyword can, or one that holds several words.
:func:`word_clip` cuts the 1 s window around the word that the model is trained on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import CLIP_SAMPLES, SAMPLE_RATE
from ..errors import SpotterError

FRAME = SAMPLE_RATE // 100  # 10 ms
#: Shortest and longest take (seconds): long enough to hold a word, short enough to hold only one.
MIN_TAKE_S, MAX_TAKE_S = 0.3, 10.0
#: The longest sound a keyword can be in a model's window: the window less this (0.95 s in 1 s).
WORD_MARGIN_S = 0.05
MAX_WORD_S = 1.0 - WORD_MARGIN_S
#: How far above the background the word's loudest part must be (dB), and its lowest level (dBFS).
MIN_SNR_DB, MIN_PEAK_DBFS = 12.0, -50.0
#: Frames this far above the floor (and within WORD_RANGE_DB of the peak) belong to the word.
ONSET_DB, WORD_RANGE_DB = 8.0, 30.0
#: Quiet gaps shorter than this inside a word (the closure of "stop") do not split it.
MAX_GAP_S = 0.25
#: A second sound this close to the word's level, this far away, is a second word.
SECOND_WORD_DB, SECOND_WORD_GAP_S = 6.0, 0.3
#: Full scale: this many samples at or above CLIP_LEVEL make a take clipped.
CLIP_LEVEL, CLIP_SAMPLES_MAX = 0.999, 8
#: Padding kept around the word when the take is trimmed.
PAD_S = 0.05


class TakeError(SpotterError, ValueError):
    """A take that cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class Word:
    """Where the word lies in a take (samples at 16 kHz) and how clearly."""

    start: int
    end: int
    snr_db: float
    peak_dbfs: float

    @property
    def seconds(self) -> float:
        return (self.end - self.start) / SAMPLE_RATE


def frame_db(x: np.ndarray) -> np.ndarray:
    """Level of each 10 ms frame in dBFS (RMS)."""
    n = len(x) // FRAME
    frames = x[: n * FRAME].reshape(n, FRAME).astype(np.float64)
    return 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)


def _segments(loud: np.ndarray, max_gap: int) -> list[tuple[int, int]]:
    """Runs of True frames ``[start, end)``, runs separated by fewer than ``max_gap`` quiet frames joined."""
    runs, start = [], None
    for i, on in enumerate(np.append(loud, False)):
        if on and start is None:
            start = i
        elif not on and start is not None:
            runs.append([start, i])
            start = None
    joined: list[list[int]] = []
    for run in runs:
        if joined and run[0] - joined[-1][1] < max_gap:
            joined[-1][1] = run[1]
        else:
            joined.append(run)
    return [(a, b) for a, b in joined]


def max_word_s(window_samples: int) -> float:
    """The longest keyword (seconds) a model with windows of ``window_samples`` hears whole."""
    return round(window_samples / SAMPLE_RATE - WORD_MARGIN_S, 3)


def find_word(x: np.ndarray, what: str = "take", max_word: float = MAX_WORD_S) -> Word:
    """The one word (or phrase) in a 16 kHz mono take, at most ``max_word`` seconds long; :class:`TakeError`
    naming ``what`` and the reason otherwise."""
    x = np.asarray(x, dtype=np.float32)
    seconds = len(x) / SAMPLE_RATE
    if seconds < MIN_TAKE_S:
        raise TakeError(f"{what}: too short ({seconds:.2f} s); a take needs at least {MIN_TAKE_S} s with the "
                        "word in it")
    if seconds > MAX_TAKE_S:
        raise TakeError(f"{what}: too long ({seconds:.0f} s); a take holds one word said once, at most "
                        f"{MAX_TAKE_S:.0f} s")
    clipped = int(np.count_nonzero(np.abs(x) >= CLIP_LEVEL))
    if clipped > CLIP_SAMPLES_MAX:
        raise TakeError(f"{what}: clipped ({clipped} samples at full scale); speak further from the microphone "
                        "or lower its input gain")
    db = frame_db(x)
    floor = float(np.percentile(db, 10))
    peak = float(db.max())
    if peak < MIN_PEAK_DBFS or peak - floor < MIN_SNR_DB:
        raise TakeError(f"{what}: no word found (its loudest part is {peak:.0f} dBFS, {peak - floor:.0f} dB above "
                        f"the background; a word needs {MIN_SNR_DB:.0f} dB): speak closer or louder")
    loud = db > max(floor + ONSET_DB, peak - WORD_RANGE_DB)
    segments = _segments(loud, max_gap=round(MAX_GAP_S * 100))
    energy = [float(np.sum(10 ** (db[a:b] / 10))) for a, b in segments]
    main = int(np.argmax(energy))
    a, b = segments[main]
    for i, (c, d) in enumerate(segments):
        gap = max(c - b, a - d) / 100
        if i != main and gap >= SECOND_WORD_GAP_S and db[c:d].max() >= peak - SECOND_WORD_DB:
            raise TakeError(f"{what}: more than one word (sounds at {a / 100:.1f} s and {c / 100:.1f} s); "
                            "say the word once")
    word_s = (b - a) / 100
    if word_s > max_word:
        raise TakeError(f"{what}: the sound lasts {word_s:.1f} s, longer than a keyword ({max_word:g} s at most); "
                        "say the word alone, with silence around it")
    pad = round(PAD_S * SAMPLE_RATE)
    start, end = max(0, a * FRAME - pad), min(len(x), b * FRAME + pad)
    return Word(start, end, snr_db=round(peak - floor, 1), peak_dbfs=round(peak, 1))


def word_clip(x: np.ndarray, word: Word, samples: int = CLIP_SAMPLES) -> np.ndarray:
    """The ``samples``-long window of the take centred on the word (zero-padded where the take is shorter)."""
    centre = (word.start + word.end) // 2
    start = min(max(0, centre - samples // 2), max(0, len(x) - samples))
    clip = np.asarray(x[start:start + samples], dtype=np.float32)
    return np.pad(clip, (0, samples - len(clip))) if len(clip) < samples else clip


def background(x: np.ndarray, word: Word) -> np.ndarray:
    """The take without its word: what the room sounds like between words (may be empty)."""
    return np.concatenate([x[: word.start], x[word.end:]]).astype(np.float32)


def load_take(path: str | os.PathLike) -> np.ndarray:
    """A take file as 16 kHz mono float32; :class:`TakeError` for a file that is not one (read from its
    header first, so a 10-minute file is refused without reading it)."""
    import soundfile as sf

    from ..data.download import DataError
    from ..data.speech_commands import load_audio

    path = Path(path)
    try:
        info = sf.info(str(path))
    except (RuntimeError, OSError) as err:
        reason = " ".join((getattr(err, "error_string", None) or str(err)).split())
        raise TakeError(f"{path}: not a readable audio file ({reason}); expected WAV, FLAC or OGG") from None
    seconds = info.frames / info.samplerate if info.samplerate else 0.0
    if seconds > MAX_TAKE_S:
        raise TakeError(f"{path}: too long ({seconds:.0f} s); a take holds one word said once, at most "
                        f"{MAX_TAKE_S:.0f} s")
    try:
        return load_audio(path)
    except DataError as err:
        raise TakeError(str(err)) from None
