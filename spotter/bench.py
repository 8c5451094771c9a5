"""``spotter bench``: is this machine fast enough to listen?

Times the per-window work of the live engine exactly as ``spotter listen``
does it: the model in the runtime and on the device ``listen`` would pick
(:func:`spotter.listen.load_streaming_model`), threads as ``listen --threads``
(default 1), and per hop the engine's window scorer
(:func:`spotter.pipeline.window_scorer`) fed one hop of audio (only the new
frames are computed), then the network on the newest window and the
probabilities back on the CPU (what ``Engine._score`` does). For an ensemble
(in the onnx runtime, one whose screening pair was exported), windows are timed as
``listen`` scores them (the other members only when the first member's
keyword probability reaches :func:`spotter.detector.screen_limit`) and, in a
second run, with every member on every window, as while a keyword is said:
the verdict is on that second figure.  An enrolled model is timed with its base
model beside it, both scored on every hop as ``listen`` runs them
(:mod:`spotter.guard`; a window counts as screened when every model's first
member scored it alone).  The silence
gate is not in it: every window is scored, as in speech.  The audio is a
generated speech-like signal (a gliding harmonic tone in bursts, plus
noise): the work does not depend on what is said.

Reported: median and p99 wall time per window, CPU time per hop as a share of
one core at the hop (``time.process_time``; all threads), and a verdict.
"""

from __future__ import annotations

import time

import numpy as np

from .config import SAMPLE_RATE

#: Above this share of a hop the machine keeps up, but with little to spare.
WARN_PERCENT = 50.0


def _audio(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    f0 = 120 + 80 * np.sin(2 * np.pi * 0.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 6))
    bursts = (np.sin(2 * np.pi * 1.3 * t) > 0.2)
    return (0.1 * bursts * voiced + 0.01 * rng.standard_normal(n)).astype(np.float32)


def run_bench(model: str | None = None, device_type: str = "auto", threads: int = 1, hop_ms: float = 100.0,
              iterations: int = 300, warmup: int = 20, runtime: str = "auto") -> dict:
    """Time ``iterations`` hops of the live engine's per-window work; the result dict of ``spotter bench --json``."""
    from .detector import detector_from_meta, screen_limit
    from .errors import SpotterError
    from .listen import load_streaming_model
    from .pipeline import window_scorer

    if iterations < 1:
        raise SpotterError(f"--iterations {iterations}: must be at least 1")
    net = load_streaming_model(model, device_type, threads, runtime)
    frame_hop = net.frontend.config.hop_length
    hop = int(round(hop_ms * SAMPLE_RATE / 1000))
    if hop <= 0 or hop % frame_hop:
        raise SpotterError(f"--hop-ms {hop_ms:g} must be a positive multiple of {1000 * frame_hop / SAMPLE_RATE:g} ms")
    scorer = window_scorer(net, max_lag=hop)  # as the engine scores windows
    members = scorer.members
    limit = screen_limit(detector_from_meta(getattr(net, "meta", {})), members)  # 0: every member always
    scorers = [(scorer, limit)]
    beside = getattr(net, "guard", None)  # an enrolled model: listen runs its base model beside it
    if beside is not None:
        base_scorer = window_scorer(beside.model, max_lag=hop)
        scorers.append((base_scorer, screen_limit(beside.detector, base_scorer.members)))
    audio = _audio(max(2.0, (2 * iterations + warmup) * hop / SAMPLE_RATE + 1.0))
    for s, _ in scorers:
        s.framer.push(audio[:SAMPLE_RATE])  # a full window of real audio first
    position, screened = SAMPLE_RATE, 0

    def one_window(every_member: bool) -> None:
        nonlocal position, screened
        chunk = audio[position:position + hop]
        position += hop
        alone = True
        for s, s_limit in scorers:
            s.framer.push(chunk)
            # probabilities on the CPU: waits for a GPU
            alone &= s.screened_probs(s.framer.stream_samples, 0.0 if every_member else s_limit)[1]
        screened += alone

    def timed(every_member: bool) -> tuple[np.ndarray, float, float]:
        times = np.empty(iterations)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for i in range(iterations):
            started = time.perf_counter()
            one_window(every_member)
            times[i] = (time.perf_counter() - started) * 1000
        return times, time.process_time() - cpu0, time.perf_counter() - wall0

    for _ in range(warmup):
        one_window(True)
    full, full_cpu_s, full_wall_s = timed(True) if members > 1 else (None, 0.0, 0.0)  # limit 0: none screened
    times, cpu_s, wall_s = timed(False)
    median, p99 = float(np.median(times)), float(np.percentile(times, 99))
    cpu_percent = cpu_s / iterations / (hop / SAMPLE_RATE) * 100
    full_median = float(np.median(full)) if full is not None else median
    result = {
        "model": getattr(net, "source", str(model)),
        "architecture": net.name,
        "base_model": beside.model.name if beside is not None else None,  # timed beside it, as listen runs it
        "runtime": scorer.runtime,
        "device": scorer.device,
        "threads": max(1, threads),
        "hop_ms": hop * 1000 / SAMPLE_RATE,
        "iterations": iterations,
        "window_ms_median": round(median, 3),
        "window_ms_p99": round(p99, 3),
        "window_ms_mean": round(float(times.mean()), 3),
        "cpu_percent": round(cpu_percent, 2),
        "hop_percent": round(median / (hop * 1000 / SAMPLE_RATE) * 100, 2),
        # screening (an ensemble in the onnx runtime): windows its first member scored alone, and the
        # windows' cost when every member runs (a keyword being said; the verdict is on this)
        "members": members,
        "screened_percent": round(100 * screened / iterations, 1),
        "window_ms_every_member_median": round(full_median, 3),
        "every_member_cpu_percent": round(full_cpu_s / iterations / (hop / SAMPLE_RATE) * 100, 2)
        if full is not None else round(cpu_percent, 2),
        "wall_s": round(wall_s + full_wall_s, 3),
        "runtime_version": _runtime_version(scorer.runtime),
    }
    result["verdict"] = verdict(result)
    return result


def _runtime_version(runtime: str) -> str:
    import importlib.metadata

    package = "onnxruntime" if runtime == "onnx" else "torch"
    try:
        return f"{package} {importlib.metadata.version(package)}"
    except importlib.metadata.PackageNotFoundError:  # onnxruntime-gpu and the like
        return package


def verdict(r: dict) -> str:
    """One line: OK, WARNING or TOO SLOW, with the figures that decide it."""
    full_ms = r.get("window_ms_every_member_median", r["window_ms_median"])
    full_cpu = r.get("every_member_cpu_percent", r["cpu_percent"])
    load = max(r["cpu_percent"], full_cpu, r["hop_percent"], full_ms / r["hop_ms"] * 100)
    figures = f"{full_ms:.1f} ms per {r['hop_ms']:g} ms hop ({full_cpu:.0f}% of one core)"
    if load > 100:
        return (f"TOO SLOW: {figures} \u2014 slower than real time, windows will be dropped "
                "(try a larger --hop-ms or a smaller model)")
    if load > WARN_PERCENT:
        return f"WARNING: {figures} \u2014 keeps up, but with little room to spare"
    if r["window_ms_p99"] > r["hop_ms"]:
        return (f"WARNING: {figures}, but 1% of windows take over {r['window_ms_p99']:.0f} ms \u2014 "
                "some windows may be dropped")
    return f"OK: {figures} \u2014 real time with room to spare"


def format_report(r: dict) -> str:
    return "\n".join([
        f"model:    {r['model']} ({r['architecture']}) on {r['device']} in the {r['runtime']} runtime, "
        f"{r['threads']} thread(s), hop {r['hop_ms']:g} ms",
        *([f"beside:   its base model ({r['base_model']}), scored on every hop too, as listen runs them"]
          if r.get("base_model") else []),
        f"window:   median {r['window_ms_median']:.2f} ms, p99 {r['window_ms_p99']:.2f} ms "
        f"(incremental features + model, batch 1; {r['iterations']} windows)",
        f"CPU:      {r['cpu_percent']:.1f}% of one core at this hop (features + model; reading and resampling "
        "the audio come on top)",
        *([f"screened: {r['screened_percent']:.0f}% of these windows by the first of {r['members']} members "
           + ("of each model " if r.get("base_model") else "") +
           f"(speech with no keyword: nearly all); every member on every window: median "
           f"{r['window_ms_every_member_median']:.2f} ms, {r['every_member_cpu_percent']:.1f}% of one core"]
          if r.get("members", 1) > 1 else []),
        r["verdict"],
    ])
