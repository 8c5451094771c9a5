"""New training voices made from the corpus' own, through the WORLD vocoder.

Three TTS engines give few distinct *speakers*: piper's joe and festival's ked
are one man each, and espeak is one formant synthesiser. :func:`make_world_corpus`
turns training voices into new ones with the WORLD vocoder (Morise et al., 2016,
through ``pyworld``): each clip is analysed into its pitch contour, spectral
envelope and aperiodicity, those are changed, and the clip is synthesised again.
One new voice applies one set of changes to every clip of one source voice, so it
is a consistent speaker:

* **mean pitch** moved to a target of 80..250 Hz (log-uniform), so male sources
  also become female- and child-like voices, with the pitch movement around it
  scaled by 0.3..1.5 (flat to lively);
* **vocal tract**: the spectral envelope warped along frequency by a factor
  that follows the pitch change (``(target / 120 Hz) ** 0.25``, jittered by
  +-6%, so formants move up for high voices), with the timing left alone;
* **envelope detail**: on most voices the log envelope is cepstrally smoothed
  to 24..60 coefficients, the over-smoothed spectra of statistical-parametric
  synthesis (HTS, clustergen);
* **articulation**: on half the voices the envelope is also averaged over
  20 or 40 ms along time (slower, smoother formant movement);
* **breathiness**: aperiodicity raised to a power of 0.6..1.5 (breathier or
  buzzier).

Only training voices are converted, into a new corpus whose clips are all
training clips (empty split lists); ``spotter data merge`` joins it to its
source, so validation and test keep measuring voices the model never heard.
The new voices are listed in its ``corpus.json`` with engine ``world`` and the
source speaker in their parameters; speaker ids look like
``world-f180-a112-c40-piper-joe-l100-n38-w56-t484``.

``pyworld`` is an optional dependency (``pip install pyworld``). Its 0.3.5
release reads its own version through ``pkg_resources``, which setuptools no
longer ships; :func:`load_pyworld` provides that one call from ``importlib.metadata``
so the vocoder loads either way.
"""

from __future__ import annotations

import json
import os
import sys
import types
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

from ..config import SAMPLE_RATE
from ..errors import SpotterError

__all__ = ["make_world_corpus", "draw_world_voice", "convert", "load_pyworld", "WORLD_INSTALL"]

WORLD_INSTALL = "the WORLD vocoder is not installed: pip install pyworld"
FRAME_MS = 5.0
F0_TARGET = (80.0, 250.0)        # Hz, log-uniform
F0_REFERENCE = 120.0             # Hz: the pitch at which the envelope is not warped
F0_RANGE = (0.3, 1.5)
WARP_JITTER = (0.94, 1.06)
WARP_LIMITS = (0.85, 1.25)
CEPSTRUM_ORDERS = (0, 60, 40, 30, 24)     # 0: no smoothing
CEPSTRUM_WEIGHTS = (0.2, 0.2, 0.2, 0.2, 0.2)
APERIODICITY_POWER = (0.6, 1.5)
SMOOTH_MS = (0, 0, 20, 40)
SKIP_FOLDERS = {"_background_noise_"}


def load_pyworld():
    """Import pyworld, giving its 0.3.5 release the ``pkg_resources`` call it makes for its version."""
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        from importlib.metadata import version
        shim = types.ModuleType("pkg_resources")
        shim.get_distribution = lambda name: types.SimpleNamespace(version=version(name))
        sys.modules["pkg_resources"] = shim
    try:
        import pyworld
    except ImportError:
        raise SpotterError(WORLD_INSTALL) from None
    finally:
        if sys.modules.get("pkg_resources") is not None and not hasattr(sys.modules["pkg_resources"], "__file__"):
            del sys.modules["pkg_resources"]
    return pyworld


def draw_world_voice(rng: np.random.Generator) -> dict:
    """Random WORLD voice parameters (see the module docstring for the ranges)."""
    f0 = float(np.exp(rng.uniform(*np.log(F0_TARGET))))
    warp = (f0 / F0_REFERENCE) ** 0.25 * rng.uniform(*WARP_JITTER)
    return {
        "f0_mean": round(f0),
        "f0_range": round(float(rng.uniform(*F0_RANGE)), 2),
        "warp": round(float(np.clip(warp, *WARP_LIMITS)), 2),
        "cepstrum": int(rng.choice(CEPSTRUM_ORDERS, p=CEPSTRUM_WEIGHTS)),
        "aperiodicity": round(float(np.exp(rng.uniform(*np.log(APERIODICITY_POWER)))), 2),
        "smooth_ms": int(rng.choice(SMOOTH_MS)),
    }


def _warp_envelope(sp: np.ndarray, warp: float) -> np.ndarray:
    """Move the envelope's features up in frequency by ``warp`` (log-domain linear interpolation)."""
    bins = sp.shape[1]
    src = np.arange(bins) / warp
    i0 = np.clip(np.floor(src).astype(int), 0, bins - 1)
    i1 = np.minimum(i0 + 1, bins - 1)
    w = np.clip(src - i0, 0.0, 1.0)
    log_sp = np.log(sp)
    return np.exp(log_sp[:, i0] * (1 - w) + log_sp[:, i1] * w)


def _smooth_envelope(sp: np.ndarray, order: int) -> np.ndarray:
    """Keep the first ``order`` real-cepstrum coefficients of the log envelope."""
    n_fft = (sp.shape[1] - 1) * 2
    cep = np.fft.irfft(np.log(sp), n=n_fft, axis=1)
    cep[:, order:n_fft - order + 1] = 0.0
    return np.exp(np.fft.rfft(cep, axis=1).real)


def _smooth_trajectories(sp: np.ndarray, frames: int) -> np.ndarray:
    """Average the log envelope over a Hann window of ``frames`` frames along time (slower formant movement)."""
    window = np.hanning(frames + 2)[1:-1]
    window /= window.sum()
    log_sp = np.log(sp)
    pad = frames // 2
    padded = np.pad(log_sp, ((pad, frames - 1 - pad), (0, 0)), mode="edge")
    smoothed = np.stack([np.convolve(padded[:, k], window, mode="valid") for k in range(sp.shape[1])], axis=1)
    return np.exp(smoothed)


def convert(x: np.ndarray, params: dict, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Resynthesise ``x`` (float mono) as the WORLD voice ``params``; same length and RMS as ``x``."""
    pw = load_pyworld()
    x64 = np.ascontiguousarray(x, dtype=np.float64)
    rms_in = float(np.sqrt(np.mean(x64 ** 2)))
    if rms_in < 1e-6:
        return np.zeros_like(x, dtype=np.float32)
    f0, t = pw.dio(x64, sample_rate, frame_period=FRAME_MS)
    f0 = pw.stonemask(x64, f0, t, sample_rate)
    sp = pw.cheaptrick(x64, f0, t, sample_rate)
    ap = pw.d4c(x64, f0, t, sample_rate)
    voiced = f0 > 0
    if voiced.any():
        log_f0 = np.log(f0[voiced])
        centre = np.median(log_f0)
        f0 = f0.copy()
        f0[voiced] = np.exp(np.log(params["f0_mean"]) + (log_f0 - centre) * params["f0_range"])
    sp = np.maximum(sp, 1e-16)
    if params["warp"] != 1.0:
        sp = _warp_envelope(sp, params["warp"])
    if params["cepstrum"]:
        sp = _smooth_envelope(sp, params["cepstrum"])
    if params.get("smooth_ms", 0) >= 2 * FRAME_MS:
        sp = _smooth_trajectories(sp, int(round(params["smooth_ms"] / FRAME_MS)))
    ap = np.clip(ap ** params["aperiodicity"], 1e-3, 1.0)
    y = pw.synthesize(f0, np.ascontiguousarray(sp), np.ascontiguousarray(ap), sample_rate, FRAME_MS)
    y = np.pad(y, (0, max(0, x.size - y.size)))[:x.size]
    rms_out = float(np.sqrt(np.mean(y ** 2)))
    if rms_out > 0:
        y *= rms_in / rms_out
    peak = float(np.max(np.abs(y)))
    if peak > 0.99:
        y *= 0.99 / peak
    return y.astype(np.float32)


def _speaker_id(source: str, params: dict) -> str:
    return f"world-f{params['f0_mean']}-a{round(params['warp'] * 100)}-c{params['cepstrum']}-{source}"


def _convert_voice(job: tuple[list[tuple[str, str]], dict]) -> int:
    pairs, params = job
    for src, dst in pairs:
        audio, sr = sf.read(src, dtype="float32")
        if sr != SAMPLE_RATE or audio.ndim != 1:
            raise SpotterError(f"data vocode: {src}: expected 16 kHz mono, found {sr} Hz with shape {audio.shape}")
        out = convert(audio, params)
        sf.write(dst, out, SAMPLE_RATE, subtype="PCM_16")
    return len(pairs)


def make_world_corpus(corpus_dir: str | os.PathLike, out_dir: str | os.PathLike, voices: int = 180, seed: int = 0,
                      engines: tuple[str, ...] = ("piper", "festival", "espeak"), workers: int | None = None,
                      progress: bool = True) -> dict:
    """Write a corpus of ``voices`` new voices, each a WORLD conversion of one training voice of ``corpus_dir``.

    Source voices are drawn without replacement (then again once all are used) from the source
    corpus' training voices of ``engines``; every clip of a source voice is converted: its words
    and its sentence crops (``speech/``, from ``spotter data speech``), so a new voice says
    keywords, other words and continuous speech in the same proportions as its source. ``out_dir`` gets the Speech Commands layout with
    empty split lists (every clip is training), no noise folder and a ``corpus.json`` listing the
    new voices; join it to its source with ``spotter data merge``. Returns the manifest.
    """
    from tqdm import tqdm

    pw = load_pyworld()
    root, out = Path(corpus_dir), Path(out_dir)
    manifest_path = root / "corpus.json"
    if not manifest_path.is_file():
        raise SpotterError(f"data vocode: {root} has no corpus.json; make the corpus with `spotter data synth` first")
    if out.exists() and any(out.iterdir()):
        raise SpotterError(f"data vocode: {out} exists and is not empty; choose a new --out")
    if voices < 1:
        raise SpotterError(f"data vocode: --voices {voices}: must be at least 1")
    manifest = json.loads(manifest_path.read_text())
    sources = [v for v in manifest.get("voices", []) if v["split"] == "training" and v["engine"] in engines]
    if not sources:
        raise SpotterError(f"data vocode: {manifest_path} lists no training voices of engines {', '.join(engines)}")
    words = sorted(p for p in root.iterdir() if p.is_dir() and p.name not in SKIP_FOLDERS)
    rng = np.random.default_rng(seed)
    order: list[int] = []
    jobs, entries, seen = [], [], set()
    for _ in range(voices):
        if not order:
            order = [int(i) for i in rng.permutation(len(sources))]
        source = sources[order.pop()]
        params = draw_world_voice(rng)
        speaker = _speaker_id(source["speaker"], params)
        if speaker in seen:
            continue
        seen.add(speaker)
        # every clip of the source voice: words (<speaker>_nohash_<k>.wav) and sentence crops (<speaker>_<n>.wav)
        pairs = [(str(src), str(out / word.name / src.name.replace(source["speaker"], speaker, 1)))
                 for word in words for src in sorted(word.glob(f"{source['speaker']}_*.wav"))]
        if pairs:
            jobs.append((pairs, params))
            entries.append({"speaker": speaker, "engine": "world", "split": "training",
                            "params": {"source": source["speaker"], "source_engine": source["engine"], **params}})
    for word in words:
        (out / word.name).mkdir(parents=True, exist_ok=True)
    total = sum(len(p) for p, _ in jobs)
    workers = max(1, workers or os.cpu_count() or 1)
    with tqdm(total=total, unit="clip", desc="WORLD voices", disable=not progress) as bar:
        if workers == 1:
            for job in jobs:
                bar.update(_convert_voice(job))
        else:
            with ProcessPoolExecutor(workers) as pool:
                for n in pool.map(_convert_voice, jobs):
                    bar.update(n)
    for name in ("validation_list.txt", "testing_list.txt"):
        (out / name).write_text("", encoding="utf-8")
    result = {
        "format": "google-speech-commands-v2",
        "synthetic": True,
        "complete": True,
        "note": ("WORLD-vocoder conversions of synthetic training voices (new pitch, vocal tract, envelope detail "
                 "and breathiness); training clips only."),
        "engines": ["world"],
        "engine_versions": {"world": f"pyworld {pw.__version__}"},
        "converted_from": str(root),
        "seed": seed,
        "requested_voices": voices,
        "total_clips": total,
        "split_clips": {"validation": 0, "testing": 0, "training": total},
        "background_noise": {"dir": "_background_noise_", "files": []},
        "voices": entries,
    }
    (out / "corpus.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result
