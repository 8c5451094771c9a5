"""What is shared by the engines: which exist (:data:`ENGINES`), which can run here, and saying a text
with any voice of a corpus manifest (:func:`say`)."""

from __future__ import annotations

from types import ModuleType

import numpy as np

from . import espeak, festival, flite, mbrola, pico, piper, rhvoice
from .audio import TRACT_STEPS, to_16k, trim
from .errors import SynthError

__all__ = ["ENGINES", "available_engines", "check_engine", "engine_module", "say", "trim_word"]

ENGINES = ("espeak", "piper", "flite", "festival", "pico", "mbrola", "rhvoice")

_MODULES: dict[str, ModuleType] = {"espeak": espeak, "piper": piper, "flite": flite, "festival": festival,
                                   "pico": pico, "mbrola": mbrola, "rhvoice": rhvoice}


def engine_module(engine: str) -> ModuleType:
    """The module of ``engine`` (:mod:`~spotter.data.tts.espeak`, ...); ``ValueError`` for an unknown one."""
    if engine not in _MODULES:
        raise ValueError(f"unknown TTS engine {engine!r}; choose from {ENGINES}")
    return _MODULES[engine]


def check_engine(engine: str) -> None:
    """Raise :class:`SynthError` (a ``RuntimeError``) naming what to install when ``engine`` cannot run here."""
    engine_module(engine).check()


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


def trim_word(engine: str, audio16: np.ndarray) -> np.ndarray:
    """``engine``'s 16 kHz utterance with the silence around it cut (flite's noisy pauses too)."""
    return flite.trim_clip(audio16) if engine == "flite" else trim(audio16)


def say(text: str, voice: dict) -> np.ndarray:
    """``text`` spoken by one voice of a corpus manifest (an entry of ``corpus.json``'s ``voices``:
    ``{"engine": ..., "params": ...}``), exactly as its parameters say (no per-clip jitter):
    16 kHz float32, leading/trailing silence trimmed as the corpus clips are, level untouched.

    Raises :class:`SynthError` when the voice's engine is missing or fails.
    """
    engine, params = voice["engine"], voice["params"]
    check_engine(engine)
    audio, sr = engine_module(engine).say(text, params)
    audio16 = to_16k(audio, sr, params["tract"] / TRACT_STEPS)
    return trim_word(engine, audio16).astype(np.float32)
