"""Streaming: per-hop cost, CPU share while listening, detection latency, real-time factor.

Three parts, all through spotter's public API and real engine:

1. **Per hop** (torch threads 1, as ``spotter listen``): ``StreamingFeatures``
   fed one 100 ms hop and asked for the newest window (incremental: only new
   frames) vs the front end recomputing the whole 1 s window, the network on
   one window, and one whole ``Engine.feed`` of a hop (features + model +
   detector + events), for the shipped model and the largest BC-ResNet.
2. **Real-time replay** of ``examples/keywords.wav`` through ``pipeline.run``
   with a ``WavSource(realtime=True)`` (a producer thread writes blocks into the
   ring buffer at wall-clock pace, like the audio callback; the block
   ``spotter listen`` asks for, ``pipeline.source_block_ms``: 100 ms at the
   100 ms hop) and the live engine (``skip_stale``): CPU time
   (``time.process_time``, all threads) per second of audio as % of one core;
   the wall-clock processing delay from the ring-buffer write of the block
   holding a window's last sample to the window's event reaching the sink; and,
   per detected keyword, the end-to-end delay from the moment its last sample
   was due (when a microphone would have captured it: the replay's clock, so
   the time the sample waits for the rest of its block counts) to its
   detection event.
3. **As fast as possible**: ``data/streams/test10.wav`` (+ ``.csv``) when
   present, else the example, through the every-window engine: real-time
   factor (wall seconds per audio second) and detection latency in stream
   time (detection time - the keyword's labelled end).

    python benchmarks/bench_streaming.py [--quick] [--device auto|cpu|cuda] [--wav FILE --labels CSV]
"""

from __future__ import annotations

import bisect
import time
from pathlib import Path

# common.py, beside this script, also puts the checkout on sys.path
from common import (ROOT, cuda_sync, devices, machine, machine_line, measure, parser, quiet_warnings, set_threads,
                    summarize, table, write_json)

import numpy as np
import torch

HOP_MS = 100.0
TOLERANCE_S = 0.75  # as `spotter eval-stream`
EXAMPLE = (ROOT / "examples" / "keywords.wav", ROOT / "examples" / "keywords.csv")
LONG = (ROOT / "data" / "streams" / "test10.wav", ROOT / "data" / "streams" / "test10.csv")


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """Noise with bursts of harmonic tones: audio that keeps every layer busy."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    f0 = 120 + 80 * np.sin(2 * np.pi * 0.3 * t)
    voiced = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / 16000) / k for k in range(1, 6))
    envelope = (np.sin(2 * np.pi * 1.3 * t) > 0.2).astype(np.float32)
    return (0.1 * envelope * voiced + 0.01 * rng.standard_normal(n)).astype(np.float32)


def match(detections, labels) -> list[tuple[object, object]]:
    """(detection, keyword label) pairs: each detection takes the earliest untaken utterance of its keyword
    whose span (+ tolerance) holds it (as `spotter eval-stream` counts a match)."""
    from spotter.config import KEYWORDS

    utterances = sorted((e for e in labels if e.label in KEYWORDS), key=lambda e: e.start)
    taken, pairs = set(), []
    for d in sorted(detections, key=lambda d: d.time):
        for i, u in enumerate(utterances):
            if i not in taken and u.label == d.keyword and u.start <= d.time <= u.end + TOLERANCE_S:
                taken.add(i)
                pairs.append((d, u))
                break
    return pairs


def per_hop(model_name: str, device: str, quick: bool) -> dict:
    from spotter.checkpoint import load_model
    from spotter.inference import inference_classifier
    from spotter.model import build_model
    from spotter.pipeline import Engine, EngineConfig
    from spotter.streaming import StreamingFeatures

    model = load_model(None, device=device) if model_name == "shipped" else build_model(model_name).to(device).eval()
    sync = cuda_sync(device)
    hop = int(HOP_MS * 16)
    audio = speechlike(60 if quick else 120)
    iters, secs = (40, 1.0) if quick else (300, 4.0)

    def stream(n_hops_warm: int = 12):
        feats = StreamingFeatures(model.frontend, max_lag=hop)
        for i in range(n_hops_warm):
            feats.push(audio[i * hop:(i + 1) * hop])
        return feats

    pos = {"i": 12}

    def next_hop():
        i = pos["i"] % (audio.size // hop - 1)
        pos["i"] += 1
        return audio[i * hop:(i + 1) * hop]

    feats = stream()
    with torch.inference_mode():
        def incremental():
            feats.push(next_hop())
            return feats.window_features()
        inc = measure(incremental, iters=iters, warmup=10, max_seconds=secs, sync=sync)
        window = audio[:16000].copy()
        full = measure(lambda: model.frontend(torch.from_numpy(window).to(device)[None]), iters=iters, warmup=10,
                       max_seconds=secs, sync=sync)
        x = feats.window_features()
        classify = inference_classifier(model)  # what the engine runs (an ensemble stacked into one network)
        net = measure(lambda: classify(x), iters=iters, warmup=10, max_seconds=secs, sync=sync)
        # check: incremental features equal the offline front end on the same window
        check = stream(20)
        end = check.stream_samples
        offline = model.frontend(torch.from_numpy(audio[end - 16000:end].copy()).to(device)[None])
        diff = float((check.window_features() - offline).abs().max())
    engine = Engine(model, EngineConfig(hop_ms=HOP_MS))
    engine.feed(audio[:16000])  # warm
    eng = measure(lambda: engine.feed(next_hop()), iters=iters, warmup=10, max_seconds=secs, sync=sync)
    name = getattr(model, "source", None) and Path(model.source).stem or model_name
    return {"model": name, "architecture": model.name, "device": device, "threads": torch.get_num_threads(),
            "incremental_ms": inc, "recompute_ms": full, "speedup": full["median"] / inc["median"],
            "net_ms": net, "engine_hop_ms": eng, "cpu_percent_estimate": eng["median"] / HOP_MS * 100,
            "max_diff_vs_offline": diff}


def realtime_replay(wav: Path, labels_path: Path, device: str) -> dict:
    from spotter.audio import WavSource
    from spotter.checkpoint import load_model
    from spotter.config import KEYWORDS
    from spotter.events import Detection, PosteriorUpdate
    from spotter.pipeline import Engine, EngineConfig, run, source_block_ms
    from spotter.data.labels import read_labels

    writes: list[tuple[float, int]] = []  # (perf_counter after the write, device frames written so far)

    class TimedWavSource(WavSource):
        """A WavSource whose ring-buffer writes are time-stamped (the producer is otherwise unchanged)."""

        def _start_consumer(self) -> None:
            super()._start_consumer()
            ring, write = self.ring, self.ring.write

            def timed_write(block):
                write(block)
                writes.append((time.perf_counter(), ring.written))
            ring.write = timed_write

    model = load_model(None, device=device)
    source = TimedWavSource(wav, realtime=True, block_ms=source_block_ms(HOP_MS))  # as `spotter listen`
    engine = Engine(model, EngineConfig(hop_ms=HOP_MS, skip_stale=True))
    emitted: list[tuple[float, object]] = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    summary = run(source, engine, lambda e: emitted.append((time.perf_counter(), e)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    audio_s = len(source.frames) / source.device_rate
    written = [w for _, w in writes]

    def write_time(t_stream: float) -> float | None:
        """Wall time of the ring write that made stream time ``t_stream`` available."""
        frame = int(np.ceil(t_stream * source.device_rate - 1e-6))
        i = bisect.bisect_left(written, frame)
        return writes[i][0] if i < len(writes) else None

    delays = [(t - write_time(e.time)) * 1000 for t, e in emitted
              if isinstance(e, PosteriorUpdate) and write_time(e.time) is not None]
    detections = [(t, e) for t, e in emitted if isinstance(e, Detection)]
    det_delays = [(t - write_time(e.time)) * 1000 for t, e in detections if write_time(e.time) is not None]
    when = {id(e): t for t, e in detections}
    pairs = match([e for _, e in detections], read_labels(labels_path))
    stream_lat = [(d.time - u.end) * 1000 for d, u in pairs]
    # the replay's clock: stream time t was due at started + t (each write comes at its due time or late)
    started = min(t - frames / source.device_rate for t, frames in writes)
    e2e = [(when[id(d)] - (started + u.end)) * 1000 for d, u in pairs]
    return {"wav": str(wav.relative_to(ROOT) if wav.is_relative_to(ROOT) else wav), "model": Path(model.source).stem,
            "device": device, "threads": torch.get_num_threads(), "audio_s": audio_s, "wall_s": wall, "cpu_s": cpu,
            "cpu_percent": cpu / audio_s * 100, "windows": summary["windows"],
            "dropped_windows": summary["dropped_windows"], "overruns": summary["overruns"],
            "detections": len(detections), "matched": len(pairs),
            "keywords": sum(e.label in KEYWORDS for e in read_labels(labels_path)),
            "processing_delay_ms": summarize(delays), "detection_processing_delay_ms": summarize(det_delays),
            "detection_latency_stream_ms": summarize(stream_lat), "end_to_end_ms": summarize(e2e)}


def fast_replay(wav: Path, labels_path: Path, device: str) -> dict:
    from spotter.checkpoint import load_model
    from spotter.events import Detection
    from spotter.pipeline import EngineConfig, replay_file
    from spotter.data.labels import read_labels

    model = load_model(None, device=device)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    events, summary = replay_file(model, wav, EngineConfig(hop_ms=HOP_MS))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    detections = [e for e in events if isinstance(e, Detection)]
    labels = read_labels(labels_path)
    pairs = match(detections, labels)
    from spotter.config import KEYWORDS

    return {"wav": str(wav.relative_to(ROOT) if wav.is_relative_to(ROOT) else wav), "model": Path(model.source).stem,
            "device": device, "threads": torch.get_num_threads(), "audio_s": summary["seconds"], "wall_s": wall,
            "cpu_s": cpu, "realtime_factor": wall / summary["seconds"], "windows": summary["windows"],
            "detections": len(detections), "matched": len(pairs),
            "keywords": sum(e.label in KEYWORDS for e in labels),
            "detection_latency_stream_ms": summarize([(d.time - u.end) * 1000 for d, u in pairs])}


def main(argv=None) -> dict:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--wav", type=Path, help="stream for the as-fast-as-possible replay (default: "
                   "data/streams/test10.wav if present, else examples/keywords.wav)")
    p.add_argument("--labels", type=Path, help="its labels CSV (default: the WAV's name with .csv)")
    args = p.parse_args(argv)
    quiet_warnings()
    info = machine()
    set_threads(1)  # as `spotter listen` (its --threads default)
    devs = devices(args.device)

    hop_rows, hops = [], []
    for device in devs:
        for name in (["shipped"] if args.quick else ["shipped", "bcresnet-8"]):
            r = per_hop(name, device, args.quick)
            hops.append(r)
            hop_rows.append([r["model"], device, r["threads"], r["incremental_ms"]["median"],
                             r["recompute_ms"]["median"], f"{r['speedup']:.1f}x", r["net_ms"]["median"],
                             r["engine_hop_ms"]["median"], r["engine_hop_ms"]["p99"], r["cpu_percent_estimate"]])
    print(table(f"Streaming, per {HOP_MS:g} ms hop ({machine_line(info)})",
                ["model", "device", "threads", "incr. feats ms", "recompute ms", "speed-up", "net ms",
                 "hop ms", "hop p99 ms", "% of hop"], hop_rows,
                ["incr. feats: StreamingFeatures.push(hop) + window_features() (new frames only); recompute: the "
                 "front end on the whole 1 s window",
                 "hop ms: one Engine.feed of a hop (incremental features + network + detector + events), median and p99",
                 f"incremental vs offline features: max diff {max(h['max_diff_vs_offline'] for h in hops):.1e}"]))

    device = devs[-1]  # where `spotter listen` would run: CUDA when present
    rt = realtime_replay(*EXAMPLE, device)
    if args.wav:
        long = (args.wav, args.labels or args.wav.with_suffix(".csv"))
    else:
        long = LONG if (LONG[0].is_file() and LONG[1].is_file() and not args.quick) else EXAMPLE
    fast = fast_replay(*long, device)

    def ms(s: dict, key: str = "median") -> float | None:
        return s.get(key)

    rows = [
        ["real time", rt["wav"], rt["audio_s"], rt["wall_s"], rt["cpu_percent"], rt["wall_s"] / rt["audio_s"],
         f"{rt['matched']}/{rt['keywords']}", ms(rt["detection_latency_stream_ms"]),
         ms(rt["detection_latency_stream_ms"], "p99"), ms(rt["processing_delay_ms"]), ms(rt["processing_delay_ms"], "p99"),
         ms(rt["end_to_end_ms"])],
        ["as fast as possible", fast["wav"], fast["audio_s"], fast["wall_s"], fast["cpu_s"] / fast["audio_s"] * 100,
         fast["realtime_factor"], f"{fast['matched']}/{fast['keywords']}", ms(fast["detection_latency_stream_ms"]),
         ms(fast["detection_latency_stream_ms"], "p99"), None, None, None],
    ]
    print()
    print(table(f"Streaming replays: {rt['model']} on {device}, threads 1, hop {HOP_MS:g} ms",
                ["replay", "stream", "audio s", "wall s", "CPU % of 1 core", "RTF", "detected", "latency ms",
                 "lat. p99 ms", "proc. delay ms", "delay p99 ms", "end-to-end ms"], rows,
                ["CPU %: process time (all threads) / audio time; RTF: wall time / audio time",
                 "latency: detection time - keyword's labelled end, stream time (median, p99 over detected keywords)",
                 "proc. delay: wall time from the ring-buffer write of a window's last sample to its event at the sink",
                 "end-to-end: wall time from when a keyword's last sample was due (the replay clock) to its detection event",
                 f"real time: {rt['windows']} windows, {rt['dropped_windows']} dropped, {rt['overruns']} overruns"]))
    data = {"benchmark": "streaming", "machine": info, "quick": args.quick, "hop_ms": HOP_MS,
            "per_hop": hops, "realtime": rt, "fast": fast}
    write_json("streaming", data, args.out, announce=True)
    return data


if __name__ == "__main__":
    main()
