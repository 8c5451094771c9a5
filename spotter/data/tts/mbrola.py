"""The ``mbrola`` engine: MBROLA's English diphone voices driven by espeak-ng, their variation, and speaking.

espeak-ng turns the text into phonemes and prosody, and the ``mbrola`` program (Debian's ``mbrola``,
voices ``mbrola-us1``, ``-us2``, ``-us3``, ``-en1`` from contrib / non-free) concatenates recorded
diphones of a real speaker: ``us1`` a US woman, ``us2`` and ``us3`` US men, ``en1`` a British man.
espeak-ng writes the 16 kHz WAV to stdout. Each variant has its own pitch (``-p`` 25..75), rate (``-s``
110..175 wpm) and a resampling vocal-tract shift of 0.92..1.08. Speaker ids look like
``mbrola-us1-p50-s160-t441``. The MBROLA databases' licence allows their use with the mbrola program
only, and forbids selling them or building them into a product that is sold.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .audio import parse_wav
from .debian import package_version
from .errors import SynthError
from .variants import babble_of, draw_variants

__all__ = ["MBROLA_VOICES", "babble", "check", "clips", "draw_voices", "mbrola_voices", "run", "say", "version"]

MBROLA_INSTALL = ("mbrola voices not found: apt-get install espeak-ng mbrola mbrola-us1 mbrola-us2 mbrola-us3 "
                  "mbrola-en1 (contrib / non-free; or run scripts/install_tts.sh --more-voices)")
MBROLA_VOICES = ("us1", "us2", "us3", "en1")
MBROLA_DATA = Path("/usr/share/mbrola")
MBROLA_PITCH = (25, 75)       # espeak-ng -p
MBROLA_RATE = (110, 175)      # espeak-ng -s, words per minute
MBROLA_TRACT = (0.92, 1.08)
_RANGES = {"pitch": MBROLA_PITCH, "rate": MBROLA_RATE}


def mbrola_voices() -> tuple[str, ...]:
    """The voices of :data:`MBROLA_VOICES` installed here."""
    return tuple(v for v in MBROLA_VOICES if (MBROLA_DATA / v).is_dir())


def check() -> None:
    """Raise :class:`SynthError` when espeak-ng, mbrola or every MBROLA voice is missing."""
    if shutil.which("espeak-ng") is None or shutil.which("mbrola") is None or not mbrola_voices():
        raise SynthError(MBROLA_INSTALL)


def version() -> str:
    """The mbrola package's version and the voices present, for the corpus manifest."""
    return f"mbrola {package_version('mbrola') or '?'} via espeak-ng; voices {', '.join(mbrola_voices())}"


def run(text: str, voice: str, pitch: int, rate: int) -> tuple[np.ndarray, int]:
    """``text`` said by MBROLA ``voice`` (``us1`` ...) through espeak-ng: float64 audio and its rate."""
    cmd = ["espeak-ng", "-z", "--stdout", "-v", f"mb-{voice}", "-p", str(int(pitch)), "-s", str(int(rate)), text]
    try:
        proc = subprocess.run(cmd, capture_output=True, check=False)
    except FileNotFoundError:
        raise SynthError(MBROLA_INSTALL) from None
    if proc.returncode != 0 or len(proc.stdout) <= 44:
        raise SynthError(f"espeak-ng with mbrola failed ({proc.returncode}) for voice {voice}: "
                         f"{proc.stderr.decode(errors='replace').strip()}")
    return parse_wav(proc.stdout, "mbrola")


def say(text: str, params: dict) -> tuple[np.ndarray, int]:
    """``text`` said exactly as a manifest voice's ``params`` say (no jitter)."""
    return run(text, params["voice"], params["pitch"], params["rate"])


def clips(params: dict, texts: Sequence[str], rngs: Sequence[np.random.Generator]
          ) -> Iterator[tuple[np.ndarray, int]]:
    """Each of ``texts`` said by the voice, pitch and rate jittered a little with its clip's rng."""
    for text, rng in zip(texts, rngs):
        pitch = int(np.clip(params["pitch"] + rng.integers(-4, 5), 0, 99))
        rate = int(round(params["rate"] * rng.uniform(0.93, 1.07)))
        yield run(text, params["voice"], pitch, rate)


def draw_voices(rng: np.random.Generator, count: int, used: set[str]) -> list[dict]:
    """``count`` voice specs (speaker ids not in ``used``, which gains them): the installed voices in
    turn, at random pitch, rate and tract."""
    return draw_variants(rng, count, used, "mbrola", mbrola_voices(), _RANGES, {"pitch": "p", "rate": "s"},
                         MBROLA_TRACT)


def babble(rng: np.random.Generator, sentences: Sequence[str], count: int) -> list[np.ndarray]:
    """``count`` of ``sentences`` (in turn) said by random MBROLA voices: 16 kHz, trimmed."""
    return babble_of(run, rng, sentences, count, mbrola_voices(), _RANGES, MBROLA_TRACT)
