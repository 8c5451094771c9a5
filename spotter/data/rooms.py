"""Rooms, simulated: generated impulse responses and audio played through them (pure numpy/scipy).

A room is described by its reverberation time (``rt60_s``: how long sound takes to decay by
60 dB) and the talker's distance from the microphone (``distance_m``), which sets how much of
what arrives is the direct sound and how much the room's reverberation: the reverberant field
is as loud as the direct sound at the critical distance ``0.057 * sqrt(volume / rt60)`` (m, m^3,
s) and the direct sound falls 6 dB per doubling of distance beyond it.

Two kinds of impulse response, so that a model can be trained on one and tested on the other:

* ``"diffuse"``: the direct sound, then a tail of noise decaying exponentially, faster at high
  frequencies than at low ones (air and walls absorb treble), as statistical room acoustics
  model late reverberation.
* ``"image"``: a rectangular room (the image-source method): the direct sound and the discrete
  early reflections off its six walls, up to the order that fills the first 80 ms (their times and
  spreading from the geometry, their decay the room's), then the same decay continued by a diffuse
  tail. Its early part has the comb-like colour of a real box room.

Every response starts with its direct sound at sample 0, so audio played through a room keeps
its timing (labels stay valid), and :func:`reverberate` keeps the direct sound's level.
:func:`reverberate_file` is the one function here that touches files: a recording and its labels
played through a room, as `spotter data reverb` and `benchmarks/bench_voices.py --room` make them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spotter.config import SAMPLE_RATE

__all__ = ["KINDS", "impulse_response", "reverberate", "through_room", "reverberate_file", "RoomRecording",
           "rt60_of", "direct_to_reverberant_db"]

KINDS = ("diffuse", "image")
SPEED_OF_SOUND = 343.0
#: Reverberation time of the bands of the diffuse tail, relative to ``rt60_s`` (low, mid, high).
BAND_EDGES_HZ = (500.0, 4000.0)
BAND_RT = (1.15, 1.0, 0.6)


def _check(rt60_s: float, distance_m: float, kind: str) -> None:
    if not 0.05 <= rt60_s <= 3.0:
        raise ValueError(f"reverberation time {rt60_s} s: give 0.05-3 s (a living room is about 0.5 s)")
    if not 0.1 <= distance_m <= 20.0:
        raise ValueError(f"distance {distance_m} m: give 0.1-20 m")
    if kind not in KINDS:
        raise ValueError(f"room kind {kind!r}: one of {', '.join(KINDS)}")


def _diffuse_tail(n: int, rt60_s: float, rng: np.random.Generator, sr: int) -> np.ndarray:
    """``n`` samples of noise decaying by 60 dB in ``rt60_s`` (per band: :data:`BAND_RT`), unit energy."""
    from scipy.signal import butter, sosfilt

    t = np.arange(n) / sr
    tail = np.zeros(n)
    bands = (butter(4, BAND_EDGES_HZ[0], "lowpass", fs=sr, output="sos"),
             butter(4, BAND_EDGES_HZ, "bandpass", fs=sr, output="sos"),
             butter(4, BAND_EDGES_HZ[1], "highpass", fs=sr, output="sos"))
    for sos, scale in zip(bands, BAND_RT):
        tail += sosfilt(sos, rng.standard_normal(n)) * np.exp(-6.908 * t / (rt60_s * scale))
    return tail / np.sqrt(np.sum(tail**2))


def _image_sources(room: np.ndarray, source: np.ndarray, mic: np.ndarray, max_order: int, sr: int,
                   n: int) -> np.ndarray:
    """Early reflections of a rectangular ``room`` (x, y, z in m): each image source as a tap of
    ``1 / distance`` (relative to the direct sound, which is excluded) at its delay after the direct
    sound; the walls' absorption is the caller's decay."""
    h = np.zeros(n)
    orders = np.arange(-max_order, max_order + 1)
    per_axis = []
    for axis in range(3):
        # images along one axis: position 2 * k * L +- s, with |2k| or |2k - 1| reflections
        k = orders
        pos = np.concatenate([2 * k * room[axis] + source[axis], 2 * k * room[axis] - source[axis]])
        refl = np.concatenate([np.abs(2 * k), np.abs(2 * k - 1)])
        per_axis.append((pos - mic[axis], refl))
    (dx, rx), (dy, ry), (dz, rz) = per_axis
    dist = np.sqrt(dx[:, None, None] ** 2 + dy[None, :, None] ** 2 + dz[None, None, :] ** 2).ravel()
    refl = (rx[:, None, None] + ry[None, :, None] + rz[None, None, :]).ravel()
    direct = float(np.linalg.norm(source - mic))
    delay = (dist - direct) / SPEED_OF_SOUND * sr
    keep = (refl > 0) & (delay < n - 1)
    np.add.at(h, np.round(delay[keep]).astype(int), direct / dist[keep])
    return h


def impulse_response(rt60_s: float, distance_m: float, rng: np.random.Generator, kind: str = "diffuse",
                     sr: int = SAMPLE_RATE) -> np.ndarray:
    """A room's impulse response (float32, direct sound 1.0 at sample 0, 1.2 * ``rt60_s`` long): the room's
    volume (30-300 m^3) and, for ``"image"``, its shape and where talker and microphone stand, drawn from
    ``rng``. Raises ValueError for a reverberation time outside 0.05-3 s or a distance outside 0.1-20 m."""
    _check(rt60_s, distance_m, kind)
    n = int(1.2 * rt60_s * sr)
    volume = float(rng.uniform(30.0, 300.0))
    critical = 0.057 * np.sqrt(volume / rt60_s)
    reverberant_energy = (distance_m / critical) ** 2  # direct sound's energy is 1
    h = np.zeros(n)
    h[0] = 1.0
    # the diffuse tail's first reflection; drawn for both kinds, so a seed keeps giving the same rooms
    start = int(rng.uniform(0.002, 0.006) * sr)
    if kind == "diffuse":
        tail = np.zeros(n)
        tail[start:] = _diffuse_tail(n - start, rt60_s, rng, sr)
        h += tail * np.sqrt(reverberant_energy)
        return h.astype(np.float32)
    # "image": a box of this volume (proportions drawn); the reflections' times and spreading from the
    # image sources, their decay the room's (walls that absorb evenly, as Sabine's formula assumes)
    shape = rng.uniform([1.0, 0.7, 0.35], [1.6, 1.1, 0.5])
    room = shape * (volume / np.prod(shape)) ** (1 / 3)
    mic = room * rng.uniform([0.2, 0.2, 0.3], [0.8, 0.8, 0.6])
    direction = rng.standard_normal(3)
    direction[2] *= 0.1
    source = mic + direction / np.linalg.norm(direction) * distance_m
    source = np.clip(source, 0.05 * room, 0.95 * room)  # a far talker in a small room stands at a wall
    early_n = int(0.08 * sr)
    max_order = int(np.ceil(0.08 * SPEED_OF_SOUND / room.min())) + 1
    early = _image_sources(room, source, mic, max_order, sr, early_n)
    early *= np.exp(-6.908 * np.arange(early_n) / sr / rt60_s)
    direct = float(np.linalg.norm(source - mic))
    late = np.zeros(n)
    late[early_n:] = _diffuse_tail(n - early_n, rt60_s, rng, sr)
    # continue the decay: the late tail carries the energy that an exponential decay has after early_n
    after = np.exp(-6.908 * early_n / sr / rt60_s)
    total = (direct / critical) ** 2
    early *= np.sqrt(total * (1 - after) / max(np.sum(early**2), 1e-12))
    h[:early_n] += early
    h += late * np.sqrt(total * after)
    return h.astype(np.float32)


def reverberate(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``x`` played through the room ``h`` (same length as ``x``, float32; the direct sound keeps its time
    and level)."""
    from scipy.signal import fftconvolve

    x = np.asarray(x, dtype=np.float32)
    return fftconvolve(x, np.asarray(h, dtype=np.float32))[: len(x)].astype(np.float32)


#: Audio played through a room is scaled down to stay below this peak (dBFS) rather than clip.
PEAK_DBFS = -1.0


def through_room(frames: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, float]:
    """``frames`` (``(n,)`` or ``(n, channels)``) played through the room ``h``, each channel alike, and the
    gain in dB applied so that the result stays below :data:`PEAK_DBFS` (0.0 when none was needed:
    a room adds energy, and clipping would change the sound)."""
    frames = np.asarray(frames, dtype=np.float32)
    wet = (reverberate(frames, h) if frames.ndim == 1
           else np.stack([reverberate(frames[:, c], h) for c in range(frames.shape[1])], axis=1))
    peak, limit = float(np.max(np.abs(wet), initial=0.0)), 10 ** (PEAK_DBFS / 20)
    if peak <= limit:
        return wet, 0.0
    gain_db = 20 * np.log10(limit / peak)
    return (wet * np.float32(10 ** (gain_db / 20))).astype(np.float32), float(gain_db)


@dataclass(frozen=True)
class RoomRecording:
    """What :func:`reverberate_file` wrote beside the audio."""

    response: np.ndarray  # the room's impulse response
    gain_db: float  # applied to stay below full scale (0.0: none)
    labels: Path | None  # the labels copied beside it, when the source had some


def reverberate_file(src: Path, out: Path, rt60_s: float, distance_m: float, kind: str = "diffuse",
                     seed: int = 0) -> RoomRecording:
    """The recording ``src`` played through a room drawn with ``seed``, written to ``out`` as float WAV
    (atomically: a ``.part`` file renamed), with ``src``'s labels CSV copied beside it when there is one.
    The same arguments make the same file. Raises ``ValueError`` for a room that cannot be made and
    :class:`spotter.audio.AudioError` for a source that cannot be read."""
    import os
    import shutil

    import soundfile

    from spotter.audio import load_wav

    src, out = Path(src), Path(out)
    frames, rate = load_wav(src)
    h = impulse_response(rt60_s, distance_m, np.random.default_rng(seed), kind, sr=rate)
    wet, gain_db = through_room(frames, h)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    soundfile.write(str(tmp), wet, rate, subtype="FLOAT", format="WAV")
    os.replace(tmp, out)
    labels = src.with_suffix(".csv")
    if not labels.exists():
        return RoomRecording(h, gain_db, None)
    shutil.copyfile(labels, out.with_suffix(".csv"))
    return RoomRecording(h, gain_db, out.with_suffix(".csv"))


def rt60_of(h: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """The reverberation time of an impulse response, measured as a room acoustician does: the
    Schroeder backward integral's decay from -5 to -25 dB (T20), times three, direct sound left out."""
    energy = np.asarray(h, dtype=np.float64)[1:] ** 2
    edc = np.cumsum(energy[::-1])[::-1]
    edc_db = 10 * np.log10(edc / edc[0] + 1e-30)
    i5, i25 = int(np.argmax(edc_db <= -5)), int(np.argmax(edc_db <= -25))
    t = np.arange(i5, i25) / sr
    slope = np.polyfit(t, edc_db[i5:i25], 1)[0]  # dB per second
    return float(-60.0 / slope)


def direct_to_reverberant_db(h: np.ndarray) -> float:
    """The direct sound's energy over the rest of the response, in dB."""
    h = np.asarray(h, dtype=np.float64)
    return float(10 * np.log10(h[0] ** 2 / max(np.sum(h[1:] ** 2), 1e-30)))
