"""The ``flite`` engine: CMU Flite's built-in voices, their variation, speaking and trimming.

CMU Flite 2.2 (the Debian ``flite`` program), run as a subprocess that writes a WAV to a temporary
file. It is NOT among the default engines and the shipped model is never trained on it: it is there
to build evaluation corpora of engines and voices never heard in training
(``synthesize_corpus(out, per_word=40, engines=("flite",))``). Voices: the real speakers built into
Debian's flite - ``slt`` (US female, clustergen), ``awb`` (Scottish male, clustergen), ``rms`` (US
male, clustergen), ``kal16`` (US male diphone, 16 kHz) and ``kal`` (the same speaker's 8 kHz diphone
voice, so telephone-band audio); the limited-domain ``awb_time`` (it can only say clock times) is
left out. Each variant has its own tempo (``duration_stretch`` 0.8..1.25), mean pitch
(``int_f0_target_mean``: kal and kal16 85..145 Hz, awb 90..150 Hz, slt 150..240 Hz) and pitch
movement (``int_f0_target_stddev`` 5..30 Hz, at most a sixth of the mean), plus a resampling
vocal-tract shift of 0.92..1.08. Debian's ``rms`` ignores the pitch features (its pitch stays about
100 Hz), so its variants get a wider shift of 0.88..1.14 instead. Voices are drawn so that each of
the five repeats only once all are used. Speaker ids look like ``flite-slt-d110-f180`` (stretch
1.10, mean pitch 180 Hz) and ``flite-rms-d95-t460``; since kal and kal16 are one person there are
four distinct flite speakers in all.

flite's pauses carry a faint noise floor, so its clips are trimmed 6 dB above the noise of its
leading pause (:func:`trim_db`, 40..55 dB below the loudest frame) rather than at the 55 dB of the
other engines.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from spotter.config import SAMPLE_RATE

from .audio import TRACT_STEPS, deal, draw_tract, parse_wav, to_16k, trim
from .debian import package_version
from .errors import SynthError

__all__ = ["FLITE_VOICES", "babble", "check", "clips", "draw_voices", "flite_voices", "run", "say",
           "trim_clip", "trim_db", "version"]

FLITE_INSTALL = "flite not found: apt-get install flite (or run scripts/install_tts.sh)"

#: flite voices that are real speakers (``awb_time`` can only say clock times): name ->
#: mean-pitch range in Hz (``int_f0_target_mean``), or None where the voice ignores the
#: pitch features (Debian's rms), and the vocal-tract (resampling) range.
FLITE_VOICES: dict[str, dict[str, Any]] = {
    "slt": {"f0": (150, 240), "tract": (0.92, 1.08)},    # US female, clustergen
    "awb": {"f0": (90, 150), "tract": (0.92, 1.08)},     # Scottish male, clustergen
    "rms": {"f0": None, "tract": (0.88, 1.14)},          # US male, clustergen, fixed pitch ~100 Hz
    "kal16": {"f0": (85, 145), "tract": (0.92, 1.08)},   # US male diphone, 16 kHz
    "kal": {"f0": (85, 145), "tract": (0.92, 1.08)},     # the same speaker, 8 kHz diphone
}
FLITE_STRETCH = (0.8, 1.25)   # flite duration_stretch (tempo; > 1 is slower)
FLITE_F0_SD = (5, 30)         # int_f0_target_stddev in Hz, capped at mean / 6 (more makes kal crack)
FLITE_TRIM = (40.0, 55.0)     # flite trim depth (dB below the loudest frame): 6 dB above its pause noise
FLITE_NOISE_LEAD = 0.05       # seconds at the start of flite's output taken as pause noise


def check() -> None:
    """Raise :class:`SynthError` when the flite program is not installed."""
    if shutil.which("flite") is None:
        raise SynthError(FLITE_INSTALL)


def version() -> str:
    """flite's version (and its Debian package's), for the corpus manifest."""
    out = subprocess.run(["flite", "--version"], capture_output=True, text=True).stdout
    version = next((line.split("version:", 1)[1].strip() for line in out.splitlines() if "version:" in line),
                   out.strip())
    version = version.split(" (http")[0]
    deb = package_version("flite")
    return f"{version} (Debian package {deb})" if deb else version


def flite_voices() -> tuple[str, ...]:
    """The voices of :data:`FLITE_VOICES` that this flite has built in (``flite -lv``)."""
    check()
    out = subprocess.run(["flite", "-lv"], capture_output=True, text=True).stdout
    have = set(out.split(":", 1)[-1].split())
    voices = tuple(v for v in FLITE_VOICES if v in have)
    if not voices:
        raise SynthError(f"flite has none of the voices {tuple(FLITE_VOICES)} (flite -lv: {out.strip()!r}); "
                         "install Debian's flite")
    return voices


def run(text: str, voice: str, stretch: float, f0_mean: float | None,
        f0_sd: float | None) -> tuple[np.ndarray, int]:
    """One utterance from flite (8 kHz for kal, 16 kHz for the others); no pitch features when f0_mean is None."""
    cmd = ["flite", "-voice", voice, "--setf", f"duration_stretch={stretch:.4f}"]
    if f0_mean is not None:
        cmd += ["--setf", f"int_f0_target_mean={f0_mean:.2f}", "--setf", f"int_f0_target_stddev={f0_sd:.2f}"]
    with tempfile.TemporaryDirectory(prefix="spotter-flite-") as tmp:
        path = Path(tmp) / "say.wav"
        try:
            proc = subprocess.run([*cmd, "-t", text, "-o", str(path)], capture_output=True, check=False)
        except FileNotFoundError:
            raise SynthError(FLITE_INSTALL) from None
        if proc.returncode != 0 or not path.is_file():
            raise SynthError(f"flite failed ({proc.returncode}) for voice {voice}: "
                             f"{proc.stderr.decode(errors='replace').strip()}")
        data = path.read_bytes()
    return parse_wav(data, "flite")


def say(text: str, params: dict) -> tuple[np.ndarray, int]:
    """``text`` said exactly as a manifest voice's ``params`` say (no jitter)."""
    return run(text, params["voice"], params["duration_stretch"], params["f0_mean"], params["f0_stddev"])


def clips(params: dict, texts: Sequence[str], rngs: Sequence[np.random.Generator]
          ) -> Iterator[tuple[np.ndarray, int]]:
    """Each of ``texts`` said by the voice, tempo and mean pitch jittered a little with its clip's rng."""
    for text, rng in zip(texts, rngs):
        stretch = params["duration_stretch"] * rng.uniform(0.94, 1.06)
        f0 = None if params["f0_mean"] is None else params["f0_mean"] * rng.uniform(0.96, 1.04)
        yield run(text, params["voice"], stretch, f0, params["f0_stddev"])


def trim_db(x: np.ndarray) -> float:
    """How deep to trim a flite utterance (16 kHz): its pauses are not digital silence but a
    noise floor 45..75 dB below the loudest frame, which a 55 dB trim would keep. Trim 6 dB
    above the noise of the first 50 ms (flite always starts with a pause), within :data:`FLITE_TRIM`."""
    hop = SAMPLE_RATE // 100
    n_frames = len(x) // hop
    lead = max(1, int(FLITE_NOISE_LEAD * 100))
    if n_frames <= lead:
        return FLITE_TRIM[1]
    rms = np.sqrt(np.mean(x[:n_frames * hop].reshape(n_frames, hop) ** 2, axis=1))
    noise, top = float(np.median(rms[:lead])), float(rms.max())
    if noise <= 0.0 or top <= 0.0:
        return FLITE_TRIM[1]
    return float(np.clip(20.0 * math.log10(top / noise) - 6.0, *FLITE_TRIM))


def trim_clip(x: np.ndarray) -> np.ndarray:
    """A flite utterance (16 kHz) with its leading and trailing pauses cut at :func:`trim_db`."""
    return trim(x, trim_db(x))


def draw_voices(rng: np.random.Generator, count: int, used: set[str]) -> list[dict]:
    """``count`` voice specs (speaker ids not in ``used``, which gains them): flite's voices in a random
    order, each repeating only once all have been used, at random tempo, pitch (or tract) and tract."""
    names = flite_voices()
    order = deal(rng, len(names), count)
    voices = []
    for i in range(count):
        name = names[order[i]]
        spec = FLITE_VOICES[name]
        while True:
            stretch = int(rng.integers(round(100 * FLITE_STRETCH[0]), round(100 * FLITE_STRETCH[1]) + 1))
            tract = draw_tract(rng, spec["tract"])
            if spec["f0"] is None:
                f0, sd = None, None
                speaker = f"flite-{name}-d{stretch}-t{tract}"
            else:
                f0 = int(rng.integers(spec["f0"][0], spec["f0"][1] + 1))
                sd = int(rng.integers(FLITE_F0_SD[0], FLITE_F0_SD[1] + 1))
                sd = min(sd, f0 // 6)
                speaker = f"flite-{name}-d{stretch}-f{f0}"
            if speaker not in used:
                break
        voices.append({
            "speaker": speaker, "engine": "flite",
            "params": {"voice": name, "duration_stretch": stretch / 100, "f0_mean": f0, "f0_stddev": sd,
                       "tract": tract},
        })
        used.add(speaker)
    return voices


def babble(rng: np.random.Generator, sentences: Sequence[str], count: int) -> list[np.ndarray]:
    """``count`` of ``sentences`` (in turn) said by random flite voices: 16 kHz, trimmed."""
    names = flite_voices()
    out = []
    for i in range(count):
        name = names[int(rng.integers(len(names)))]
        spec = FLITE_VOICES[name]
        f0 = None if spec["f0"] is None else float(rng.integers(spec["f0"][0], spec["f0"][1] + 1))
        sd = None if f0 is None else min(float(rng.integers(FLITE_F0_SD[0], FLITE_F0_SD[1] + 1)), f0 // 6)
        audio, sr = run(sentences[i % len(sentences)], name, rng.uniform(*FLITE_STRETCH), f0, sd)
        out.append(trim_clip(to_16k(audio, sr, draw_tract(rng, spec["tract"]) / TRACT_STEPS)))
    return out
