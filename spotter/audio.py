"""Audio sources for :func:`spotter.pipeline.run`: a microphone or a replayed file, 16 kHz mono out.

Every source is a context manager (``__enter__`` starts it, ``__exit__``
always stops and closes it) with ``read(timeout) -> Block``: the new audio as
16 kHz mono float32 in [-1, 1], and ``start``, the 16 kHz stream index of its
first sample.

Live path (:class:`MicrophoneSource`, and :class:`WavSource` with
``realtime=True``): a producer - the PortAudio callback, or a thread pacing
the file at wall-clock speed - only writes the device's frames, as they come
(native rate, up to two channels unless asked for more), into a preallocated :class:`RingBuffer` and sets
an event.  ``read`` waits on that event, takes everything new, mixes it to
mono (mean over channels) and resamples it with a :class:`StreamResampler`.
So the callback never allocates, blocks or waits for inference; if the
consumer falls more than the buffer behind, the lost frames are skipped,
``overruns`` counts it, the resampler restarts, and ``start`` jumps by the
lost duration - the consumer sees a gap instead of a silent time shift.

:class:`WavSource` without ``realtime`` hands out the file block by block, as
fast as it is asked, through the same conversion: deterministic output.

``sounddevice`` is imported only inside functions, so everything else
(training, evaluation) works on machines without PortAudio.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np
import soundfile

from .config import SAMPLE_RATE
from .errors import SpotterError
from .resample import StreamResampler
from .ringbuffer import RingBuffer


class AudioError(SpotterError):
    """An audio device or file problem the user can fix."""


class Block(NamedTuple):
    samples: np.ndarray  # 16 kHz mono float32 in [-1, 1]
    start: int  # 16 kHz stream index of samples[0]


class AudioSource(Protocol):
    name: str
    device_rate: int
    sample_rate: int
    overflows: int
    overruns: int
    finished: bool

    def __enter__(self) -> "AudioSource": ...

    def __exit__(self, *exc) -> None: ...

    def read(self, timeout: float) -> Block: ...


# -- devices --------------------------------------------------------------------------------

def _sounddevice():
    try:
        import sounddevice
    except OSError as e:
        raise AudioError("PortAudio library not found: install it (apt-get install libportaudio2)") from e
    return sounddevice


def list_input_devices() -> list[dict]:
    """Devices with input channels: index, name, channels, default_samplerate, hostapi, default."""
    sd = _sounddevice()
    try:
        default = sd.default.device[0]
        return [
            {"index": i, "name": d["name"], "channels": d["max_input_channels"],
             "default_samplerate": int(round(d["default_samplerate"])),
             "hostapi": sd.query_hostapis(d["hostapi"])["name"], "default": i == default}
            for i, d in enumerate(sd.query_devices()) if d["max_input_channels"] > 0
        ]
    except sd.PortAudioError as e:
        raise AudioError(f"cannot list the audio devices (PortAudio: {e}); "
                         "check the sound system, or use --wav FILE to replay a file") from None


def rescan_devices() -> None:
    """Make PortAudio list the devices again (one plugged in or back since it started).

    PortAudio enumerates devices once, when it is initialised; re-initialising
    it is the only way to see a device that came back.  Call it only while no
    stream is open.
    """
    sd = _sounddevice()
    try:
        sd._terminate()
        sd._initialize()
    except sd.PortAudioError as e:
        raise AudioError(f"cannot re-initialise PortAudio to look for devices ({e})") from None


def _device_list(devices: list[dict]) -> str:
    listed = ", ".join(f"{d['index']} '{d['name']}' ({d['channels']} ch, {d['default_samplerate']} Hz)"
                       for d in devices)
    return f"input devices: {listed} - pass --device INDEX or part of a NAME"


def find_input_device(spec: int | str | None) -> dict:
    """The input device ``spec`` names: None the default, an index, or part of a name (exact name first)."""
    devices = list_input_devices()
    if not devices:
        raise AudioError("no audio input device found (PortAudio lists none: no microphone, or no sound server "
                         "running); connect one, or use --wav FILE to replay a file instead")
    if spec is None:
        return next((d for d in devices if d["default"]), devices[0])
    if isinstance(spec, int) or spec.strip().isdigit():
        found = [d for d in devices if d["index"] == int(spec)]
        if not found:
            raise AudioError(f"no input device with index {int(spec)}; {_device_list(devices)}")
        return found[0]
    wanted = spec.strip().lower()
    found = ([d for d in devices if d["name"].lower() == wanted]
             or [d for d in devices if wanted in d["name"].lower()])
    if not found:
        raise AudioError(f"no input device matches {spec!r}; {_device_list(devices)}")
    return found[0]


# -- files ----------------------------------------------------------------------------------

#: Sample rates a file or device may have: anything from telephone audio to studio rates.
MIN_RATE, MAX_RATE = 4000, 384000
#: Largest numerator/denominator of the rate ratio to 16 kHz: the resampling filter has 20x this many taps.
MAX_RATIO_TERM = 50000


def check_sample_rate(rate: int, what: str) -> int:
    """``rate`` if spotter can resample it to 16 kHz, else :class:`AudioError` saying what it expects."""
    import math

    rate = int(rate)
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(f"{what} has a sample rate of {rate} Hz; expected {MIN_RATE} to {MAX_RATE} Hz "
                         "(e.g. 16000, 44100 or 48000)")
    g = math.gcd(rate, SAMPLE_RATE)
    if max(rate, SAMPLE_RATE) // g > MAX_RATIO_TERM:
        raise AudioError(f"{what} has an unusual sample rate of {rate} Hz (its ratio to 16000 Hz needs an "
                         "impractically long resampling filter); expected a common rate such as 16000, 44100 "
                         "or 48000 Hz: convert it")
    return rate


def load_wav(path) -> tuple[np.ndarray, int]:
    """Float32 frames ``(frames, channels)`` and the sample rate of an audio file.

    Anything soundfile reads (WAV 8/16/24/32-bit PCM, float, double, A/mu-law,
    FLAC, OGG, ...), any channel count; a truncated file gives the samples it
    holds.  Everything else is an :class:`AudioError` naming the file, what was
    found and what is expected - never another exception.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(f"no such file: {path}")
    if path.is_dir():
        raise AudioError(f"{path} is a folder; expected an audio file (WAV/FLAC/OGG)")
    try:
        frames, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except soundfile.SoundFileError as e:
        reason = " ".join((getattr(e, "error_string", None) or str(e)).split())
        raise AudioError(f"{path} is not a readable audio file (soundfile: {reason}); "
                         "expected a WAV/FLAC/OGG file") from None
    except (OSError, RuntimeError, ValueError, TypeError, MemoryError) as e:  # libsndfile's odd corners
        reason = " ".join(str(e).split()) or type(e).__name__
        raise AudioError(f"{path} could not be decoded ({type(e).__name__}: {reason[:200]}); "
                         "expected a WAV/FLAC/OGG file") from None
    if frames.shape[0] == 0 or frames.shape[1] == 0:
        raise AudioError(f"{path} contains no audio samples (an empty {frames.shape[1]}-channel file); "
                         "expected a recording")
    check_sample_rate(rate, str(path))
    if not np.isfinite(frames).all():
        raise AudioError(f"{path} holds NaN or infinite samples (a damaged float file); "
                         "expected finite samples in [-1, 1]")
    return frames, int(rate)


# -- sources --------------------------------------------------------------------------------

class _Converter:
    """Device frames -> 16 kHz mono float32 in [-1, 1], with the 16 kHz index of each output."""

    def __init__(self, device_rate: int) -> None:
        self.resampler = StreamResampler(device_rate, SAMPLE_RATE)
        self.device_rate = device_rate
        self.next_start = 0  # 16 kHz index of the next output sample

    def convert(self, frames: np.ndarray) -> Block:
        mono = frames[:, 0] if frames.shape[1] == 1 else frames.mean(axis=1, dtype=np.float32)
        samples = self.resampler.process(mono)
        np.minimum(np.maximum(samples, -1.0, out=samples), 1.0, out=samples)  # np.clip, without its wrapper's cost
        block = Block(samples, self.next_start)
        self.next_start += samples.size
        return block

    def skip(self, lost_frames: int) -> None:
        """``lost_frames`` device frames were lost: jump the clock and restart the filter."""
        self.next_start += round(lost_frames * SAMPLE_RATE / self.device_rate)
        self.resampler.reset()


class _RingSource:
    """The consumer side shared by the live sources; a subclass's producer fills ``self.ring``."""

    sample_rate = SAMPLE_RATE

    def __init__(self, name: str, device_rate: int, channels: int, block_ms: float, buffer_seconds: float) -> None:
        self.name = name
        self.device_rate = int(device_rate)
        self.channels = int(channels)
        self.block_frames = max(1, round(block_ms * self.device_rate / 1000))
        self.buffer_frames = max(self.block_frames, int(buffer_seconds * self.device_rate))
        self.overflows = 0
        self.overruns = 0
        self.finished = False
        self.ring: RingBuffer | None = None

    def _start_consumer(self) -> None:
        self.ring = RingBuffer(self.buffer_frames, self.channels)
        self._event = threading.Event()
        self._converter = _Converter(self.device_rate)
        self._frames_taken = 0  # device frames consumed or lost

    def _producer_done(self) -> bool:
        return False

    def _read_ring(self, timeout: float) -> Block:
        if self.ring is None:
            raise RuntimeError(f"{type(self).__name__}.read() outside its `with` block")
        self._event.clear()
        frames, first = self.ring.read_new()
        if len(frames) == 0 and not self._producer_done():
            self._event.wait(timeout)
            frames, first = self.ring.read_new()
        if first > self._frames_taken:
            self.overruns += 1
            self._converter.skip(first - self._frames_taken)
        self._frames_taken = first + len(frames)
        return self._converter.convert(frames)


def _close_stream(stream) -> None:
    try:
        stream.abort()
    except Exception:  # noqa: BLE001 - PortAudio errors are ignored: the device may be gone
        pass
    finally:
        try:
            stream.close()
        except Exception:  # noqa: BLE001
            pass


class MicrophoneSource(_RingSource):
    """Live capture from a PortAudio input device (see :func:`find_input_device` for ``device``)."""

    def __init__(self, device: int | str | None = None, block_ms: float = 20, buffer_seconds: float = 8.0,
                 channels: int | None = None, samplerate: int | None = None, stall_timeout: float = 5.0) -> None:
        """``stall_timeout``: seconds without any audio after which the device counts as lost."""
        info = find_input_device(device)
        # Microphones have 1 or 2 channels; devices offering many (ALSA 'pulse'/'default' offer 32,
        # some silent) are mixers, whose first two carry the signal.
        rate = check_sample_rate(samplerate or info["default_samplerate"], f"audio device '{info['name']}'")
        super().__init__(info["name"], rate, channels or min(info["channels"], 2), block_ms, buffer_seconds)
        self.device_index = info["index"]
        self._stream = None
        self.stall_timeout = stall_timeout
        self.callback_errors = 0  # exceptions caught in the audio callback (reported by read())
        self.callback_error: str | None = None
        self.close_timeout = 2.0  # seconds __exit__ waits for PortAudio to close the stream
        self.closing: threading.Thread | None = None  # a close still running in the background

    def _callback(self, indata, frames, time_info, status) -> None:
        # Never raises: an exception here would abort the stream with a traceback from PortAudio's
        # thread.  A failure is recorded and the consumer's read() reports it as an AudioError.
        try:
            if status.input_overflow:
                self.overflows += 1
            self.ring.write(indata)
        except Exception as e:  # noqa: BLE001 - anything: the callback must not raise
            self.callback_errors += 1
            if self.callback_error is None:
                self.callback_error = f"{type(e).__name__}: {e}"
        self._event.set()

    def __enter__(self) -> "MicrophoneSource":
        sd = _sounddevice()
        self._start_consumer()
        self._last_audio = time.monotonic()
        try:
            self._stream = sd.InputStream(device=self.device_index, channels=self.channels,
                                          samplerate=self.device_rate, dtype="float32",
                                          blocksize=self.block_frames, callback=self._callback)
            self._stream.start()
        except sd.PortAudioError as e:
            self.__exit__()
            raise AudioError(f"cannot open audio device '{self.name}' ({self.channels} ch, {self.device_rate} Hz): "
                             f"{e}; pick another with --device") from e
        return self

    def __exit__(self, *exc) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        # A frozen sound server can block PortAudio's abort/close until it resumes: wait a little,
        # then let it finish in the background (``closing``) so the error or a reconnect is not held up.
        closer = threading.Thread(target=_close_stream, args=(stream,), name="spotter-close-stream", daemon=True)
        closer.start()
        closer.join(self.close_timeout)
        self.closing = closer if closer.is_alive() else None

    def read(self, timeout: float) -> Block:
        if self._stream is None:
            raise RuntimeError("MicrophoneSource.read() outside its `with` block")
        block = self._read_ring(timeout)
        if self.callback_error is not None:
            raise AudioError(f"audio device '{self.name}': the capture callback failed ({self.callback_error}); "
                             "restart, or pick another device with --device")
        now = time.monotonic()
        if block.samples.size:
            self._last_audio = now
            return block
        if not self._stream.active:
            raise AudioError(f"audio device '{self.name}' stopped delivering audio (unplugged?); "
                             "check it and restart, pick another with --device, or add --reconnect")
        if now - self._last_audio > self.stall_timeout:
            raise AudioError(f"audio device '{self.name}' delivered no audio for {self.stall_timeout:g} s "
                             "(stalled or unplugged?); check it and restart, or add --reconnect")
        return block


class WavSource(_RingSource):
    """Replay of an audio file: as fast as it is read, or (``realtime``) paced like a live stream."""

    def __init__(self, path, realtime: bool = False, block_ms: float = 20, buffer_seconds: float = 8.0) -> None:
        self.frames, rate = load_wav(path)
        super().__init__(Path(path).name, rate, self.frames.shape[1], block_ms, buffer_seconds)
        self.realtime = realtime
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "WavSource":
        self.finished = False
        self._position = 0  # next device frame to hand out (or to write, when realtime)
        if self.realtime:
            self._start_consumer()
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._produce, name="spotter-wav-replay", daemon=True)
            self._thread.start()
        else:
            self._converter = _Converter(self.device_rate)
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def _produce(self) -> None:
        """Write each block into the ring when a live device would have delivered it."""
        t0 = time.monotonic()
        total = len(self.frames)
        while self._position < total:
            end = min(self._position + self.block_frames, total)
            if self._stop.wait(max(0.0, t0 + end / self.device_rate - time.monotonic())):
                return
            self.ring.write(self.frames[self._position:end])
            self._position = end
            self._event.set()
        self._event.set()

    def _producer_done(self) -> bool:
        return self._position >= len(self.frames)

    def read(self, timeout: float) -> Block:
        if self.realtime:
            block = self._read_ring(timeout)
            self.finished = self._producer_done() and self.ring.available == 0
            return block
        end = min(self._position + self.block_frames, len(self.frames))
        block = self._converter.convert(self.frames[self._position:end])
        self._position = end
        self.finished = end >= len(self.frames)
        return block
