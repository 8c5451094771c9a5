"""The ``pico`` engine: SVOX Pico's two English voices, their variation, and speaking with them.

The ``pico2wave`` program of Debian's ``libttspico-utils`` (non-free: the voices' data comes without
source), run as a subprocess that writes a 16 kHz WAV to a temporary file. Voices: ``en-US`` and
``en-GB``, both women (a US and a British speaker), in the unit-selection-like style of phone
assistants of the 2010s. Each variant has its own mean pitch (Pico's ``<pitch level>`` markup, 70..135
percent: about 110..210 Hz), tempo (``<speed level>``, 85..130 percent) and a resampling vocal-tract
shift of 0.88..1.12, so that pitch and formants reach from a deep voice to a child's. Speaker ids look
like ``pico-enus-p110-s95-t441``.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .audio import parse_wav
from .debian import package_version
from .errors import SynthError
from .variants import babble_of, draw_variants

__all__ = ["PICO_VOICES", "babble", "check", "clips", "draw_voices", "drop_end_click", "run", "say", "version"]

PICO_INSTALL = ("pico2wave not found: apt-get install libttspico-utils from Debian's non-free "
                "(or run scripts/install_tts.sh --more-voices)")
PICO_VOICES = ("en-US", "en-GB")
PICO_PITCH = (70, 135)        # <pitch level>, percent of the voice's own
PICO_SPEED = (85, 130)        # <speed level>, percent
PICO_TRACT = (0.88, 1.12)     # resampling factor: pitch and formants scale together
_RANGES = {"pitch": PICO_PITCH, "speed": PICO_SPEED}


def check() -> None:
    """Raise :class:`SynthError` when pico2wave is not installed."""
    if shutil.which("pico2wave") is None:
        raise SynthError(PICO_INSTALL)


def version() -> str:
    """The Debian package's version, for the corpus manifest (pico2wave has no --version)."""
    deb = package_version("libttspico-utils")
    return f"SVOX Pico (Debian libttspico-utils {deb})" if deb else "SVOX Pico"


def run(text: str, voice: str, pitch: int, speed: int) -> tuple[np.ndarray, int]:
    """``text`` said by Pico's ``voice`` (``en-US`` or ``en-GB``) at ``pitch`` and ``speed`` percent."""
    markup = f'<pitch level="{int(pitch)}"><speed level="{int(speed)}">{text}</speed></pitch>'
    with tempfile.TemporaryDirectory(prefix="spotter-pico-") as tmp:
        path = Path(tmp) / "say.wav"
        try:
            proc = subprocess.run(["pico2wave", "-l", voice, "-w", str(path), markup], capture_output=True)
        except FileNotFoundError:
            raise SynthError(PICO_INSTALL) from None
        if proc.returncode != 0 or not path.is_file():
            raise SynthError(f"pico2wave failed ({proc.returncode}) for voice {voice}: "
                             f"{proc.stderr.decode(errors='replace').strip()}")
        audio, sr = parse_wav(path.read_bytes(), "pico2wave")
    return drop_end_click(audio, sr), sr


def drop_end_click(x: np.ndarray, sr: int, silence_s: float = 0.1, click_s: float = 0.15) -> np.ndarray:
    """Pico ends some utterances with a click (-65 dB) after a stretch of digital silence, which a trim
    keeps: cut what follows the last ``silence_s`` of silence when it is shorter than ``click_s``."""
    quiet = np.abs(x) < 1e-4
    w = int(silence_s * sr)
    if len(x) <= w:
        return x
    runs = np.convolve(quiet.astype(np.int32), np.ones(w, dtype=np.int32), "valid")
    ends = np.flatnonzero(runs == w)
    if len(ends) and len(x) - (ends[-1] + w) < click_s * sr:
        return x[:ends[-1] + w]
    return x


def say(text: str, params: dict) -> tuple[np.ndarray, int]:
    """``text`` said exactly as a manifest voice's ``params`` say (no jitter)."""
    return run(text, params["voice"], params["pitch"], params["speed"])


def clips(params: dict, texts: Sequence[str], rngs: Sequence[np.random.Generator]
          ) -> Iterator[tuple[np.ndarray, int]]:
    """Each of ``texts`` said by the voice, pitch and tempo jittered a little with its clip's rng."""
    for text, rng in zip(texts, rngs):
        pitch = int(round(params["pitch"] * rng.uniform(0.96, 1.04)))
        speed = int(round(params["speed"] * rng.uniform(0.94, 1.06)))
        yield run(text, params["voice"], pitch, speed)


def draw_voices(rng: np.random.Generator, count: int, used: set[str]) -> list[dict]:
    """``count`` voice specs (speaker ids not in ``used``, which gains them): the two voices in turn,
    at random pitch, tempo and tract."""
    return draw_variants(rng, count, used, "pico", PICO_VOICES, _RANGES, {"pitch": "p", "speed": "s"}, PICO_TRACT)


def babble(rng: np.random.Generator, sentences: Sequence[str], count: int) -> list[np.ndarray]:
    """``count`` of ``sentences`` (in turn) said by random Pico voices: 16 kHz, trimmed."""
    return babble_of(run, rng, sentences, count, PICO_VOICES, _RANGES, PICO_TRACT)
