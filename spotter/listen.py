"""What ``spotter listen`` does: open a source, load the model, run the engine, write events.

The command line (:mod:`spotter.cli`) only parses flags into :class:`ListenOptions`;
everything else is here: which source (a WAV replay, a microphone, a microphone that
re-opens when lost), the model on its compute device, the events as lines (JSON or
plain text) or the terminal UI, and the closing summary.
"""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import dataclass
from typing import Callable, TextIO

from .errors import SpotterError


@dataclass(frozen=True)
class ListenOptions:
    """How to listen: the source, how the model runs, and what is printed."""

    wav: str | None = None
    device: str | None = None
    realtime: bool = False
    reconnect: int | None = None  # None: exit when the microphone is lost; 0: retry forever; N: N retries
    model: str | None = None
    device_type: str = "auto"
    threads: int = 1
    runtime: str = "auto"  # onnx | torch | auto (spotter.exported.open_exported)
    gate: bool = True  # the silence gate (spotter.gate); --no-gate scores every hop with the network
    screen: bool = True  # an ensemble's other members only when the first could lead to a detection; --no-screen
    base: bool = True  # an enrolled model's base model beside it (spotter.guard); --no-base runs it alone
    hop_ms: float = 100.0
    json: bool = False
    posteriors: bool = False
    ui: bool = True

    @property
    def live(self) -> bool:
        """A microphone, or a replay paced like one: stale windows are skipped instead of queued."""
        return not self.wav or self.realtime

    def check(self) -> None:
        """Combinations of flags that mean nothing: a one-line error each."""
        if self.wav and self.device is not None:
            raise SpotterError("--wav and --device exclude each other: give one source")
        if self.realtime and not self.wav:
            raise SpotterError("--realtime paces a --wav replay; a microphone is always real time")
        if self.reconnect is not None and self.wav:
            raise SpotterError("--reconnect re-opens a lost microphone; it does not apply to --wav")
        if self.reconnect is not None and self.reconnect < 0:
            raise SpotterError(f"--reconnect {self.reconnect}: give a number of retries (>= 1), "
                               "or none to retry forever")


def open_source(options: ListenOptions):
    """The audio source the options name, in blocks that divide the hop (no window waits for audio)."""
    from .audio import MicrophoneSource, WavSource
    from .pipeline import source_block_ms

    block_ms = source_block_ms(options.hop_ms)
    if options.wav:
        return WavSource(options.wav, realtime=options.realtime, block_ms=block_ms)
    if options.reconnect is not None:
        from .reconnect import Backoff, reconnecting_microphone

        return reconnecting_microphone(options.device, Backoff(max_attempts=options.reconnect or None),
                                       block_ms=block_ms)
    return MicrophoneSource(options.device, block_ms=block_ms)


def load_streaming_model(model: str | None, device_type: str = "auto", threads: int = 1, runtime: str = "auto"):
    """The model in the runtime ``--runtime`` asks for: its exported graph in ONNX Runtime (no torch is
    imported), else the checkpoint on its torch device; with the CPU threads a batch-1 window wants
    (more only add overhead)."""
    from .exported import open_exported

    exported = open_exported(model, runtime, threads=threads, device_type=device_type)
    if exported is not None:
        return exported
    import torch

    from .checkpoint import load_model
    from .compute import select_device

    torch.set_num_threads(max(1, threads))
    return load_model(model, device=select_device(device_type))


def line_sink(as_json: bool, posteriors: bool, out: TextIO | None = None) -> Callable[[object], None]:
    """A sink printing each detection as a line (JSON or plain text) and, when asked, each hop's posteriors."""
    from .events import Detection

    def sink(event) -> None:
        if isinstance(event, Detection):
            line = event.to_json() if as_json else f"{event.time:9.2f} s  {event.keyword:<6} {event.confidence:.2f}"
        elif posteriors and as_json:
            line = event.to_json()
        else:
            return
        print(line, file=out or sys.stdout, flush=True)

    return sink


def format_summary(summary: dict) -> str:
    """The closing line of a plain-text run."""
    return (f"spotter: {summary['seconds']:.1f} s of audio, {summary['detections']} detections, "
            f"{summary['windows']} windows ({summary['gated_windows']} gated as silence, "
            f"{summary['screened_windows']} screened by the first member, "
            f"{summary['skipped_windows']} skipped between calm ones, "
            f"{summary['inference_ms_mean']:.1f} ms each scored), "
            f"{summary['dropped_windows']} dropped, {summary['overflows']} input overflows")


def listen(options: ListenOptions, detector) -> int:
    """Run ``spotter listen``: the UI on a terminal, else event lines and a summary. ``detector`` is a
    function of the loaded model giving its :class:`~spotter.detector.DetectorConfig`."""
    from .gate import GateConfig
    from .pipeline import Engine, EngineConfig, GracefulExit, run

    options.check()
    source = open_source(options)  # before the model: a bad file or device is reported at once
    model = load_streaming_model(options.model, options.device_type, options.threads, options.runtime)
    engine = Engine(model, EngineConfig(hop_ms=options.hop_ms, skip_stale=options.live, detector=detector(model),
                                        gate=GateConfig() if options.gate else None, screen=options.screen,
                                        guard=options.base))
    as_json = options.json or not sys.stdout.isatty()
    device = f"{engine.scorer.device}, {engine.scorer.runtime}"
    if not as_json and options.ui:  # a terminal: the live UI
        from .ui import run_app

        summary = run_app(source, engine, model_name=model.name, device=device)
        print(format_summary(summary), file=sys.stderr)
        return 0
    stop = threading.Event()
    print(f"spotter: listening to {source.name} with {model.name} on {device}"
          f"{' (Ctrl-C to stop)' if options.live else ''}", file=sys.stderr, flush=True)
    try:
        with GracefulExit(stop):
            summary = run(source, engine, line_sink(as_json, options.posteriors), stop)
    except KeyboardInterrupt:  # Ctrl-C: the source is already closed by run()'s context manager
        summary = {**engine.summary(), "overruns": source.overruns, "interrupted": True}
        if getattr(source, "reconnects", None) is not None:
            summary["reconnects"] = source.reconnects
    if as_json:
        print(json.dumps(summary), flush=True)
    else:
        print(format_summary(summary), file=sys.stderr)
    return 0
