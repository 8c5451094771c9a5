"""The ``rhvoice`` engine: RHVoice's English voices, their variation, and speaking with them.

The ``RHVoice-test`` program of Debian's ``rhvoice`` and ``rhvoice-english`` (non-free), statistical
parametric (HTS) voices, run as a subprocess that writes a 24 kHz WAV to a temporary file. Voices:
``alan`` (a Scottish man), ``bdl`` (a US man), ``clb`` (a US woman), ``evgeniy-eng`` and ``lyubov``
(a Russian man and woman speaking English). RHVoice's ``slt`` is never used: it is the CMU ARCTIC
speaker of Flite's ``slt``, which the evaluation keeps unheard. Each variant has its own rate
(``-r`` 100..160 percent: its own pace is slow for a word alone), pitch (``-t`` 75..135 percent) and a
resampling vocal-tract shift of 0.92..1.08. Speaker ids look like ``rhvoice-clb-r100-p110-t441``.
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

__all__ = ["RHVOICE_VOICES", "babble", "check", "clips", "draw_voices", "rhvoice_voices", "run", "say", "version"]

RHVOICE_INSTALL = ("RHVoice not found: apt-get install rhvoice rhvoice-english from Debian's non-free "
                   "(or run scripts/install_tts.sh --more-voices)")
RHVOICE_VOICES = ("alan", "bdl", "clb", "evgeniy-eng", "lyubov")   # not slt: Flite's slt speaker
RHVOICE_DATA = Path("/usr/share/RHVoice/voices")
RHVOICE_RATE = (100, 160)      # -r, percent
RHVOICE_PITCH = (75, 135)     # -t, percent
RHVOICE_TRACT = (0.92, 1.08)
_RANGES = {"rate": RHVOICE_RATE, "pitch": RHVOICE_PITCH}


def rhvoice_voices() -> tuple[str, ...]:
    """The voices of :data:`RHVOICE_VOICES` installed here."""
    return tuple(v for v in RHVOICE_VOICES if (RHVOICE_DATA / v).is_dir())


def check() -> None:
    """Raise :class:`SynthError` when RHVoice-test or every English voice is missing."""
    if shutil.which("RHVoice-test") is None or not rhvoice_voices():
        raise SynthError(RHVOICE_INSTALL)


def version() -> str:
    """RHVoice's version and the voices present, for the corpus manifest."""
    return f"RHVoice {package_version('rhvoice') or '?'}; voices {', '.join(rhvoice_voices())}"


def run(text: str, voice: str, rate: int, pitch: int) -> tuple[np.ndarray, int]:
    """``text`` said by RHVoice's ``voice`` at ``rate`` and ``pitch`` percent: float64 audio and its rate."""
    with tempfile.TemporaryDirectory(prefix="spotter-rhvoice-") as tmp:
        path = Path(tmp) / "say.wav"
        cmd = ["RHVoice-test", "-p", voice, "-r", str(int(rate)), "-t", str(int(pitch)), "-o", str(path)]
        try:
            proc = subprocess.run(cmd, input=text.encode(), capture_output=True)
        except FileNotFoundError:
            raise SynthError(RHVOICE_INSTALL) from None
        if proc.returncode != 0 or not path.is_file():
            raise SynthError(f"RHVoice-test failed ({proc.returncode}) for voice {voice}: "
                             f"{proc.stderr.decode(errors='replace').strip()}")
        return parse_wav(path.read_bytes(), "RHVoice")


def say(text: str, params: dict) -> tuple[np.ndarray, int]:
    """``text`` said exactly as a manifest voice's ``params`` say (no jitter)."""
    return run(text, params["voice"], params["rate"], params["pitch"])


def clips(params: dict, texts: Sequence[str], rngs: Sequence[np.random.Generator]
          ) -> Iterator[tuple[np.ndarray, int]]:
    """Each of ``texts`` said by the voice, rate and pitch jittered a little with its clip's rng."""
    for text, rng in zip(texts, rngs):
        rate = int(round(params["rate"] * rng.uniform(0.94, 1.06)))
        pitch = int(round(params["pitch"] * rng.uniform(0.96, 1.04)))
        yield run(text, params["voice"], rate, pitch)


def draw_voices(rng: np.random.Generator, count: int, used: set[str]) -> list[dict]:
    """``count`` voice specs (speaker ids not in ``used``, which gains them): the installed voices in
    turn, at random rate, pitch and tract."""
    return draw_variants(rng, count, used, "rhvoice", rhvoice_voices(), _RANGES, {"rate": "r", "pitch": "p"},
                         RHVOICE_TRACT)


def babble(rng: np.random.Generator, sentences: Sequence[str], count: int) -> list[np.ndarray]:
    """``count`` of ``sentences`` (in turn) said by random RHVoice voices: 16 kHz, trimmed."""
    return babble_of(run, rng, sentences, count, rhvoice_voices(), _RANGES, RHVOICE_TRACT)
