"""The onnx runtime: exported graphs (``spotter export``) scored with ONNX Runtime, no torch imported.

:func:`load_exported` opens a model's graphs and reads the checkpoint's facts from their metadata
(labels, front end, detector settings); :class:`ExportedModel` scores whole windows with the whole
graph, and gives the streaming engine (:class:`spotter.pipeline.Engine`) an
:class:`ExportedWindowScorer` that runs the streaming form hop by hop. :func:`open_exported` is
what ``--runtime`` decides. The graphs' layout is described in :mod:`spotter.export`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .config import RUNTIMES, FrontendConfig
from .detector import screen_members
from .errors import SpotterError
from .framing import WindowFramer

FORMAT = "spotter-onnx"
VERSION = 1
ONNX_SUFFIX = ".onnx"


class ExportedModelError(SpotterError):
    """An exported graph that cannot be used, or a runtime that cannot run; the message says why."""


def stream_path(path: str | os.PathLike, form: str = ".stream") -> Path:
    """The streaming form's file beside a whole-classifier graph: ``X.onnx`` -> ``X.stream.onnx``
    (``form`` ``.screen``, ``.rest``: the screening pair's files)."""
    path = Path(path)
    return path.with_name(path.name[: -len(ONNX_SUFFIX)] + form + ONNX_SUFFIX)


def screen_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """An ensemble's screening pair beside its whole graph: ``X.screen.onnx`` (the first member's
    streaming form) and ``X.rest.onnx`` (the other members); see :mod:`spotter.export`."""
    return stream_path(path, ".screen"), stream_path(path, ".rest")


def base_path(path: str | os.PathLike) -> Path:
    """An enrolled model's base model's graphs beside its own: ``X.onnx`` -> ``X.base.onnx`` (its own
    streaming form and screening pair beside that, :mod:`spotter.guard`)."""
    return stream_path(path, ".base")


def graph_beside(checkpoint: str | os.PathLike) -> Path:
    """Where a checkpoint's exported graph lives: ``X.pt`` -> ``X.onnx``."""
    return Path(checkpoint).with_suffix(ONNX_SUFFIX)


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _ort():
    try:
        import onnxruntime
    except ImportError:
        raise ExportedModelError("the onnx runtime needs onnxruntime: pip install 'spotter[onnx]' "
                                 "(or listen with --runtime torch)") from None
    return onnxruntime


def _session(path: Path, threads: int, providers: list[str] | None):
    ort = _ort()
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)  # batch-1 windows: more threads only add overhead
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    try:
        return ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001 - ORT raises its own types for damaged files
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ExportedModelError(f"exported graph {path}: not a usable ONNX graph ({first[:200]}); "
                                 "export it again with: spotter export CKPT --onnx OUT.onnx") from None


class ExportedFrontend:
    """The front end's settings as the streaming engine asks for them (``model.frontend.config``)."""

    def __init__(self, config: FrontendConfig) -> None:
        self.config = config


class ExportedModel:
    """A model's exported graphs: the checkpoint's facts, whole windows scored, and the streaming form."""

    runtime = "onnx"

    def __init__(self, path: Path, threads: int = 1, providers: list[str] | None = None) -> None:
        self.source = str(path)
        self.session = _session(path, threads, providers)
        info = self.session.get_modelmeta().custom_metadata_map
        if info.get("spotter_format") != FORMAT:
            raise ExportedModelError(f"exported graph {path}: not a spotter export (no '{FORMAT}' metadata); "
                                     "export a checkpoint with: spotter export CKPT --onnx OUT.onnx")
        if int(info.get("version", "0")) > VERSION:
            raise ExportedModelError(f"exported graph {path}: format version {info['version']} is newer than this "
                                     f"spotter ({VERSION}); upgrade spotter")
        try:
            self.name = info["model"]
            self.labels = tuple(json.loads(info["labels"]))
            self.frontend = ExportedFrontend(FrontendConfig.from_dict(json.loads(info["frontend"])))
            self.meta = json.loads(info.get("meta", "{}"))
            self.edge, self.n_inner = int(info["edge"]), int(info["n_inner"])
        except (KeyError, ValueError, TypeError) as err:
            raise ExportedModelError(f"exported graph {path}: damaged metadata ({type(err).__name__}: {err}); "
                                     "export it again") from None
        self.checkpoint_sha256 = info.get("checkpoint_sha256", "")
        self.stream_file = stream_path(path)
        if not self.stream_file.is_file():
            raise ExportedModelError(f"exported graph {path}: its streaming form {self.stream_file.name} is missing "
                                     "beside it; export again with: spotter export CKPT --onnx OUT.onnx")
        self.stream_session = _session(self.stream_file, threads, providers)
        self.device = "cuda" if "CUDAExecutionProvider" in self.session.get_providers() else "cpu"
        self.screen_sessions, self.members = self._screening_pair(path, threads, providers)
        self.guard = None
        if "guard" in self.meta:  # an enrolled model: its base model's graphs beside (spotter.guard)
            from .detector import DetectorConfigError
            from .guard import base_beside

            base = base_path(path)
            if not base.is_file():
                raise ExportedModelError(f"exported graph {path}: the graph of the base model it keeps, {base.name}, "
                                         "is missing beside it; export again with: spotter export CKPT --onnx OUT.onnx")
            try:
                self.guard = base_beside(ExportedModel(base, threads, providers), self.meta["guard"], str(base))
            except DetectorConfigError as err:
                raise ExportedModelError(f"exported graph {path}: {err}") from None

    def _screening_pair(self, path: Path, threads: int, providers: list[str] | None):
        """An ensemble's screen and rest graphs (:mod:`spotter.export`) and its number of members, when
        both lie beside the whole graph and come from the same checkpoint; else (None, 1): every window
        then runs every member."""
        files = screen_paths(path)
        if not all(f.is_file() for f in files):
            return None, 1
        sessions = tuple(_session(f, threads, providers) for f in files)
        infos = [s.get_modelmeta().custom_metadata_map for s in sessions]
        if any(i.get("checkpoint_sha256") != self.checkpoint_sha256 or i.get("labels") != json.dumps(list(self.labels))
               for i in infos):
            return None, 1  # left over from another export: not this model's members
        return sessions, int(infos[0].get("members", "2"))

    def probs(self, waveforms: np.ndarray) -> np.ndarray:
        """Class probabilities ``(B, classes)`` of windows ``(B, frontend.config.window_samples)`` (the whole graph)."""
        return self.session.run(["probs"], {"waveform": np.ascontiguousarray(waveforms, dtype=np.float32)})[0]

    def window_scorer(self, max_lag: int, screen: bool = True) -> "ExportedWindowScorer":
        return ExportedWindowScorer(self, max_lag, screen)


class ExportedWindowScorer:
    """The onnx runtime's per-window work for the streaming engine: the frames a window still needs
    (:class:`WindowFramer`), then the streaming graph with its cache of inner log-Mel frames.

    With ``screen`` and a model whose screening pair was exported, windows go through the first
    member's streaming graph and the other members' graph after it: :meth:`probs` runs both (the
    ensemble's probabilities), :meth:`screened_probs` runs the others only when the first member's
    keyword probability reaches a limit (:func:`spotter.detector.screen_limit`)."""

    runtime = "onnx"

    def __init__(self, model: ExportedModel, max_lag: int, screen: bool = True) -> None:
        from .config import keyword_indices

        cfg = model.frontend.config
        self.framer = WindowFramer(cfg.n_fft, cfg.hop_length, cfg.window_samples, max_lag)
        if (self.framer.edge, self.framer.n_inner) != (model.edge, model.n_inner):
            raise ExportedModelError(f"exported graph {model.source}: its frame layout ({model.edge}, {model.n_inner}) "
                                     "does not match this spotter's; export it again")
        self.session = model.stream_session
        self.screen, self.rest = (model.screen_sessions if screen and model.screen_sessions else (None, None))
        self.members = model.members if self.screen is not None else 1  # 1: no screening
        self.keyword_index = keyword_indices(model.labels)
        self.cache = np.zeros((cfg.n_mels, self.framer.n_inner), dtype=np.float32)
        self.device = model.device
        self.model = model

    def window_probs(self, audio: np.ndarray) -> np.ndarray:
        """Class probabilities of a whole window from its audio (every member; the stream's cache untouched)."""
        return self.model.probs(np.asarray(audio, dtype=np.float32)[None])[0]

    def _frames(self, end: int) -> np.ndarray:
        plan = self.framer.plan(end)
        return np.concatenate([plan.left, plan.right, plan.new])

    def probs(self, end: int) -> np.ndarray:
        """The window's class probabilities, every member run."""
        if self.screen is not None:
            return self.screened_probs(end, 0.0)[0]
        probs, self.cache = self.session.run(["probs", "next_cache"], {"frames": self._frames(end), "cache": self.cache})
        return probs[0]

    def screened_probs(self, end: int, limit: float) -> tuple[np.ndarray, bool]:
        """The ensemble's class probabilities, or the first member's alone (and True) when its keyword
        probability stays below ``limit`` (0: never)."""
        if self.screen is None:
            return self.probs(end), False
        first, self.cache, window = self.screen.run(None, {"frames": self._frames(end), "cache": self.cache})
        return screen_members(first[0], limit, self.keyword_index, self.members,
                              lambda: self.rest.run(None, {"window": window})[0][0])


def load_exported(path: str | os.PathLike, threads: int = 1, device_type: str = "cpu") -> ExportedModel:
    """An exported model from its whole graph's path (``X.onnx``; the streaming form ``X.stream.onnx`` beside it)."""
    path = Path(path)
    if not path.is_file():
        raise ExportedModelError(f"exported graph {path}: no such file")
    providers = None
    if device_type in ("auto", "cuda"):
        available = _ort().get_available_providers()
        if "CUDAExecutionProvider" in available:
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        elif device_type == "cuda":
            raise ExportedModelError("--device-type cuda: this onnxruntime has no CUDA provider "
                                     "(install onnxruntime-gpu, or use --device-type cpu)")
    return ExportedModel(path, threads, providers)


def file_sha256(path: str | os.PathLike) -> str:
    from .data.download import hash_file  # standard library only, like this module

    return hash_file(Path(path)).hexdigest()


def open_exported(model: str | None, runtime: str = "auto", threads: int = 1,
                  device_type: str = "auto") -> ExportedModel | None:
    """The exported model ``--runtime`` asks for, or None when the torch runtime should load the
    checkpoint. ``model`` is a checkpoint path or name, or an exported graph. ``auto``: the graph
    beside the checkpoint (``X.pt`` -> ``X.onnx``) when onnxruntime is installed and that graph was
    exported from this very checkpoint (its sha256), else None."""
    from .locate import resolve

    if runtime not in RUNTIMES:
        raise ExportedModelError(f"--runtime {runtime}: use one of {', '.join(RUNTIMES)}")
    path = resolve(model)
    if path.suffix == ONNX_SUFFIX:
        if runtime == "torch":
            raise ExportedModelError(f"{path} is an exported graph: the torch runtime needs its checkpoint "
                                     "(.pt), or use --runtime onnx")
        return load_exported(path, threads, device_type)
    graph = graph_beside(path)
    if runtime == "torch" or (runtime == "auto" and not (graph.is_file() and onnxruntime_available())):
        return None
    if not graph.is_file():
        raise ExportedModelError(f"--runtime onnx: {path.name} has no exported graph beside it ({graph.name}); "
                                 f"make one with: spotter export {path} --onnx {graph}")
    exported = load_exported(graph, threads, device_type)
    if exported.checkpoint_sha256 != file_sha256(path):
        if runtime == "auto":
            return None
        raise ExportedModelError(f"--runtime onnx: {graph} was not exported from {path} (the checkpoint changed "
                                 f"since); export it again with: spotter export {path} --onnx {graph}")
    return exported
