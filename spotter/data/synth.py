"""An offline, synthetic Speech Commands corpus made by text-to-speech: :func:`synthesize_corpus`.

:func:`synthesize_corpus` writes a folder in the exact Google Speech Commands v2
layout (``<word>/<speaker>_nohash_<k>.wav``, ``_background_noise_/*.wav``,
``validation_list.txt``, ``testing_list.txt``) plus a ``corpus.json`` manifest,
so everything that reads GSC reads it unchanged. It needs no network at all.
This module checks the arguments, shares out the work and writes the lists and
the manifest; the parts live beside it:

* :mod:`spotter.data.tts` - the engines (espeak, piper, flite, festival), their
  voices and variation, and :func:`say` with a voice of a manifest;
* :mod:`spotter.data.synth_voices` - how many voices per engine, their specs, splits;
* :mod:`spotter.data.synth_clips` - one voice's clips, trimmed, placed and written;
* :mod:`spotter.data.synth_noise` - the ``_background_noise_`` files;
* :mod:`spotter.data.texts` - the babble sentences and festival's respellings (package data).

THIS IS SYNTHETIC SPEECH, NOT RECORDINGS OF PEOPLE. It is for building and
testing the pipeline end to end, smoke-training, and as extra data beside real
recordings; a model trained on it alone will do much worse on real voices than
one trained on real Speech Commands, and accuracy measured on its held-out
voices says little about accuracy on people.

Engines: ``espeak`` (espeak-ng formant voices), ``piper`` (the neural voice
"joe"), ``festival`` (ked; or Italian/Czech voices saying the words respelled)
and ``flite`` (never trained on: for evaluation corpora of unheard voices); each
module's docstring says which voices and what varies. Every voice says every
word (``takes`` times), so the validation and test splits can be made of whole
voices never heard in training, as GSC does with speakers. Speaker ids name the
voice, e.g. ``espeak-engbxrp-f3-p62-s170`` or ``piper-joe-l105-n67-w80-t441``,
and contain no underscore.

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
import json
import math
import multiprocessing
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Iterable, Sequence

from spotter.config import ALL_WORDS, BACKGROUND_NOISE_DIR, CLIP_SAMPLES, KEYWORDS, SAMPLE_RATE
from spotter.data.synth_clips import voice_task
from spotter.data.synth_noise import write_noise
from spotter.data.synth_voices import assign_splits, make_voices, split_counts
from spotter.data.texts import BABBLE_SENTENCES
from spotter.data.tts import festival
from spotter.data.tts.audio import TRACT_STEPS
from spotter.data.tts.engines import ENGINES, available_engines, check_engine, engine_module, say
from spotter.data.tts.errors import SynthError
from spotter.data.tts.espeak import variants as espeak_variants
from spotter.data.tts.flite import flite_voices

# what other code imports from here: the corpus builder and, re-exported, the engines' public names
__all__ = [
    "ENGINES", "synthesize_corpus", "check_engine", "available_engines", "espeak_variants",
    "flite_voices", "say", "BABBLE_SENTENCES", "SynthError", "TRACT_STEPS",
]

#: Only the engines asked for share the voices, so the flite entry leaves espeak+piper corpora as they were.
DEFAULT_ENGINE_WEIGHTS = {"espeak": 3.0, "piper": 1.0, "flite": 1.0, "festival": 1.0, "pico": 1.0, "mbrola": 1.0,
                          "rhvoice": 1.0}

NOTE = ("Synthetic speech made offline by text-to-speech (espeak-ng formant voices, festival's diphone voices and/or the "
        "piper neural voice 'joe'), not recordings of people. Validation and test splits hold out "
        "whole synthetic voices; all piper voices are variants of one speaker. Use it to build and "
        "test the pipeline or as extra training data, not as a measure of accuracy on real speech.")
FLITE_NOTE = ("Synthetic speech made offline by text-to-speech, not recordings of people. Voices from CMU "
              "Flite (engine 'flite': slt, awb, rms, kal16 and kal, four speakers) are never used to train "
              "the shipped model: a flite corpus measures accuracy on an engine and voices never heard, "
              "still synthetic, so it is no measure of accuracy on real speech.")


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
                      festival_voices: Sequence[str] = festival.FESTIVAL_DEFAULT_VOICES,
                      clip_samples: int = CLIP_SAMPLES) -> dict:
    """Write a synthetic Google Speech Commands v2 style corpus to ``out_dir``; return its manifest.

    ``per_word`` clips of each of ``words`` are spread over ``ceil(per_word / takes)``
    voices, each voice saying every word ``takes`` times (``<speaker>_nohash_0..``).
    Voices are shared among ``engines`` in proportion to ``engine_weights``
    (default espeak 3 : piper 1 : flite 1) and split whole into validation (about
    ``holdout_fraction`` of them), testing (the same) and training. Background
    noise files of ``noise_seconds`` go to ``_background_noise_``. ``workers``
    processes synthesise (default: up to 2, one per core; 1 runs in this process).
    Each clip is ``clip_samples`` long (1 s; more for a model with a longer window).
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
        festival.check(festival_voices)
    words = tuple(words)
    if not words or len(set(words)) != len(words):
        raise ValueError("words must be non-empty and distinct")
    for word in words:
        if (not word or not all(ch.isalnum() or ch in "-' " for ch in word) or word != " ".join(word.split())
                or word == BACKGROUND_NOISE_DIR):
            raise ValueError(f"bad word {word!r}: letters, digits, - and ' only (a phrase: words with one space between)")
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
    per_engine = split_counts({e: weights[e] for e in engines}, n_voices)
    voices = make_voices(per_engine, seed, festival_voices)
    assign_splits(voices, holdout_fraction, seed)

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
                      "clips": clips, "clip_samples": int(clip_samples)})
    total = sum(len(t["clips"]) for t in tasks)

    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    workers = max(1, min(int(workers), len(tasks)))
    bar = _progress(total, disable=not progress)
    squeezed = 0
    try:
        if workers == 1:
            for task in tasks:
                result = voice_task(task)
                squeezed += result["squeezed"]
                bar.update(result["written"])
        else:
            # piper voices (slow) first so the pool does not end on one long task
            order = sorted(tasks, key=lambda t: t["voice"]["engine"] != "piper")
            with concurrent.futures.ProcessPoolExecutor(workers, mp_context=_pool_context()) as pool:
                futures = [pool.submit(voice_task, task) for task in order]
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

    noise_files = write_noise(out / BACKGROUND_NOISE_DIR, engines, seed, noise_seconds) if noise_seconds > 0 else []
    for split, name in (("validation", "validation_list.txt"), ("testing", "testing_list.txt")):
        lines = sorted(split_files[split])
        (out / name).write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")

    # in the order of ENGINES (espeak, piper, flite, festival, ...), whatever the order asked for
    versions = {e: festival.version(festival_voices) if e == "festival" else engine_module(e).version()
                for e in ENGINES if e in engines}
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
        "clip_samples": int(clip_samples),
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
