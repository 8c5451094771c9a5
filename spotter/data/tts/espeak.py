"""The ``espeak`` engine: espeak-ng's formant voices, their variation, and speaking with them.

The Debian ``espeak-ng`` program (formant synthesis), run as a subprocess that writes a 22050 Hz
WAV to stdout. Voices: the eight English accents it ships without extra data (en-us, en-us-nyc,
en-gb, en-gb-x-rp, en-gb-scotland, en-gb-x-gbclan, en-gb-x-gbcwmd, en-029) crossed with about
seventy of its human-sounding variants (``+m1..+m8``, ``+f1..+f5``, ``+klatt..+klatt6``,
``+croak``, ``+whisper``, ``+whisperf``, ``+grandma`` and the named contributor voices;
robot/echo effect variants are left out), each with a random pitch (``-p`` 20..80), rate (``-s``
120..220 wpm), SSML pitch range and a small vocal-tract/pitch scaling done by resampling. Voices
are drawn so that accent+variant families repeat only once all ~600 are used. Speaker ids look
like ``espeak-engbxrp-f3-p62-s170``. The MBROLA voices are not used (they need the non-free
``mbrola`` data). The PyPI ``espeakng-loader`` wheel is not supported; install the Debian package.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Iterator, Sequence

import numpy as np

from .audio import TRACT_STEPS, deal, draw_tract, parse_wav, to_16k, trim
from .errors import SynthError

__all__ = ["ESPEAK_BASE_VOICES", "ESPEAK_WANTED_VARIANTS", "babble", "check", "clips", "draw_voices", "run",
           "say", "variants", "version"]

ESPEAK_INSTALL = "espeak-ng not found: apt-get install espeak-ng (or run scripts/install_tts.sh)"

#: English espeak-ng voices that need no extra data (not MBROLA).
ESPEAK_BASE_VOICES = ("en-us", "en-us-nyc", "en-gb", "en-gb-x-rp", "en-gb-scotland",
                      "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029")
#: espeak-ng variants that sound like people (robot, echo and joke voices are left out).
ESPEAK_WANTED_VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
    "klatt", "klatt2", "klatt3", "klatt4", "klatt5", "klatt6", "croak", "whisper", "whisperf",
    "grandma", "grandpa", "adam", "Alex", "Alicia", "Andrea", "Andy", "Annie", "AnxiousAndy",
    "anika", "antonio", "aunty", "belinda", "benjamin", "boris", "caleb", "david", "Denis",
    "Diogo", "ed", "edward", "edward2", "Gene", "Gene2", "gustave", "Henrique", "Hugo", "iven",
    "iven2", "iven3", "iven4", "Jacky", "john", "kaukovalta", "Lee", "linda", "Marco", "marcelo",
    "Mario", "max", "Michael", "michel", "miguel", "Mike", "norbert", "Nguyen", "pablo", "paul",
    "pedro", "quincy", "rob", "robert", "sandro", "shelby", "steph", "steph2", "steph3",
    "travis", "victor", "zac",
)
ESPEAK_PITCH = (20, 80)       # espeak-ng -p
ESPEAK_RATE = (120, 220)      # espeak-ng -s, words per minute
ESPEAK_RANGE = (20, 90)       # SSML <prosody range>
ESPEAK_TRACT = (0.93, 1.07)   # resampling factor: pitch and formants scale together


def check() -> None:
    """Raise :class:`SynthError` when espeak-ng is not installed."""
    if shutil.which("espeak-ng") is None:
        raise SynthError(ESPEAK_INSTALL)


def version() -> str:
    """``espeak-ng <version>``, for the corpus manifest."""
    out = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout
    parts = out.split()
    for i, tok in enumerate(parts):
        if tok.startswith("text-to-speech") and i + 1 < len(parts):
            return f"espeak-ng {parts[i + 1]}"
    return f"espeak-ng {out.strip().split('Data at')[0].strip()}"


def variants() -> tuple[str, ...]:
    """The wanted variants (:data:`ESPEAK_WANTED_VARIANTS`) that this espeak-ng has."""
    check()
    out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True).stdout
    have = set()
    for line in out.splitlines()[1:]:
        for tok in line.split():
            if tok.startswith("!v/"):
                have.add(tok[3:])
    return tuple(v for v in ESPEAK_WANTED_VARIANTS if v in have)


def _bases() -> tuple[str, ...]:
    """The base voices (:data:`ESPEAK_BASE_VOICES`) that this espeak-ng has."""
    out = subprocess.run(["espeak-ng", "--voices=en"], capture_output=True, text=True).stdout
    have = set()
    for line in out.splitlines()[1:]:
        toks = line.split()
        if len(toks) >= 5 and not toks[4].startswith("mb/"):
            have.add(toks[1])
    return tuple(v for v in ESPEAK_BASE_VOICES if v in have) or ("en-us",)


def _families() -> list[tuple[str, str]]:
    return [(b, v) for b in _bases() for v in variants()]


def _compact(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def run(text: str, voice: str, pitch: int, rate: int, prange: int) -> tuple[np.ndarray, int]:
    """``text`` said by espeak-ng ``voice`` (e.g. ``en-gb+f3``): float64 audio and its rate."""
    ssml = f'<speak><prosody range="{int(prange)}">{text}</prosody></speak>'
    cmd = ["espeak-ng", "-m", "-z", "--stdout", "-v", voice, "-p", str(int(pitch)), "-s", str(int(rate)), ssml]
    try:
        proc = subprocess.run(cmd, capture_output=True, check=False)
    except FileNotFoundError:
        raise SynthError(ESPEAK_INSTALL) from None
    if proc.returncode != 0:
        raise SynthError(f"espeak-ng failed ({proc.returncode}) for voice {voice}: "
                           f"{proc.stderr.decode(errors='replace').strip()}")
    return parse_wav(proc.stdout)


def say(text: str, params: dict) -> tuple[np.ndarray, int]:
    """``text`` said exactly as a manifest voice's ``params`` say (no jitter)."""
    return run(text, params["voice"], params["pitch"], params["rate"], params["range"])


def clips(params: dict, texts: Sequence[str], rngs: Sequence[np.random.Generator]
          ) -> Iterator[tuple[np.ndarray, int]]:
    """Each of ``texts`` said by the voice, pitch and rate jittered a little with its clip's rng."""
    for text, rng in zip(texts, rngs):
        pitch = int(np.clip(params["pitch"] + rng.integers(-4, 5), 0, 99))
        rate = int(round(params["rate"] * rng.uniform(0.93, 1.07)))
        yield run(text, params["voice"], pitch, rate, params["range"])


def draw_voices(rng: np.random.Generator, count: int, used: set[str]) -> list[dict]:
    """``count`` voice specs (speaker ids not in ``used``, which gains them): families in a random order,
    each repeating only once all have been used, at random pitch, rate, range and tract."""
    families = _families()
    order = deal(rng, len(families), count)
    voices = []
    for i in range(count):
        base, variant = families[order[i]]
        while True:
            pitch = int(rng.integers(ESPEAK_PITCH[0], ESPEAK_PITCH[1] + 1))
            rate = int(rng.integers(ESPEAK_RATE[0], ESPEAK_RATE[1] + 1))
            speaker = f"espeak-{_compact(base)}-{_compact(variant)}-p{pitch}-s{rate}"
            if speaker not in used:
                break
        voices.append({
            "speaker": speaker, "engine": "espeak",
            "params": {"voice": f"{base}+{variant}", "pitch": pitch, "rate": rate,
                       "range": int(rng.integers(ESPEAK_RANGE[0], ESPEAK_RANGE[1] + 1)),
                       "tract": draw_tract(rng, ESPEAK_TRACT)},
        })
        used.add(speaker)
    return voices


def babble(rng: np.random.Generator, sentences: Sequence[str], count: int) -> list[np.ndarray]:
    """``count`` of ``sentences`` (in turn) said by random voices: 16 kHz, trimmed."""
    families = _families()
    out = []
    for i in range(count):
        base, variant = families[int(rng.integers(len(families)))]
        audio, sr = run(sentences[i % len(sentences)], f"{base}+{variant}",
                        int(rng.integers(*ESPEAK_PITCH)), int(rng.integers(*ESPEAK_RATE)),
                        int(rng.integers(*ESPEAK_RANGE)))
        out.append(trim(to_16k(audio, sr, draw_tract(rng, ESPEAK_TRACT) / TRACT_STEPS)))
    return out
