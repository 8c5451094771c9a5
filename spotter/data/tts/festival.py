"""The ``festival`` engine: Festival's diphone voices (English ked; Italian lp and pc and Czech dita
saying the words respelled), their variation, and speaking with them.

The Festival Speech Synthesis System 2.5 (Debian ``festival``) with the ``ked`` diphone voice
(Debian ``festvox-kdlpc16k``: a US male speaker recorded for Festival, residual-excited LPC
diphones). One festival process speaks all clips of a voice (``festival -b`` on a generated Scheme
script). Variants differ in tempo (``Duration_Stretch`` 0.8..1.3), mean pitch (``int_lr_params``
target mean 85..150 Hz, spread 8..30 Hz; lower means crash festival on some words) and a resampling
vocal-tract shift of 0.86..1.18, so held-out festival voices are new variants of ked, not new
people. Festival's other English voices in Debian (kal, and the CMU ARCTIC awb/rms/slt/... voices)
are flite's speakers and are left out, so that a flite corpus stays an evaluation of voices never
heard.

With ``festival_voices=("lp", "pc")`` (``--festival-voices``) Festival's Italian diphone voices
(Debian ``festvox-italp16k``, a woman, and ``festvox-itapc16k``, a man) take turns instead: they say
each word respelled in Italian spelling (:data:`RESPELLINGS`, e.g. "right" as "ràit"), as an Italian
speaker of English would; they ignore the pitch targets, so their variants differ in tempo and tract
shift (which moves their pitch too), and their ids have no ``-f`` (``festival-lp-d105-t420``).
``dita``, the Czech woman of Debian's ``festvox-czech-dita``, says the words respelled in Czech
spelling ("right" as "rajt") and follows the pitch targets (mean 165-275 Hz). The respellings are
package data (``spotter/data/text/respellings.json``): the Italian ones use Latin-1 letters (the
accent marks the stressed vowel; ``r`` is an Italian tap or trill, ``th`` a ``t``, ``h`` silent), the
Czech ones ISO-8859-2 letters (stress always on the first syllable, the acute marks a long vowel; a
final voiced consonant is devoiced, ``w`` is a ``v``, ``th`` a ``t``); each was checked phone by phone
with the voice's own letter-to-sound rules. Festival and flite are related programs (flite is a small
re-implementation of Festival from the same group), so a model trained with festival has heard that
family of engines, not flite's voices.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from spotter.data.texts import RESPELLINGS

from .audio import TRACT_STEPS, draw_tract, parse_wav, to_16k, trim
from .debian import package_version
from .errors import SynthError

__all__ = ["FESTIVAL_DEFAULT_VOICES", "FESTIVAL_VOICES", "RESPELLINGS", "babble", "check", "clips",
           "draw_voices", "run_batch", "say", "version"]

FESTIVAL_INSTALL = ("festival engine unavailable: apt-get install festival festvox-kdlpc16k "
                    "(or run scripts/install_tts.sh)")

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
    # British men, not Flite's speakers: CSTR's rab (LPC diphone) and Steve Isard's small don diphone set
    # (Debian's contrib section: scripts/install_tts.sh --more-voices)
    # rab's LPC diphones abort festival (SIGABRT, "target pitchmarks end before end of target segment") on
    # slow, low words ("one" at 91 Hz, Duration_Stretch 1.38; fine from 96 Hz): its pitch starts at 105 Hz
    "rab": {"scheme": "voice_rab_diphone", "f0": (105, 150), "tract": (0.86, 1.18), "package": "festvox-rablpc16k",
            "more": True},
    "don": {"scheme": "voice_don_diphone", "f0": (85, 150), "tract": (0.86, 1.18), "package": "festvox-don",
            "more": True},
    "lp": {"scheme": "voice_lp_diphone", "f0": None, "tract": (0.86, 1.14),  # Italian female, LPC diphone
           "package": "festvox-italp16k", "respell": "italian"},
    "pc": {"scheme": "voice_pc_diphone", "f0": None, "tract": (0.86, 1.18),  # Italian male, LPC diphone
           "package": "festvox-itapc16k", "respell": "italian"},
    # Czech female (festival-czech, residual-LPC diphones at 32 kHz; her own mean pitch is 222 Hz)
    "dita": {"scheme": "voice_czech_dita", "f0": (165, 275), "tract": (0.86, 1.14), "intonation": "czech",
             "package": "festvox-czech-dita", "respell": "czech", "encoding": "iso-8859-2"},
    # festival-czech's other speakers, the same respellings: a boy (his own pitch about 245 Hz), two men
    "krb": {"scheme": "voice_czech_krb", "f0": (210, 320), "tract": (0.9, 1.14), "intonation": "czech",
            "package": "festvox-czech-krb", "respell": "czech", "encoding": "iso-8859-2"},
    "machac": {"scheme": "voice_czech_machac", "f0": (85, 150), "tract": (0.86, 1.14), "intonation": "czech",
               "package": "festvox-czech-machac", "respell": "czech", "encoding": "iso-8859-2"},
    "ph": {"scheme": "voice_czech_ph", "f0": (90, 160), "tract": (0.86, 1.14), "intonation": "czech",
           "package": "festvox-czech-ph", "respell": "czech", "encoding": "iso-8859-2"},
}
FESTIVAL_DEFAULT_VOICES = ("ked",)
FESTIVAL_STRETCH = (0.8, 1.3)  # Duration_Stretch (tempo; > 1 is slower)
FESTIVAL_F0_SD = (8, 30)       # target_f0_std in Hz, capped at mean / 5

_FESTIVAL_OK: list[str] = []


def check(names: Sequence[str] = FESTIVAL_DEFAULT_VOICES) -> None:
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
            script = "bash scripts/install_tts.sh" + (" --more-voices" if spec.get("more") else "")
            raise SynthError(f"festival has no voice {name}: apt-get install {spec['package']} "
                             f"(or {script}) ({proc.stderr.strip()[:120]})")
        _FESTIVAL_OK.append(name)


def version(voices: Sequence[str] = FESTIVAL_DEFAULT_VOICES) -> str:
    """festival's version and those of the voices' Debian packages, for the corpus manifest."""
    out = subprocess.run(["festival", "--version"], capture_output=True, text=True).stdout.strip()
    version = out.split("System:", 1)[-1].split(":", 1)[0].strip() or out
    parts = [f"festival {version}"]
    for package in dict.fromkeys(FESTIVAL_VOICES[v]["package"] for v in voices):
        deb = package_version(package)
        if deb:
            parts.append(f"{package} {deb}")
    return ", ".join(parts)


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _respell(text: str, voice: str) -> str:
    """What festival voice ``voice`` is given for ``text``: its respelling of the word when it has one
    (trailing punctuation kept), else ``text``."""
    table = RESPELLINGS.get(FESTIVAL_VOICES[voice].get("respell", ""), {})
    word = text.rstrip(".!?,")
    return table[word.lower()] + text[len(word):] if word.lower() in table else text


def run_batch(voice: str, items: Sequence[tuple[str, float, float | None, float | None]]
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
            out.append(parse_wav(path.read_bytes(), "festival"))
    return out


def say(text: str, params: dict) -> tuple[np.ndarray, int]:
    """``text`` said exactly as a manifest voice's ``params`` say (no jitter)."""
    check((params["voice"],))
    (audio, sr), = run_batch(params["voice"], [(text, params["duration_stretch"], params["f0_mean"],
                                                params["f0_stddev"])])
    return audio, sr


def _jitter(value: float | None, factor: float) -> float | None:
    return None if value is None else value * factor


def clips(params: dict, texts: Sequence[str], rngs: Sequence[np.random.Generator]
          ) -> Iterator[tuple[np.ndarray, int]]:
    """Each of ``texts`` said by the voice (one festival process for all), tempo and mean pitch jittered a
    little with its clip's rng."""
    # the pitch jitter is drawn even for voices without a pitch target, as the corpus always has
    return iter(run_batch(params["voice"], [
        (text, params["duration_stretch"] * rng.uniform(0.94, 1.06), _jitter(params["f0_mean"], rng.uniform(0.96, 1.04)),
         params["f0_stddev"]) for rng, text in zip(rngs, texts)]))


def draw_voices(rng: np.random.Generator, count: int, used: set[str],
                names: Sequence[str] = FESTIVAL_DEFAULT_VOICES) -> list[dict]:
    """``count`` voice specs (speaker ids not in ``used``, which gains them): the voices ``names`` in turn,
    at random tempo, mean pitch (where the voice follows it) and tract."""
    names = list(names)
    voices = []
    for i in range(count):
        name = names[i % len(names)]
        spec = FESTIVAL_VOICES[name]
        while True:
            stretch = int(rng.integers(round(100 * FESTIVAL_STRETCH[0]), round(100 * FESTIVAL_STRETCH[1]) + 1))
            f0 = None if spec["f0"] is None else int(rng.integers(spec["f0"][0], spec["f0"][1] + 1))
            tract = draw_tract(rng, spec["tract"])
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


def babble(rng: np.random.Generator, sentences: Sequence[str], count: int) -> list[np.ndarray]:
    """``count`` of ``sentences`` (in turn) said by random variants of ked (one festival process): 16 kHz,
    trimmed."""
    items = []
    for i in range(count):
        f0 = float(rng.integers(*FESTIVAL_VOICES["ked"]["f0"]))
        items.append((sentences[i % len(sentences)], rng.uniform(*FESTIVAL_STRETCH), f0,
                      min(float(rng.integers(*FESTIVAL_F0_SD)), f0 / 5)))
    return [trim(to_16k(audio, sr, draw_tract(rng, FESTIVAL_VOICES["ked"]["tract"]) / TRACT_STEPS))
            for audio, sr in run_batch("ked", items)]
