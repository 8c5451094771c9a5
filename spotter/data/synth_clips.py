"""Writing one voice's clips of a synthetic corpus: each word spoken, trimmed, placed roughly centred in
a clip of exactly the corpus's length (1 s unless asked otherwise) at a random level, and saved as a
16 kHz 16-bit WAV.

Each clip: synthesised (its text the word, maybe with "." or "!"; tempo and pitch jittered a little),
resampled to 16 kHz, trimmed (see :mod:`spotter.data.tts.audio`), 5 ms fades, squeezed by resampling
in the rare case it is longer than the clip less 40 ms, placed roughly centred (+-100 ms jitter) in the
clip's zeros, and peak-normalised to a random -20..-1 dBFS; 16-bit PCM.
"""

from __future__ import annotations

import io
import wave
import zlib
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from spotter.config import CLIP_SAMPLES, SAMPLE_RATE
from spotter.data.tts.audio import TRACT_STEPS, to_16k
from spotter.data.tts.engines import engine_module, trim_word
from spotter.data.tts.errors import SynthError

__all__ = ["voice_task", "write_wav"]

LEVEL_DBFS = (-20.0, -1.0)    # clip peak level
WORD_MARGIN = int(0.04 * SAMPLE_RATE)  # a word fills at most the clip less this (0.96 s of 1 s)
CENTRE_JITTER = int(0.1 * SAMPLE_RATE)


def _fade(x: np.ndarray, seconds: float = 0.005) -> np.ndarray:
    n = min(len(x) // 2, int(seconds * SAMPLE_RATE))
    if n > 0:
        ramp = np.linspace(0.0, 1.0, n, endpoint=False)
        x = x.copy()
        x[:n] *= ramp
        x[-n:] *= ramp[::-1]
    return x


def _place(word: np.ndarray, rng: np.random.Generator, clip_samples: int = CLIP_SAMPLES) -> tuple[np.ndarray, bool]:
    """Trimmed word -> exactly ``clip_samples``, roughly centred, peak at a random level; float in [-1, 1]."""
    squeezed = False
    limit = clip_samples - WORD_MARGIN
    if len(word) > limit:
        word = resample_poly(word, limit, len(word))[:limit]
        squeezed = True
    word = _fade(word)
    out = np.zeros(clip_samples, dtype=np.float64)
    free = clip_samples - len(word)
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


def write_wav(path: Path, x: np.ndarray) -> None:
    """Save float audio in [-1, 1] as a 16 kHz mono 16-bit WAV."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(_pcm16(x).tobytes())
    path.write_bytes(buf.getvalue())


def _clip_rng(seed: int, voice_index: int, word: str, take: int) -> np.random.Generator:
    return np.random.default_rng([seed, 0xC11B, voice_index, zlib.crc32(word.encode()), take])


def voice_task(task: dict) -> dict:
    """Synthesise every clip of one voice and write the WAVs (runs in a worker process).

    ``task``: ``voice`` (a manifest voice), ``voice_index``, ``out_dir``, ``seed``, ``clips``
    (``(word, take)`` pairs) and optionally ``clip_samples``; returns how many clips were ``written`` and ``squeezed``.
    """
    voice, out_dir, seed = task["voice"], Path(task["out_dir"]), task["seed"]
    engine, params = voice["engine"], voice["params"]
    squeezed, written = 0, 0
    rngs = [_clip_rng(seed, task["voice_index"], word, take) for word, take in task["clips"]]
    texts = [word + str(rng.choice(["", ".", "!"])) for rng, (word, _) in zip(rngs, task["clips"])]
    spoken = engine_module(engine).clips(params, texts, rngs)
    for (word, take), rng, (audio, sr) in zip(task["clips"], rngs, spoken):
        word_audio = trim_word(engine, to_16k(audio, sr, params["tract"] / TRACT_STEPS))
        if len(word_audio) == 0:
            raise SynthError(f"{engine} produced silence for {word!r} with voice {voice['speaker']}")
        clip, was_squeezed = _place(word_audio, rng, task.get("clip_samples", CLIP_SAMPLES))
        squeezed += was_squeezed
        write_wav(out_dir / word / f"{voice['speaker']}_nohash_{take}.wav", clip)
        written += 1
    return {"written": written, "squeezed": squeezed}
