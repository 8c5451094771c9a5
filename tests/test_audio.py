"""Audio sources: WAV replay (exact conversion, contiguous clock, real-time pacing, overruns), file errors,
device lookup, and live capture through a virtual PulseAudio microphone."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import correlate, upfirdn

from conftest import chirp, noise, tone
from spotter.audio import AudioError, MicrophoneSource, WavSource, find_input_device, list_input_devices, load_wav
from spotter.resample import StreamResampler
from virtual_mic import virtual_mic  # noqa: F401  (fixture)


def write_wav(path, rate: int, channels: int = 1, subtype: str = "PCM_16", seconds: float = 1.0):
    left = chirp(80, rate / 2.5, seconds, amp=0.4, sr=rate) + tone(440, seconds, amp=0.2, sr=rate)
    right = tone(1000, seconds, amp=0.3, sr=rate) + noise(seconds, amp=0.05, seed=2, sr=rate)
    frames = np.stack([left, right][:channels], axis=1) if channels > 1 else left
    sf.write(path, frames, rate, subtype=subtype)
    return path


def expected_16k(path) -> np.ndarray:
    """The documented conversion, done in one go: load, mean over channels, upfirdn, clip."""
    frames, rate = load_wav(path)
    mono = frames.mean(axis=1, dtype=np.float32)
    r = StreamResampler(rate)
    if r.identity:
        return np.clip(mono, -1, 1)
    n = -(-mono.size * r.up // r.down)
    return np.clip(upfirdn(r.h, mono, r.up, r.down)[:n], -1, 1).astype(np.float32)


def read_all(source, timeout: float = 1.0) -> list:
    blocks = []
    with source:
        while not source.finished:
            blocks.append(source.read(timeout))
        blocks.append(source.read(timeout))  # after the end: empty, at once
    assert blocks[-1].samples.size == 0
    return blocks


def assert_contiguous(blocks) -> np.ndarray:
    position = 0
    for block in blocks:
        assert block.start == position and block.samples.dtype == np.float32
        position += block.samples.size
    return np.concatenate([b.samples for b in blocks])


# -- files ----------------------------------------------------------------------------------

@pytest.mark.parametrize("rate, channels, subtype", [
    (8000, 1, "PCM_16"), (16000, 1, "PCM_16"), (22050, 2, "PCM_16"),
    (44100, 2, "PCM_24"), (48000, 2, "FLOAT"), (48000, 1, "PCM_24"),
])
def test_wav_source_yields_the_converted_file(tmp_path, rate, channels, subtype):
    path = write_wav(tmp_path / "in.wav", rate, channels, subtype)
    source = WavSource(path)
    assert (source.name, source.device_rate, source.sample_rate) == ("in.wav", rate, 16000)
    audio = assert_contiguous(read_all(source))
    expected = expected_16k(path)
    assert audio.size == expected.size and abs(audio.size - 16000) <= 1
    np.testing.assert_allclose(audio, expected, rtol=0, atol=3e-7)
    assert np.abs(audio).max() <= 1.0 and source.overflows == source.overruns == 0


def test_block_size_does_not_change_the_output(tmp_path):
    path = write_wav(tmp_path / "in.wav", 44100, 2)
    outputs = [assert_contiguous(read_all(WavSource(path, block_ms=ms))) for ms in (20, 7, 100, 1000)]
    for other in outputs[1:]:
        np.testing.assert_allclose(other, outputs[0], rtol=0, atol=3e-7)


def test_realtime_replay_takes_wall_time_and_yields_the_same_samples(tmp_path):
    path = write_wav(tmp_path / "in.wav", 44100, 2, seconds=1.0)
    started = time.monotonic()
    source = WavSource(path, realtime=True)
    blocks = read_all(source, timeout=0.25)
    elapsed = time.monotonic() - started
    # never faster than the recording (less one block); slower only by start-up and scheduling, with a wide margin
    assert 0.95 < elapsed < 1.0 + 2.0, elapsed
    audio = assert_contiguous(blocks)
    np.testing.assert_allclose(audio, assert_contiguous(read_all(WavSource(path))), rtol=0, atol=3e-7)
    assert source.overruns == 0


def test_realtime_overrun_shows_as_a_gap_in_start(tmp_path):
    sr = 48000
    sf.write(tmp_path / "tone.wav", tone(200, seconds=1.5, amp=0.5, sr=sr), sr)
    source = WavSource(tmp_path / "tone.wav", realtime=True, buffer_seconds=0.1)
    expected = expected_16k(tmp_path / "tone.wav")
    blocks = []
    with source:
        blocks.append(source.read(1.0))
        # A stalled consumer: reads nothing until the producer has written 0.5 s more into the 0.1 s buffer.
        written, deadline = source.ring.written, time.monotonic() + 30
        while source.ring.written - written < 0.5 * sr:
            assert time.monotonic() < deadline, "the producer stopped"
            time.sleep(0.01)
        produced = (source.ring.written - written) / sr
        while not source.finished:
            blocks.append(source.read(1.0))
    assert source.overruns >= 1
    gaps = [i for i in range(1, len(blocks)) if blocks[i].start != blocks[i - 1].start + blocks[i - 1].samples.size]
    assert len(gaps) == 1
    before, after = blocks[gaps[0] - 1], blocks[gaps[0]]
    lost = after.start - (before.start + before.samples.size)
    # Lost: what was written during the stall less the 0.1 s the buffer holds (0.1 s of slack for blocks).
    assert 16000 * (0.5 - 0.1 - 0.1) < lost <= 16000 * (produced + 0.1), (lost, produced)
    # After the gap the clock is right: the audio matches the file at the stated position.
    end = blocks[-1].start + blocks[-1].samples.size
    assert abs(end - expected.size) <= 2
    tail = np.concatenate([b.samples for b in blocks[gaps[0]:]])[100:]  # skip the filter restart
    np.testing.assert_allclose(tail, expected[after.start + 100: after.start + 100 + tail.size], atol=0.02)


def test_load_wav_errors(tmp_path):
    with pytest.raises(AudioError, match="no such file: .*missing.wav"):
        load_wav(tmp_path / "missing.wav")
    (tmp_path / "notes.wav").write_text("these are not samples\n" * 10)
    with pytest.raises(AudioError, match=r"notes.wav is not a readable audio file \(soundfile: .*\); expected"):
        load_wav(tmp_path / "notes.wav")
    sf.write(tmp_path / "empty.wav", np.zeros((0, 1), np.float32), 16000)
    with pytest.raises(AudioError, match="empty.wav contains no audio samples"):
        load_wav(tmp_path / "empty.wav")
    with pytest.raises(AudioError, match="no such file"):
        WavSource(tmp_path / "missing.wav")


def test_truncated_wav_loads_what_is_there(tmp_path):
    path = write_wav(tmp_path / "full.wav", 16000, 2)
    data = path.read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    frames, rate = load_wav(tmp_path / "cut.wav")
    full, _ = load_wav(path)
    assert rate == 16000 and 7000 < len(frames) < 8001
    assert np.array_equal(frames, full[: len(frames)])


def test_missing_portaudio_is_a_one_line_error():
    """Importing spotter.audio needs no PortAudio; using a device without it says what to install."""
    code = ("import ctypes.util; ctypes.util.find_library = lambda name: None\n"
            "from spotter.audio import AudioError, list_input_devices\n"
            "try:\n    list_input_devices()\nexcept AudioError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out == "PortAudio library not found: install it (apt-get install libportaudio2)\n"


# -- devices and live capture ---------------------------------------------------------------

def test_find_input_device(virtual_mic):
    devices = list_input_devices()
    assert devices and set(devices[0]) == {"index", "name", "channels", "default_samplerate", "hostapi", "default"}
    pulse = find_input_device(virtual_mic.device)
    assert pulse["name"] == "pulse" and pulse["channels"] > 0
    assert find_input_device(str(pulse["index"])) == pulse == find_input_device("PULSE")
    assert find_input_device(None)["default"]
    for spec, message in [(999, "no input device with index 999; input devices: "),
                          ("no-such-device", "no input device matches 'no-such-device'; input devices: ")]:
        with pytest.raises(AudioError) as error:
            find_input_device(spec)
        text = str(error.value)
        assert text.startswith(message) and "\n" not in text
        assert f"{pulse['index']} 'pulse' ({pulse['channels']} ch, " in text and text.endswith("part of a NAME")


def captured_correlation(captured: np.ndarray, reference: np.ndarray) -> tuple[float, int]:
    """Best-aligned correlation coefficient of ``reference`` inside ``captured``, and the lag."""
    scores = correlate(captured, reference, mode="valid", method="fft")
    lag = int(np.argmax(scores))
    piece = captured[lag: lag + reference.size]
    return float(np.corrcoef(piece, reference)[0, 1]), lag


def test_microphone_captures_what_is_played(virtual_mic, tmp_path):
    signal = np.concatenate([chirp(100, 6000, 1.0, amp=0.4), tone(440, 0.5, amp=0.3), tone(2500, 0.5, amp=0.3)])
    sf.write(tmp_path / "played.wav", signal, 16000, subtype="FLOAT")
    blocks = []
    with MicrophoneSource(virtual_mic.device) as mic:
        assert mic.name == "pulse"
        deadline = time.monotonic() + 5
        while not blocks or blocks[-1].samples.size == 0:  # play only once capture is running
            blocks.append(mic.read(0.5))
            assert time.monotonic() < deadline, "no audio from the virtual microphone"
        player = virtual_mic.play(tmp_path / "played.wav")
        until = time.monotonic() + 5
        while time.monotonic() < until:
            blocks.append(mic.read(0.25))
            if player.poll() is not None:
                until = min(until, time.monotonic() + 0.5)  # the tail, then stop
        assert player.wait() == 0
        assert mic.overflows == 0 and mic.overruns == 0
    captured = assert_contiguous(blocks)
    corr, lag = captured_correlation(captured, signal)
    print(f"capture: {mic.channels} ch at {mic.device_rate} Hz, correlation {corr:.5f}, "
          f"level ratio {np.std(captured[lag:lag + signal.size]) / np.std(signal):.3f}")
    assert corr > 0.99


def test_lost_device_raises_audio_error(virtual_mic):
    with MicrophoneSource(virtual_mic.device) as mic:
        deadline = time.monotonic() + 5
        while mic.read(0.5).samples.size == 0:
            assert time.monotonic() < deadline, "no audio from the virtual microphone"
        virtual_mic.process.kill()
        virtual_mic.process.wait()
        killed = time.monotonic()
        with pytest.raises(AudioError, match="audio device 'pulse' stopped delivering audio"):
            while time.monotonic() - killed < 10:
                mic.read(0.25)
    print(f"device loss reported {time.monotonic() - killed:.2f} s after the server died")
    assert time.monotonic() - killed < 3
