"""``spotter export``: a checkpoint as ONNX graphs that run without torch (:mod:`spotter.exported`).

Two graphs are written (four for an ensemble), each one file with the checkpoint's facts in its metadata:

* ``OUT.onnx``, **the whole classifier**: ``waveform (B, window)`` -> ``probs (B, classes)``: the
  front end with the checkpoint's own Fourier and Mel bases (nnAudio's convolution), the log,
  the window's normalisation, every ensemble member and the averaging of their probabilities.
  It is what another program embeds.
* ``OUT.stream.onnx``, **the streaming form** that ``spotter listen`` runs: ``frames (N, n_fft)``
  (the audio of the window's edge frames and of the inner frames it has not seen, as
  :class:`spotter.framing.WindowFramer` cuts them) and ``cache (n_mels, inner)`` (the inner log-Mel
  frames so far) -> ``probs (1, classes)`` and the next ``cache``. Per 100 ms hop it computes 14
  frames instead of 101 (measured: about a quarter less time per window on a 2-core x86 CPU).

* for an ensemble, **the screening pair**: ``OUT.screen.onnx``, the first member's streaming form (the
  same inputs; outputs its ``probs``, the ``next_cache`` and the normalised log-Mel ``window``), and
  ``OUT.rest.onnx``, ``window (1, 1, n_mels, frames)`` -> the other members' mean ``probs``. ``listen``
  runs the rest only when the first member's keyword probability could lead to a detection
  (:func:`spotter.detector.screen_limit`): in speech without keywords about one window in a hundred.

Metadata (strings; JSON where structured): ``spotter_format`` ``spotter-onnx``, ``version``, ``graph``
(``whole``, ``stream``, ``screen``, ``rest``), ``model`` (architecture), ``labels``, ``frontend``, ``meta`` (the checkpoint's
meta: detector settings, training facts), ``checkpoint`` (file name) and ``checkpoint_sha256`` (so a
graph that no longer matches its checkpoint is noticed), ``edge`` and ``n_inner`` (the stream's frame
layout), and ``members`` in the screening pair. Every graph is checked against torch right after export
(:func:`verify`).
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import SpotterError
from .exported import FORMAT, VERSION, base_path, file_sha256, screen_paths, stream_path
from .framing import WindowFramer
from .inference import merged_means, stacked
from .model import EnsembleNet, KeywordModel
from .streaming import fourier_mel_bases, frame_log_mel

#: Largest difference in a class probability between an exported graph and torch that export accepts.
TOLERANCE = 1e-4
OPSET = 18


class ExportError(SpotterError):
    """An export that cannot be done; the message says why and what to do."""


class WholeClassifier(nn.Module):
    """``waveform (B, samples)`` -> class probabilities ``(B, classes)``; the ensemble's members stacked,
    each block's frequency average merged into its temporal convolution (:func:`merged_means`)."""

    def __init__(self, model: KeywordModel) -> None:
        super().__init__()
        self.frontend = model.frontend
        self.net = merged_means(stacked(model.net), model.frontend.config.n_mels)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(self.frontend.normalize(self.frontend(waveform))), dim=-1)


class StreamingClassifier(nn.Module):
    """One streamed window: ``(frames, cache)`` -> ``(probs, next cache)``; see the module notes."""

    def __init__(self, model: KeywordModel, edge: int, n_inner: int) -> None:
        super().__init__()
        self.frontend = model.frontend
        self.net = merged_means(stacked(model.net), model.frontend.config.n_mels)
        fourier_t, mel_t = fourier_mel_bases(model.frontend)
        self.register_buffer("fourier_t", fourier_t)
        self.register_buffer("mel_t", mel_t)
        self.edge, self.n_inner = edge, n_inner

    def forward(self, frames: torch.Tensor, cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.edge
        log_mel = frame_log_mel(frames, self.fourier_t, self.mel_t, self.frontend)  # (n_mels, N)
        inner = torch.cat([cache, log_mel[:, 2 * e:]], dim=1)[:, -self.n_inner:]
        window = torch.cat([log_mel[:, :e], inner, log_mel[:, e: 2 * e]], dim=1)[None, None]
        probs = torch.softmax(self.net(self.frontend.normalize(window)), dim=-1)
        return probs, inner


class ScreenClassifier(nn.Module):
    """An ensemble's first member as a streaming form: ``(frames, cache)`` -> ``(probs, next cache,
    window)``, its own class probabilities and the normalised log-Mel window the other members take
    (:class:`RestClassifier`) when the first cannot rule a keyword out (:func:`spotter.detector.screen_limit`)."""

    def __init__(self, model: KeywordModel, edge: int, n_inner: int) -> None:
        super().__init__()
        self.frontend = model.frontend
        self.net = merged_means(model.net.members[0], model.frontend.config.n_mels)
        fourier_t, mel_t = fourier_mel_bases(model.frontend)
        self.register_buffer("fourier_t", fourier_t)
        self.register_buffer("mel_t", mel_t)
        self.edge, self.n_inner = edge, n_inner

    def forward(self, frames: torch.Tensor, cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        e = self.edge
        log_mel = frame_log_mel(frames, self.fourier_t, self.mel_t, self.frontend)  # (n_mels, N)
        inner = torch.cat([cache, log_mel[:, 2 * e:]], dim=1)[:, -self.n_inner:]
        window = self.frontend.normalize(torch.cat([log_mel[:, :e], inner, log_mel[:, e: 2 * e]], dim=1)[None, None])
        return torch.softmax(self.net(window), dim=-1), inner, window


class RestClassifier(nn.Module):
    """An ensemble's other members: the normalised window ``(1, 1, n_mels, frames)`` -> their mean class
    probabilities ``(1, classes)`` (stacked into one network when they line up)."""

    def __init__(self, model: KeywordModel) -> None:
        super().__init__()
        rest = list(model.net.members[1:])
        net = rest[0] if len(rest) == 1 else stacked(EnsembleNet(rest))
        self.net = merged_means(net, model.frontend.config.n_mels)

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(window), dim=-1)


def _metadata(model: KeywordModel, graph: str, framer: WindowFramer) -> dict[str, str]:
    meta = getattr(model, "meta", {})
    if getattr(model, "guard", None) is None:  # guard settings without the base model they need: not carried
        meta = {k: v for k, v in meta.items() if k != "guard"}
    try:
        meta_json = json.dumps(meta)
    except TypeError:  # a value JSON cannot hold: keep what listen needs
        meta_json = json.dumps({"detector": meta.get("detector")} if "detector" in meta else {})
    source = getattr(model, "source", None)
    return {
        "spotter_format": FORMAT, "version": str(VERSION), "graph": graph, "model": model.name,
        "labels": json.dumps(list(model.labels)), "frontend": json.dumps(model.frontend.config.to_dict()),
        "meta": meta_json, "checkpoint": Path(source).name if source else "",
        "checkpoint_sha256": file_sha256(source) if source and Path(source).is_file() else "",
        "edge": str(framer.edge), "n_inner": str(framer.n_inner),
    }


def _save(module: nn.Module, args: tuple, path: Path, input_names: list[str], output_names: list[str],
          dynamic_shapes: tuple, metadata: dict[str, str]) -> None:
    import onnx

    tmp = path.with_name(path.name + ".tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        program = torch.onnx.export(module, args, dynamo=True, input_names=input_names, output_names=output_names,
                                    dynamic_shapes=dynamic_shapes, opset_version=OPSET, verbose=False)
    proto = program.model_proto
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save_model(proto, str(tmp))
    tmp.replace(path)


def export_onnx(model: KeywordModel, out: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``model`` as its whole-classifier graph ``out`` and its streaming form beside it, check
    both against torch (:func:`verify`), and return their paths."""
    try:
        import onnx  # noqa: F401 - torch's exporter needs onnx and onnxscript
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise ExportError(f"spotter export needs the ONNX exporter's packages ({err.name} is missing): "
                          "pip install 'spotter[export]'") from None
    model = model.cpu().eval().requires_grad_(False)
    cfg = model.frontend.config
    if cfg.n_fft != cfg.win_length:
        raise ExportError(f"this model's front end (n_fft {cfg.n_fft}, win_length {cfg.win_length}) cannot stream; "
                          "export needs win_length == n_fft")
    framer = WindowFramer(cfg.n_fft, cfg.hop_length, cfg.window_samples)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    batch = torch.export.Dim("batch", min=1, max=1024)
    _save(WholeClassifier(model), (torch.zeros(2, framer.window),), out, ["waveform"], ["probs"],
          ({0: batch},), _metadata(model, "whole", framer))
    n = torch.export.Dim("frames", min=2 * framer.edge + 1, max=4096)
    example = (torch.zeros(2 * framer.edge + 10, cfg.n_fft), torch.zeros(cfg.n_mels, framer.n_inner))
    streaming = stream_path(out)
    _save(StreamingClassifier(model, framer.edge, framer.n_inner), example, streaming, ["frames", "cache"],
          ["probs", "next_cache"], ({0: n}, None), _metadata(model, "stream", framer))
    if isinstance(model.net, EnsembleNet):
        screen, rest = screen_paths(out)
        extra = {"members": str(len(model.net.members))}
        window = torch.zeros(1, 1, cfg.n_mels, framer.n_frames)
        _save(ScreenClassifier(model, framer.edge, framer.n_inner), example, screen, ["frames", "cache"],
              ["probs", "next_cache", "window"], ({0: n}, None), {**_metadata(model, "screen", framer), **extra})
        _save(RestClassifier(model), (window,), rest, ["window"], ["probs"], None,
              {**_metadata(model, "rest", framer), **extra})
    else:
        for stale in screen_paths(out):  # another model's pair must not stay beside this one
            stale.unlink(missing_ok=True)
    beside = getattr(model, "guard", None)
    if beside is not None:  # an enrolled model: its base model's graphs beside (spotter.guard)
        export_onnx(beside.model, base_path(out))
    else:
        base = base_path(out)
        for stale in (base, stream_path(base), *screen_paths(base)):
            stale.unlink(missing_ok=True)
    verify(model, out)
    return out, streaming


def verify(model: KeywordModel, path: str | os.PathLike, seconds: float = 3.0) -> float:
    """The largest probability difference between the exported graphs at ``path`` and ``model`` on
    a few windows of noise bursts streamed hop by hop; :class:`ExportError` above :data:`TOLERANCE`."""
    from .exported import load_exported

    window_samples, hop = model.frontend.config.window_samples, 1600
    rng = np.random.default_rng(0)
    bursts = np.repeat(rng.uniform(0, 0.3, int(seconds * 10)), hop)  # a new level every hop
    audio = rng.standard_normal(bursts.size) * bursts
    audio = audio.astype(np.float32)
    exported = load_exported(path)
    scorers = [exported.window_scorer(max_lag=hop, screen=False)]  # the streaming form
    if exported.screen_sessions:
        scorers.append(exported.window_scorer(max_lag=hop, screen=True))  # the screening pair, both run
    padded = np.concatenate([np.zeros(window_samples, np.float32), audio])  # the stream starts after silence
    worst = 0.0
    for end in range(hop, audio.size + 1, hop):
        window = padded[end: end + window_samples]
        with torch.inference_mode():
            want = torch.softmax(model(torch.from_numpy(window)[None]), dim=-1)[0].numpy()
        for scorer in scorers:
            scorer.framer.push(audio[end - hop: end])
            worst = max(worst, float(np.abs(scorer.probs(end) - want).max()))
        worst = max(worst, float(np.abs(exported.probs(window[None])[0] - want).max()))
    if worst > TOLERANCE:
        raise ExportError(f"{path}: the exported graph differs from torch by {worst:.2g} in a probability "
                          f"(more than {TOLERANCE:g}); not usable")
    return worst
