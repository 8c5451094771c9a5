"""Reliability and bad input, table by table: devices, files, checkpoints, training data, signals.

Every row runs the real command (``spotter.cli.main`` in this process, or
``python -m spotter`` in a subprocess where a signal, a missing sound server
or a dying device is involved) on real data: the shipped checkpoint,
examples/keywords.wav and files written here with soundfile, and a real
PortAudio stream on the throw-away PulseAudio server of tests/virtual_mic.py.
A row asserts the exit status and the message: bad input is ONE line
``spotter: error: ...`` saying what was found and what to do, never a
traceback; a row that "works" asserts the keywords spotted.

The streaming soak and the slow-consumer test are in tests/test_soak.py.
"""

from __future__ import annotations

import fcntl
import json
import os
import pickle
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from scipy.signal import resample_poly

from spotter.audio import AudioError, MicrophoneSource, WavSource
from spotter.checkpoint import make_checkpoint, read_checkpoint
from spotter.cli import main
from spotter.model import build_model
from spotter.reconnect import Backoff, ReconnectingSource, reconnecting_microphone

from child import LineReader, wait_until
from virtual_mic import virtual_mic  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "keywords.wav"
SHIPPED = ROOT / "checkpoints" / "bcresnet-3-synth.pt"
FIRST_6S = ["yes", "stop"]  # the keywords of the first 6 s of examples/keywords.wav (see keywords.csv)


# -- helpers ----------------------------------------------------------------------------------

def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def spotter_lines(text: str) -> list[str]:
    """The lines spotter itself wrote (PortAudio's C library may add its own to stderr)."""
    return [line for line in text.splitlines() if line.startswith("spotter:")]


def assert_one_line_error(err: str, *phrases: str, only: bool = False) -> str:
    """stderr holds exactly one error line, with every phrase in it, and no traceback (``only``: and
    nothing else at all)."""
    assert "Traceback" not in err, err
    if only:
        assert err.count("\n") == 1, err
    errors = [line for line in spotter_lines(err) if line.startswith("spotter: error:")]
    assert len(errors) == 1, err
    for phrase in phrases:
        assert phrase in errors[0], (phrase, errors[0])
    return errors[0]


def cli(capsys, *argv) -> tuple[int, str, str]:
    """Run ``spotter ARGV`` in this process.  A warning from a library would be one more stderr line for a
    user; here pytest would swallow it, so they are collected and, for a failing command, added to stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    extra = "".join(f"{w.filename}:{w.lineno}: {w.category.__name__}: {w.message}\n" for w in caught)
    return code, captured.out, captured.err + (extra if code else "")


def spawn(*argv, env=None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "spotter", *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env or os.environ.copy(), **kwargs)


def example_clip(seconds: float = 6.0) -> tuple[np.ndarray, int]:
    audio, rate = sf.read(EXAMPLE, dtype="float32")
    return audio[: int(seconds * rate)], rate


# == files: `spotter listen --wav FILE` =======================================================

def _converted(rate: int, channels: int) -> np.ndarray:
    """The first 6 s of the example at ``rate`` with ``channels`` channels (each a little different)."""
    audio, sr = example_clip()
    if rate != sr:
        g = np.gcd(rate, sr)
        audio = resample_poly(audio, rate // g, sr // g).astype(np.float32)
    return np.stack([audio * (1.0 - 0.1 * c) for c in range(channels)], axis=1)


def works(rate=16000, channels=1, subtype="PCM_16", fmt="WAV"):
    def make(path: Path) -> Path:
        path = path.with_suffix("." + fmt.lower())
        sf.write(path, _converted(rate, channels), rate, subtype=subtype, format=fmt)
        return path
    return make


def text_file(path):
    path.write_text("these are not samples\n" * 20)
    return path


def random_bytes(path):
    path.write_bytes(np.random.default_rng(1).bytes(20000))
    return path


def zero_bytes(path):
    path.write_bytes(b"")
    return path


def header_only(path):
    sf.write(path, _converted(16000, 1), 16000, subtype="PCM_16")
    path.write_bytes(path.read_bytes()[:44])  # the RIFF header, not one sample
    return path


def cut_in_header(path):
    sf.write(path, _converted(16000, 1), 16000, subtype="PCM_16")
    path.write_bytes(path.read_bytes()[:30])
    return path


def empty_wav(path):
    sf.write(path, np.zeros((0, 1), np.float32), 16000)
    return path


def truncated_wav(path):
    """A recording cut off mid-data (a crashed recorder): what is there is replayed."""
    sf.write(path, _converted(16000, 1), 16000, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: 44 + int(5.4 * 16000) * 2])  # 5.4 s of the 6 s: still holds "yes" and "stop"
    return path


def nan_float(path):
    audio = _converted(16000, 1)
    audio[1000:1010] = np.nan
    sf.write(path, audio, 16000, subtype="FLOAT")
    return path


def too_loud_float(path):
    sf.write(path, _converted(16000, 1) * 4.0, 16000, subtype="FLOAT")  # 12 dB past full scale: clipped
    return path


def rate(rate_hz: int):
    def make(path):
        sf.write(path, np.zeros((rate_hz, 1), np.float32) + 0.01, rate_hz, subtype="PCM_16")
        return path
    return make


def folder(path):
    path.mkdir()
    return path


FILE_CASES = [
    # (id, make the file, exit code, phrases of the error line / keywords spotted)
    ("missing", lambda p: p, 2, ["no such file:", "missing"]),
    ("folder", folder, 2, ["is a folder; expected an audio file"]),
    ("text", text_file, 2, ["is not a readable audio file (soundfile: ", "expected a WAV/FLAC/OGG file"]),
    ("random-bytes", random_bytes, 2, ["is not a readable audio file", "expected a WAV/FLAC/OGG file"]),
    ("zero-bytes", zero_bytes, 2, ["is not a readable audio file", "expected a WAV/FLAC/OGG file"]),
    ("cut-in-header", cut_in_header, 2, ["is not a readable audio file", "expected a WAV/FLAC/OGG file"]),
    ("header-only", header_only, 2, ["contains no audio samples", "expected a recording"]),
    ("empty", empty_wav, 2, ["contains no audio samples", "expected a recording"]),
    ("nan-float", nan_float, 2, ["holds NaN or infinite samples", "expected finite samples"]),
    ("rate-1000", rate(1000), 2, ["sample rate of 1000 Hz; expected 4000 to 384000 Hz"]),
    ("rate-500000", rate(500000), 2, ["sample rate of 500000 Hz; expected 4000 to 384000 Hz"]),
    ("rate-50021", rate(50021), 2, ["unusual sample rate of 50021 Hz", "expected a common rate"]),
    ("truncated", truncated_wav, 0, FIRST_6S),
    ("too-loud-float", too_loud_float, 0, FIRST_6S),
    ("pcm-u8", works(subtype="PCM_U8"), 0, FIRST_6S),
    ("pcm-16", works(subtype="PCM_16"), 0, FIRST_6S),
    ("pcm-24", works(subtype="PCM_24"), 0, FIRST_6S),
    ("pcm-32", works(subtype="PCM_32"), 0, FIRST_6S),
    ("float", works(subtype="FLOAT"), 0, FIRST_6S),
    ("double", works(subtype="DOUBLE"), 0, FIRST_6S),
    ("mu-law", works(subtype="ULAW"), 0, FIRST_6S),
    ("8k", works(rate=8000), 0, None),  # converted, but a 4 kHz band loses what the model hears in "yes"/"stop"
    ("22.05k-stereo", works(rate=22050, channels=2), 0, FIRST_6S),
    ("44.1k-stereo-24bit", works(rate=44100, channels=2, subtype="PCM_24"), 0, FIRST_6S),
    ("48k-stereo-float", works(rate=48000, channels=2, subtype="FLOAT"), 0, FIRST_6S),
    ("96k-mono", works(rate=96000), 0, FIRST_6S),
    ("48k-6ch", works(rate=48000, channels=6), 0, FIRST_6S),
    ("flac", works(rate=44100, channels=2, fmt="FLAC"), 0, FIRST_6S),
]


@pytest.mark.parametrize("make, code, expected", [c[1:] for c in FILE_CASES], ids=[c[0] for c in FILE_CASES])
def test_wav_files(capsys, tmp_path, make, code, expected):
    path = make(tmp_path / "missing.wav")
    got, out, err = cli(capsys, "listen", "--wav", path, "--json")
    assert got == code, err
    if code:
        assert_one_line_error(err, str(path.name), *expected, only=True)
        assert out == ""
    else:
        lines = json_lines(out)
        if expected is not None:
            assert [d["keyword"] for d in lines if d["event"] == "detection"] == expected, lines
        summary = lines[-1]
        assert summary["event"] == "summary" and "Traceback" not in err
        assert summary["windows"] == int(summary["seconds"] * 10) and 5.3 < summary["seconds"] <= 6.0


# -- property-based: random bytes and random WAV headers never crash or hang the loader ------

def _riff(fmt: int, channels: int, rate_hz: int, bits: int, align: int, byte_rate: int, data_size: int,
          payload: bytes, extra: bytes = b"") -> bytes:
    fmt_chunk = struct.pack("<HHIIHH", fmt, channels, rate_hz, byte_rate, align, bits) + extra
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk
            + b"data" + struct.pack("<I", data_size) + payload)
    return b"RIFF" + struct.pack("<I", len(body)) + body


@st.composite
def plausible_wavs(draw) -> bytes:
    """A header that is mostly consistent (so libsndfile gets past it), with random samples."""
    fmt, bits = draw(st.sampled_from([(1, 8), (1, 16), (1, 24), (1, 32), (3, 32), (3, 64), (6, 8), (7, 8)]))
    channels = draw(st.integers(1, 8))
    rate_hz = draw(st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000, 96000, 1000, 3999, 384001, 50021])
                   | st.integers(1, 400_000))
    align = channels * bits // 8
    frames = draw(st.integers(1, 4000 // align))
    payload = draw(st.binary(min_size=frames * align, max_size=frames * align))
    if draw(st.booleans()):
        payload = payload[: draw(st.integers(0, len(payload)))]  # truncated
    data_size = draw(st.just(len(payload)) | st.integers(0, 2**32 - 1))
    return _riff(fmt, channels, rate_hz, bits, align, rate_hz * align, data_size, payload)


@st.composite
def random_headers(draw) -> bytes:
    """Every field of the header random."""
    u16, u32 = st.integers(0, 0xFFFF), st.integers(0, 2**32 - 1)
    return _riff(draw(st.sampled_from([1, 3, 6, 7, 0xFFFE]) | u16), draw(st.integers(0, 9) | u16),
                 draw(u32), draw(st.sampled_from([8, 16, 24, 32, 64]) | u16), draw(u16), draw(u32),
                 draw(st.integers(0, 5000) | u32), draw(st.binary(max_size=4000)), draw(st.binary(max_size=24)))


def _load_or_refuse(path: Path) -> str:
    """Load ``path`` as `listen --wav` does and replay it: a clean AudioError, or valid 16 kHz audio."""
    try:
        source = WavSource(path)
    except AudioError as err:
        message = str(err)
        assert "\n" not in message and path.name in message and "expected" in message, message
        return "refused: " + message.split(path.name, 1)[1].split(";")[0][:30]
    with source:
        for _ in range(200):
            block = source.read(0.1)
            assert block.samples.dtype == np.float32 and np.isfinite(block.samples).all()
            assert np.abs(block.samples).max(initial=0.0) <= 1.0
            if source.finished:
                break
        assert source.finished
    return "loaded"


FUZZ = settings(max_examples=300, deadline=2000, derandomize=True, suppress_health_check=list(HealthCheck))


@FUZZ
@given(data=st.binary(max_size=4000) | random_headers() | plausible_wavs())
def test_random_bytes_and_headers_never_crash_or_hang_the_loader(tmp_path_factory, data):
    path = tmp_path_factory.getbasetemp() / "fuzz.wav"
    path.write_bytes(data)
    event(_load_or_refuse(path))


# == checkpoints: `spotter info CKPT` and `spotter listen --model CKPT` ===================

class Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED_BY_CHECKPOINT",))


def _shipped() -> dict:
    return read_checkpoint(SHIPPED)


def _save(obj):
    def make(path):
        torch.save(obj() if callable(obj) else obj, path)
        return path
    return make


def _edited(**changes):
    def obj():
        ckpt = _shipped()
        for key, value in changes.items():
            if key == "frontend_sample_rate":
                ckpt["frontend"] = {**ckpt["frontend"], "sample_rate": value}
            else:
                ckpt[key] = value
        return ckpt
    return _save(obj)


def truncated_ckpt(path):
    data = SHIPPED.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def evil_pickle(path):
    with open(path, "wb") as fh:
        pickle.dump({"format": "spotter-checkpoint", "x": Evil()}, fh)
    return path


def wrong_labels():
    ckpt = _shipped()
    ckpt["labels"] = ckpt["labels"][:5]
    return ckpt


def linear_weights_as_bcresnet():
    ckpt = make_checkpoint(build_model("linear"))
    ckpt["model"] = "bcresnet-3"
    return ckpt


CHECKPOINT_CASES = [
    ("missing", lambda p: p, ["not found: no such file and no model of that name"]),
    ("zero-bytes", lambda p: (p.write_bytes(b""), p)[1], ["truncated or not a torch checkpoint"]),
    ("truncated", truncated_ckpt, ["truncated or not a torch checkpoint"]),
    ("text", lambda p: (p.write_text("not a checkpoint\n"), p)[1], ["not a torch checkpoint"]),
    ("a-wav-file", lambda p: (p.write_bytes(EXAMPLE.read_bytes()), p)[1], ["truncated or not a torch checkpoint"]),
    ("plain-dict", _save({"weights": torch.zeros(3)}), ["not a spotter checkpoint"]),
    ("a-list", _save([torch.zeros(3)]), ["not a spotter checkpoint"]),
    ("pickle-with-code", evil_pickle, ["refused, not a torch checkpoint", "a raw pickle"]),
    ("torch-save-with-code", _save({"format": "spotter-checkpoint", "x": Evil()}),
     ["refused, it holds Python objects", "(posix.system)", "could run code"]),
    ("torch-save-of-a-class", _save(lambda: {"format": "spotter-checkpoint", "x": Backoff()}),
     ["refused, it holds Python objects", "(spotter.reconnect.Backoff)"]),
    ("wrong-architecture", _edited(model="bcresnet-8"), ["weights do not fit architecture 'bcresnet-8'"]),
    ("other-weights", _save(linear_weights_as_bcresnet), ["weights do not fit architecture 'bcresnet-3'"]),
    ("unknown-architecture", _edited(model="resnet-152"), ["unknown architecture 'resnet-152'"]),
    ("newer-format", _edited(version=99), ["format version 99 is newer", "upgrade spotter"]),
    ("no-weights", _edited(state_dict=None), ["state_dict is not a dict of tensors"]),
    ("wrong-labels", _save(wrong_labels), ["weights do not fit"]),
    ("bad-front-end", _edited(frontend={"n_mels": -40}), ["front-end settings cannot build a model"]),
    ("8-khz-model", _edited(frontend_sample_rate=8000), ["expects 8000 Hz audio", "retrain it at 16000 Hz"]),
]


@pytest.mark.parametrize("make, phrases", [c[1:] for c in CHECKPOINT_CASES], ids=[c[0] for c in CHECKPOINT_CASES])
def test_bad_checkpoints_are_refused(capsys, tmp_path, monkeypatch, make, phrases):
    monkeypatch.chdir(tmp_path)  # where Evil would leave its mark
    path = make(tmp_path / "model.pt")
    for argv in (["info", path], ["listen", "--wav", EXAMPLE, "--json", "--model", path]):
        code, out, err = cli(capsys, *argv)
        assert code == 2 and out == "", (argv, err)
        assert_one_line_error(err, "model.pt", *phrases, only=True)
    assert not (tmp_path / "PWNED_BY_CHECKPOINT").exists(), "a checkpoint executed code"


# == devices ===================================================================================

def test_no_input_device_at_all_points_to_wav(tmp_path):
    """No sound server and no sound card: PortAudio lists no input device (a fresh process, so it looks again)."""
    env = {**os.environ, "PULSE_SERVER": f"unix:{tmp_path}/no-server"}
    listed = subprocess.run([sys.executable, "-m", "spotter", "devices", "--json"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr  # listing devices never crashes, sound server or not
    if json.loads(listed.stdout):
        pytest.skip(f"this machine has an input device without a sound server: {listed.stdout.strip()}")
    proc = spawn("listen", "--json", env=env)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and out == ""
    assert_one_line_error(err, "no audio input device found", "use --wav FILE")
    listed = subprocess.run([sys.executable, "-m", "spotter", "devices"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert listed.returncode == 0 and "spotter listen --wav FILE" in listed.stdout


DEVICE_ARGUMENT_CASES = [
    ("unknown-index", ["--device", "999"], ["no input device with index 999; input devices: ", "'pulse' (",
                                            "pass --device INDEX or part of a NAME"]),
    ("unknown-name", ["--device", "no-such-mic"], ["no input device matches 'no-such-mic'; input devices: ",
                                                   "'pulse' (", "pass --device INDEX or part of a NAME"]),
    ("reconnect-with-wav", ["--wav", EXAMPLE, "--reconnect"], ["--reconnect re-opens a lost microphone"]),
    ("reconnect-negative", ["--reconnect", "-1"], ["--reconnect -1: give a number of retries"]),
]


@pytest.mark.parametrize("argv, phrases", [c[1:] for c in DEVICE_ARGUMENT_CASES],
                         ids=[c[0] for c in DEVICE_ARGUMENT_CASES])
def test_bad_device_arguments(virtual_mic, capsys, argv, phrases):  # noqa: F811
    code, out, err = cli(capsys, "listen", "--json", *argv)
    assert code == 2 and out == ""
    assert_one_line_error(err, *phrases, only=True)


def _played_signal(tmp_path) -> tuple[Path, np.ndarray]:
    from conftest import chirp, tone

    signal_ = np.concatenate([chirp(100, 6000, 1.0, amp=0.4), tone(440, 0.4, amp=0.3), tone(2500, 0.4, amp=0.3)])
    path = tmp_path / "played.wav"
    sf.write(path, signal_, 16000, subtype="FLOAT")
    return path, signal_


@pytest.mark.parametrize("rate_hz, channels", [(44100, 2), (48000, 2), (48000, 1)])
def test_device_at_44k_or_48k_or_stereo_is_resampled_and_mixed_down(virtual_mic, tmp_path, rate_hz, channels):  # noqa: F811
    """A device opened at 44.1/48 kHz, stereo or mono: what comes out is the played 16 kHz signal."""
    from scipy.signal import correlate

    path, played = _played_signal(tmp_path)
    blocks = []
    with MicrophoneSource(virtual_mic.device, samplerate=rate_hz, channels=channels) as mic:
        assert (mic.device_rate, mic.channels) == (rate_hz, channels)
        deadline = time.monotonic() + 5
        while not blocks or blocks[-1].samples.size == 0:
            blocks.append(mic.read(0.5))
            assert time.monotonic() < deadline, "no audio from the virtual microphone"
        player = virtual_mic.play(path)
        until = time.monotonic() + 5
        while time.monotonic() < until:
            blocks.append(mic.read(0.25))
            if player.poll() is not None:
                until = min(until, time.monotonic() + 0.4)
        assert player.wait() == 0 and mic.overruns == 0 and mic.callback_errors == 0
    captured = np.concatenate([b.samples for b in blocks])
    scores = correlate(captured, played, mode="valid", method="fft")
    lag = int(np.argmax(scores))
    assert np.corrcoef(captured[lag: lag + played.size], played)[0, 1] > 0.99


def test_device_lost_mid_stream_is_one_clear_error(virtual_mic):  # noqa: F811
    """Without --reconnect: the sound server dies under a live PortAudio stream -> exit 2, one line."""
    proc = spawn("listen", "--device", virtual_mic.device, "--json", "--posteriors")
    stderr, stdout = LineReader(proc.stderr), LineReader(proc.stdout, "stdout")
    stdout.wait_for('"posteriors"', timeout=60)  # the stream is live: windows are being scored
    virtual_mic.kill()
    killed = time.monotonic()
    assert proc.wait(timeout=30) == 2
    print(f"exit {time.monotonic() - killed:.2f} s after the server died")
    assert {d["event"] for d in json_lines(stdout.text())} == {"posteriors"}  # no detection, and no summary
    assert_one_line_error(stderr.text(), "audio device 'pulse' stopped delivering audio (unplugged?)",
                          "or add --reconnect")


def test_reconnect_survives_the_device_going_away_and_coming_back(virtual_mic, tmp_path):  # noqa: F811
    """--reconnect: server killed (the device vanishes), back 3 s later; keywords said after it are spotted."""
    clip = tmp_path / "first6s.wav"
    sf.write(clip, *example_clip())
    # Threshold 0.7: through the capture chain, at a random hop phase, "yes" stays above the default 0.85
    # for only 2-3 hops (measured: peak 0.95) - about one run in four would miss it for a reason that has
    # nothing to do with the reconnect; at 0.7 it is above for 5 hops.
    proc = spawn("listen", "--device", virtual_mic.device, "--reconnect", "--json", "--threshold", "0.7", "--posteriors")
    stderr, stdout = LineReader(proc.stderr), LineReader(proc.stdout, "stdout")

    def scored() -> int:
        return sum('"posteriors"' in line for line in stdout.lines)

    try:
        wait_until(lambda: scored() >= 5, 60, "the first windows scored")
        virtual_mic.kill()
        stderr.wait_for("reconnecting in 0.5 s (--reconnect)", timeout=10)
        stderr.wait_for("reconnect attempt 2 failed", timeout=10)
        virtual_mic.restart()
        stderr.wait_for("reconnected to 'pulse'", timeout=15)
        before = scored()
        wait_until(lambda: scored() >= before + 5, 30, "windows scored from the new stream")
        assert virtual_mic.play(clip).wait(timeout=30) == 0
        wait_until(lambda: sum('"detection"' in line for line in stdout.lines) >= len(FIRST_6S), 30,
                   f"{len(FIRST_6S)} detections")
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    err, out = stderr.text(), stdout.text()
    assert code == 0, err
    assert "Traceback" not in err and not [line for line in spotter_lines(err) if "error" in line]
    retries = [line for line in spotter_lines(err) if "reconnect attempt" in line]
    assert len(retries) >= 2 and all(re.search(r"failed: .*; next in \d+(\.\d+)? s$", r) for r in retries), retries
    lines = json_lines(out)
    summary = lines[-1]
    assert summary["event"] == "summary" and summary["reconnects"] == 1 and summary["lost_seconds"] > 2.0
    assert [d["keyword"] for d in lines if d["event"] == "detection"] == FIRST_6S


def test_reconnect_gives_up_after_n_retries(virtual_mic):  # noqa: F811
    """--reconnect 2: the device never comes back -> a line for the loss, one per failed retry but the last
    (0.5 s, then 1 s apart), then one error line after the second retry, exit 2."""
    proc = spawn("listen", "--device", virtual_mic.device, "--reconnect", "2", "--json", "--posteriors")
    stderr, stdout = LineReader(proc.stderr), LineReader(proc.stdout, "stdout")
    stdout.wait_for('"posteriors"', timeout=60)  # the stream is live
    virtual_mic.kill()
    proc.wait(timeout=60)
    err = stderr.text()
    assert proc.returncode == 2
    lost, *retries, _ = spotter_lines(err)[1:]
    assert "stopped delivering audio (unplugged?); reconnecting in 0.5 s (--reconnect)" in lost
    assert len(retries) == 1 and re.search(r"reconnect attempt 1 failed: .*; next in 1 s$", retries[0]), err
    assert_one_line_error(err, "audio device 'pulse' lost and 2 reconnect attempt(s) failed",
                          "check the device and restart")


def test_a_stalled_device_is_detected_and_reconnected(virtual_mic):  # noqa: F811
    """The sound server freezes (SIGSTOP): the stream stays 'active' but no audio comes.  After the stall
    timeout the device counts as lost; its close blocks until the server thaws (SIGCONT), and reconnect
    waits for it instead of re-initialising PortAudio under it; afterwards the stream clock is current."""
    lines = []
    source = reconnecting_microphone(virtual_mic.device, Backoff(), log=lines.append, stall_timeout=1.5)
    blocks, started = [], time.monotonic()

    def read_until(condition, limit):
        deadline = time.monotonic() + limit
        while not condition():
            assert time.monotonic() < deadline, lines
            blocks.append(source.read(0.25))

    with source:
        read_until(lambda: sum(b.samples.size for b in blocks) > 8000, 5)
        os.kill(virtual_mic.process.pid, signal.SIGSTOP)
        try:
            read_until(lambda: any("still closing" in line for line in lines), 10)
        finally:
            os.kill(virtual_mic.process.pid, signal.SIGCONT)
        read_until(lambda: source.reconnects == 1, 15)
        read_until(lambda: blocks[-1].samples.size > 0, 5)
        elapsed = time.monotonic() - started
    assert "delivered no audio for 1.5 s (stalled or unplugged?); reconnecting in 0.5 s" in lines[0]
    assert "reconnected to 'pulse'" in lines[-1]
    stream_end = (blocks[-1].start + blocks[-1].samples.size) / 16000
    assert abs(stream_end - elapsed) < 0.6, (stream_end, elapsed)  # the clock counted the outage


def test_an_exception_in_the_audio_callback_is_reported_not_raised(virtual_mic, capfd):  # noqa: F811
    """The callback runs on PortAudio's thread: a failure there (here a real ValueError - the ring buffer is
    swapped for one with the wrong channel count) must not escape it; read() reports it as one AudioError."""
    from spotter.ringbuffer import RingBuffer

    with MicrophoneSource(virtual_mic.device) as mic:
        assert mic.channels == 2
        deadline = time.monotonic() + 5
        while mic.read(0.5).samples.size == 0:
            assert time.monotonic() < deadline
        mic.ring = RingBuffer(mic.buffer_frames, channels=1)  # (n, 2) blocks no longer fit
        with pytest.raises(AudioError, match=r"the capture callback failed \(ValueError: .*broadcast"):
            while time.monotonic() < deadline + 5:
                mic.read(0.25)
        errors = mic.callback_errors
        assert errors >= 1
        # the stream was not aborted by the exception: its callback goes on being called (and failing)
        wait_until(lambda: mic.callback_errors > errors, 5, "another callback")
        assert mic._stream.active
    assert "Traceback" not in capfd.readouterr().err


# -- the back-off policy and the reconnect bookkeeping (pure) -------------------------------------

def test_backoff_doubles_up_to_the_cap_and_stops_after_max_attempts():
    assert list(Backoff(max_attempts=8).delays()) == [0.5, 1, 2, 4, 8, 10, 10, 10]
    assert list(Backoff(initial=1, factor=3, cap=20, max_attempts=4).delays()) == [1, 3, 9, 20]
    forever = Backoff()
    assert forever.delay(1000) == 10 and forever.delay(10**9) == 10
    assert Backoff(max_attempts=2).delay(3) is None
    for bad in ({"initial": 0}, {"factor": 0.5}, {"cap": 0.1}, {"max_attempts": 0}):
        with pytest.raises(ValueError):
            Backoff(**bad)


class Flaky:
    """A stand-in device for the reconnect bookkeeping only: real 16 kHz blocks of the example, then the
    AudioError a lost MicrophoneSource raises.  (The real loss is tested above on the virtual microphone.)"""

    name, device_rate, overflows, overruns, finished = "flaky", 16000, 0, 1, False

    def __init__(self, blocks_before_loss: int) -> None:
        self.audio = example_clip()[0]
        self.left, self.position, self.closed = blocks_before_loss, 0, False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.closed = True

    def read(self, timeout):
        from spotter.audio import Block

        if self.left == 0:
            raise AudioError("audio device 'flaky' stopped delivering audio (unplugged?); check it")
        self.left -= 1
        block = Block(self.audio[self.position: self.position + 1600], self.position)
        self.position += 1600
        return block


def test_reconnecting_source_keeps_the_clock_and_counts_over_every_device():
    now = [100.0]
    opened = []

    def open_source(retry):
        if retry in (1, 2):
            raise AudioError("no input device matches 'flaky'; input devices: none")
        opened.append(Flaky(3))
        return opened[-1]

    lines = []
    source = ReconnectingSource(open_source, Backoff(max_attempts=5), log=lines.append,
                                clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    starts = []
    with source:
        for _ in range(3):
            now[0] += 0.1  # a block of 1600 samples is read when its 0.1 s have passed
            starts.append(source.read(0.25).start)
        while source.reconnects == 0:
            block = source.read(0.25)
            assert block.samples.size == 0 and block.start == 4800
        starts.append(source.read(0.25).start)
    assert starts[:3] == [0, 1600, 3200]
    # last audio and loss at t=100.3; retries 0.5 s later (fails), 1 s after that (fails), 2 s after (works)
    assert starts[3] == 4800 + round(3.5 * 16000)
    assert lines[0].endswith("reconnecting in 0.5 s (--reconnect)") and "next in 1 s" in lines[1]
    assert "next in 2 s" in lines[2] and lines[3].startswith("spotter: reconnected to 'flaky' (attempt 3)")
    assert source.reconnects == 1 and source.retries == 3 and source.overruns == 2  # one per device
    assert all(s.closed for s in opened)


async def test_the_ui_shows_reconnect_lines_as_notifications():
    """In the terminal UI the retry lines cannot go to stderr (Textual owns the terminal): they become
    notifications, and the app keeps running through the outage."""
    from spotter.checkpoint import load_model
    from spotter.pipeline import Engine, EngineConfig
    from spotter.ui import SpotterApp

    def open_source(retry):
        if retry == 1:
            raise AudioError("no input device matches 'flaky'; input devices: none")
        return Flaky(30 if retry else 5)

    model = load_model(device="cpu")
    source = ReconnectingSource(open_source, Backoff(initial=0.2, cap=0.4))
    app = SpotterApp(source, Engine(model, EngineConfig(skip_stale=True)), model.name, "cpu")
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        deadline = time.monotonic() + 20
        while len(app.notices) < 3:
            assert time.monotonic() < deadline, app.notices
            await pilot.pause(0.05)
        shown = [n.message for n in app._notifications]
        await pilot.press("q")
    assert "stopped delivering audio" in app.notices[0] and "reconnect attempt 1 failed" in app.notices[1]
    assert "reconnected to 'flaky' (attempt 2)" in app.notices[2]
    assert any("reconnected to 'flaky'" in m for m in shown) and app.error is None


# == training data and interrupted training ===================================================

@pytest.fixture(scope="module")
def corpus_with_a_bad_clip(tmp_path_factory):
    from spotter.data.synth import synthesize_corpus

    root = tmp_path_factory.mktemp("corpus")
    synthesize_corpus(root, per_word=20, seed=3, engines=("espeak",), words=("yes", "no", "bed"), progress=False,
                      noise_seconds=10.0, holdout_fraction=0.2)
    (root / "yes" / "garbage_nohash_0.wav").write_bytes(np.random.default_rng(5).bytes(3000))
    return root


def test_a_corrupt_clip_is_named_and_skipped_by_eval(capsys, corpus_with_a_bad_clip):
    code, out, err = cli(capsys, "eval", "--data", corpus_with_a_bad_clip, "--split", "all", "--json")
    assert code == 0, err
    warning = [line for line in err.splitlines() if "garbage_nohash_0.wav" in line]
    assert len(warning) == 1 and warning[0].startswith("spotter: warning: ")
    assert "left out 1 unreadable clip(s): yes/garbage_nohash_0.wav" in warning[0] and "Traceback" not in err
    result = json.loads(out)
    assert result["n"] > 40 and result["accuracy"] > 0.3


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_training_resumes_and_ends_at_the_same_epoch_count(corpus_with_a_bad_clip, tmp_path, stop):
    """Ctrl-C or SIGTERM during `spotter train` (the corpus has a corrupt clip too): a one-line hint, exit 0
    as every mode on Ctrl-C; the same command with --resume continues from last.ckpt and ends with the
    asked-for number of epochs."""
    from spotter.training.run import main as train_main

    epochs, out = 40, tmp_path / "run"
    argv = ["--data", str(corpus_with_a_bad_clip), "--model", "linear", "--epochs", str(epochs), "--batch-size", "16",
            "--accelerator", "cpu", "--out", str(out), "--no-progress", "--seed", "0"]
    proc = subprocess.Popen([sys.executable, "-m", "spotter", "train", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    last = out / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not last.is_file() and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(stop)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and not [line for line in spotter_lines(err) if line.startswith("spotter: error")]
    hints = [line for line in spotter_lines(err) if line.startswith("spotter: training interrupted; ")]
    assert len(hints) == 1, err
    hint = hints[0]
    for phrase in (f"of {epochs} epochs are saved in {last}", "run the same command with --resume"):
        assert phrase in hint, (phrase, hint)
    done = int(re.search(r"interrupted; (\d+) of", hint).group(1))
    assert 1 <= done < epochs and not (out / "metrics.json").exists()
    assert [w for w in spotter_lines(err) if w.startswith("spotter: warning:") and "garbage_nohash_0.wav" in w]

    assert train_main([*argv, "--resume"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == epochs
    assert torch.load(last, map_location="cpu", weights_only=True)["epoch"] == epochs - 1
    logged = set()
    for csv in (out / "logs").glob("version_*/metrics.csv"):
        header, *rows = csv.read_text().splitlines()
        col = header.split(",").index("epoch")
        logged |= {int(float(r.split(",")[col])) for r in rows if r.split(",")[col]}
    assert logged == set(range(epochs))


# == Ctrl-C and SIGTERM in every mode of `spotter listen` ======================================

@pytest.fixture(scope="module")
def long_wav(tmp_path_factory):
    """3 minutes of the example, back to back: a fast replay still runs when the signal comes."""
    audio, rate_hz = sf.read(EXAMPLE, dtype="float32")
    path = tmp_path_factory.mktemp("long") / "long.wav"
    sf.write(path, np.tile(audio, 7), rate_hz, subtype="PCM_16")
    return path


def _controlling_terminal() -> None:
    """In the child: a new session whose controlling terminal is the pty on stdin, so that a typed Ctrl-C
    becomes SIGINT for it (the terminal's line discipline), as in a real terminal."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _run_in_terminal(argv, action: bytes | int, ready: bytes, rows: int = 24, cols: int = 80):
    """Run `spotter listen ...` on a pseudo-terminal (stdin, stdout and stderr), as a user in a terminal
    does; once ``ready`` is on the screen (and 1.5 s more), send ``action``: keys typed, or a signal."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "NO_COLOR": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "spotter", "listen", *map(str, argv)], stdin=slave, stdout=slave,
                            stderr=slave, env=env, preexec_fn=_controlling_terminal)
    os.close(slave)
    spawned, screen = time.monotonic(), b""

    def pump(seconds: float) -> None:
        nonlocal screen
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if select.select([master], [], [], 0.05)[0]:
                try:
                    screen += os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    return

    try:
        deadline = time.monotonic() + 60
        while ready not in screen:
            assert time.monotonic() < deadline and proc.poll() is None, screen[-2000:]
            pump(0.1)
        pump(1.5)
        sent = time.monotonic()
        if isinstance(action, bytes):
            os.write(master, action)
        else:
            proc.send_signal(action)
        while proc.poll() is None and time.monotonic() - sent < 20:
            pump(0.1)
        took = time.monotonic() - sent
        pump(0.2)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        os.close(master)
    text = re.sub(r"\x1b\[[0-9;?<>=]*[A-Za-z]", "", screen.decode(errors="replace"))
    return proc.returncode, text, took, sent + took - spawned


def _run_in_pipes(argv, action: int, mic=None):
    """Run `spotter listen ...` with stdout and stderr on pipes (as a script does: JSON lines)."""
    proc, spawned = spawn("listen", *argv, "--posteriors"), time.monotonic()
    stderr, stdout = LineReader(proc.stderr), LineReader(proc.stdout, "stdout")
    stdout.wait_for(lambda line: '"posteriors"' in line and json.loads(line)["time"] >= 1.5, timeout=60)
    if "--reconnect" in argv:  # stop it while it waits for the lost device to come back
        mic.kill()
        stderr.wait_for("reconnecting in", timeout=10)
    sent = time.monotonic()
    proc.send_signal(action)
    try:
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, stdout.text(), stderr.text(), time.monotonic() - sent, time.monotonic() - spawned


TERMINAL_UI, TERMINAL_PLAIN, PIPES = "terminal UI", "terminal, --no-ui", "pipes (JSON)"
SIGNAL_CASES = [
    # (id, where the output goes, argv, how it is stopped)
    ("ui-ctrl-c-key", TERMINAL_UI, ["--wav", EXAMPLE, "--realtime"], b"\x03"),  # raw mode: Ctrl-C is a key
    ("ui-q-key", TERMINAL_UI, ["--wav", EXAMPLE, "--realtime"], b"q"),
    ("ui-sigint", TERMINAL_UI, ["--wav", EXAMPLE, "--realtime"], signal.SIGINT),
    ("ui-sigterm", TERMINAL_UI, ["--wav", EXAMPLE, "--realtime"], signal.SIGTERM),
    ("plain-fast-replay-ctrl-c", TERMINAL_PLAIN, ["--wav", "LONG", "--no-ui"], b"\x03"),  # the tty sends SIGINT
    ("plain-realtime-sigint", TERMINAL_PLAIN, ["--wav", "LONG", "--realtime", "--no-ui"], signal.SIGINT),
    ("plain-realtime-sigterm", TERMINAL_PLAIN, ["--wav", "LONG", "--realtime", "--no-ui"], signal.SIGTERM),
    ("json-fast-replay-sigint", PIPES, ["--wav", "LONG", "--json"], signal.SIGINT),
    ("json-fast-replay-sigterm", PIPES, ["--wav", "LONG", "--json"], signal.SIGTERM),
    ("json-realtime-sigint", PIPES, ["--wav", "LONG", "--realtime", "--json"], signal.SIGINT),
    ("json-microphone-sigint", PIPES, ["--device", "MIC", "--json"], signal.SIGINT),
    ("json-microphone-sigterm", PIPES, ["--device", "MIC", "--json"], signal.SIGTERM),
    ("json-microphone-reconnecting-sigint", PIPES, ["--device", "MIC", "--reconnect", "--json"], signal.SIGINT),
]


@pytest.mark.parametrize("where, argv, action", [c[1:] for c in SIGNAL_CASES], ids=[c[0] for c in SIGNAL_CASES])
def test_ctrl_c_and_sigterm_stop_cleanly_with_a_summary(request, long_wav, where, argv, action):
    """Exit status 0, the summary printed, the stream closed (the process ends within a few seconds:
    an open PortAudio stream or replay thread would keep it), no traceback and no error line."""
    mic = request.getfixturevalue("virtual_mic") if "MIC" in argv else None
    argv = [mic.device if a == "MIC" else long_wav if a == "LONG" else a for a in argv]
    if where == PIPES:
        code, out, err, took, alive = _run_in_pipes(argv, action, mic)
        summary = json_lines(out)[-1]
        assert summary["event"] == "summary", out[-2000:]
        seconds, interrupted = summary["seconds"], summary.get("interrupted", False)
        assert interrupted == (action == signal.SIGINT)  # SIGTERM is a normal stop, Ctrl-C says so
        if "--reconnect" in argv:
            assert summary["reconnects"] == 0
    else:
        code, err, took, alive = _run_in_terminal(argv, action, ready=b"LIVE" if where == TERMINAL_UI else b"listening to")
        found = re.search(r"spotter: ([\d.]+) s of audio, (\d+) detections, \d+ windows", err)
        assert found, err[-2000:]
        seconds = float(found.group(1))
    assert code == 0 and took < 5, (code, took, err[-2000:])  # took <= 1.0 s measured under nice load
    assert "Traceback" not in err and "error" not in "".join(spotter_lines(err)), err[-2000:]
    assert 1.0 < seconds < 7 * 27.76  # stopped part-way
    if "--realtime" in argv or "MIC" in argv:
        assert seconds <= alive  # live: no more audio than the process lived (stopped once 1.5 s were scored)


def test_a_model_whose_front_end_cannot_stream_is_refused_by_listen_in_one_line(capsys, tmp_path):
    """n_fft != win_length: fine offline (`info` describes it), but the streaming features need them equal."""
    from spotter.checkpoint import save_checkpoint
    from spotter.config import FrontendConfig

    model = build_model("linear", frontend=FrontendConfig(n_fft=512, win_length=400))
    path = save_checkpoint(model, tmp_path / "wide.pt")
    code, out, err = cli(capsys, "info", path)
    assert code == 0 and "512" not in err
    code, out, err = cli(capsys, "listen", "--wav", EXAMPLE, "--json", "--model", path)
    assert code == 2 and out == ""
    assert_one_line_error(err, "n_fft 512, win_length 400", "cannot stream", "win_length == n_fft", only=True)
