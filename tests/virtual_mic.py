"""A virtual microphone for tests: a throw-away PulseAudio server whose default source hears what is played.

The ``virtual_mic`` fixture starts ``pulseaudio`` in the foreground with its
socket, HOME and XDG directories in a temp dir, and loads

* a null sink ``spotter_sink`` (16 kHz mono float; ``norewinds=1``, without
  which the first capture callback arrives ~1.8 s late), and
* ``spotter_mic``, a remap of the sink's monitor, made the default source,

so ``paplay --device=spotter_sink file.wav`` is heard by anything recording
from the default source.  ``PULSE_SERVER`` points this process and its
children at the server.  Debian's PortAudio has only ALSA and OSS host APIs;
it reaches PulseAudio through the ALSA ``pulse`` device (libasound2-plugins),
so tests open the device named ``pulse``.  PortAudio lists devices when it is
initialised, so it is re-initialised here in case ``sounddevice`` was already
imported.  The server is killed and reaped at teardown.

No ``pulseaudio`` binary: the test is skipped - unless ``CI`` or
``SPOTTER_REQUIRE_VIRTUAL_MIC`` is set, where a missing virtual microphone
is a failure, so CI can never silently skip the live-capture tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class VirtualMic:
    server_dir: Path
    process: subprocess.Popen
    device: str = "pulse"  # the ALSA device PortAudio reaches PulseAudio through
    sink: str = "spotter_sink"
    command: tuple = ()
    log: object = None

    def play(self, path) -> subprocess.Popen:
        """Start playing an audio file into the virtual microphone."""
        return subprocess.Popen(["paplay", f"--device={self.sink}", str(path)])

    def kill(self) -> None:
        """The microphone disappears: the server dies (as a USB microphone unplugged, for PortAudio)."""
        self.process.kill()
        self.process.wait()

    def restart(self, timeout: float = 10.0) -> None:
        """The microphone comes back: a new server with the same socket, sink and default source."""
        self.kill()
        self.process = _start_server(self.command, self.log, self.server_dir, timeout)


def _start_server(command, log, server_dir: Path, timeout: float = 10.0) -> subprocess.Popen:
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while subprocess.run(["pactl", "info"], capture_output=True).returncode != 0:
        if process.poll() is not None or time.monotonic() > deadline:
            log.flush()
            process.kill()
            process.wait()
            _unavailable(f"pulseaudio did not start: {(server_dir / 'server.log').read_text()[-500:]}")
        time.sleep(0.05)
    subprocess.run(["pactl", "set-default-source", "spotter_mic"], check=True)
    return process


def _unavailable(reason: str):
    if os.environ.get("CI") or os.environ.get("SPOTTER_REQUIRE_VIRTUAL_MIC"):
        pytest.fail(f"virtual microphone required (CI / SPOTTER_REQUIRE_VIRTUAL_MIC set) but {reason}")
    pytest.skip(reason)


@pytest.fixture
def virtual_mic(tmp_path, monkeypatch):
    missing = [tool for tool in ("pulseaudio", "pactl", "paplay") if shutil.which(tool) is None]
    if missing:
        _unavailable(f"{', '.join(missing)} not installed (apt-get install pulseaudio pulseaudio-utils)")
    server_dir = tmp_path / "pulse"
    server_dir.mkdir()
    socket = server_dir / "native"
    for name in ("HOME", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME"):
        monkeypatch.setenv(name, str(server_dir))
    monkeypatch.setenv("PULSE_SERVER", f"unix:{socket}")
    log = open(server_dir / "server.log", "wb")
    command = ("pulseaudio", "-n", "--daemonize=no", "--system=no", "--exit-idle-time=-1", "--disable-shm=yes",
               "-L", f"module-native-protocol-unix auth-anonymous=1 socket={socket}",
               "-L", "module-null-sink sink_name=spotter_sink rate=16000 channels=1 format=float32le norewinds=1",
               "-L", "module-remap-source master=spotter_sink.monitor source_name=spotter_mic")
    mic = None
    try:
        mic = VirtualMic(server_dir, _start_server(command, log, server_dir), command=command, log=log)
        try:
            import sounddevice
        except OSError as e:
            _unavailable(f"sounddevice cannot load PortAudio ({e}; apt-get install libportaudio2)")
        sounddevice._terminate()  # rescan: the ALSA 'pulse' device now has a server behind it
        sounddevice._initialize()
        yield mic
    finally:
        if mic is not None:
            mic.kill()
        log.close()
