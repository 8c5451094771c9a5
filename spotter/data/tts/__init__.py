"""Offline text-to-speech engines for the synthetic corpus and the test streams, one module each.

* :mod:`~spotter.data.tts.espeak` - espeak-ng's formant voices;
* :mod:`~spotter.data.tts.piper` - the piper-tts neural voice "joe";
* :mod:`~spotter.data.tts.flite` - CMU Flite's voices (for evaluation corpora only);
* :mod:`~spotter.data.tts.festival` - Festival's ked, and its Italian and Czech voices saying the words
  respelled;
* :mod:`~spotter.data.tts.pico`, :mod:`~spotter.data.tts.mbrola`, :mod:`~spotter.data.tts.rhvoice` -
  SVOX Pico's two women, MBROLA's four diphone speakers and RHVoice's five English voices (Debian's
  non-free and contrib packages, ``scripts/install_tts.sh --more-voices``);
* :mod:`~spotter.data.tts.engines` - which engines exist and can run here, and :func:`say` with a voice of
  a corpus manifest;
* :mod:`~spotter.data.tts.audio` - reading an engine's WAV output, resampling to 16 kHz with a vocal-tract
  shift, trimming silence;
* :mod:`~spotter.data.tts.errors` - :class:`SynthError`.

Every engine module has the same functions: ``check()`` (raise :class:`SynthError` naming what to
install), ``version()``, ``draw_voices(rng, count, used)`` (deterministic voice specs), ``say(text,
params)`` (a manifest voice, no jitter), ``clips(params, texts, rngs)`` (one voice's corpus clips, each
jittered with its own rng) and ``babble(rng, sentences, count)`` (sentences for babble noise).
"""

from __future__ import annotations

from .audio import TRACT_STEPS
from .engines import ENGINES, available_engines, check_engine, say
from .errors import SynthError
from .espeak import variants as espeak_variants
from .flite import flite_voices

__all__ = ["ENGINES", "TRACT_STEPS", "SynthError", "available_engines", "check_engine", "espeak_variants",
           "flite_voices", "say"]
