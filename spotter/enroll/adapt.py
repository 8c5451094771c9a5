"""Adapt a trained model to one user: fine-tune on their takes, keep what it knew, re-tune its detector.

:func:`adapt` splits the takes (one take of each keyword with two or more is held back: it is
never trained on, and is what the detector is tuned and the result scored on), then fine-tunes
the model for a fixed number of steps on batches of

* the user's takes of each keyword, strongly augmented: shifted +-100 ms, gain, speed, the
  user's room noise, generated noise (white, pink, brown, hum), babble made by overlapping the
  user's own keyword-free speech and babble of other voices (:func:`other_voices_babble`, shipped
  with the package), at 0-20 dB over the word, SpecAugment;
* 1 s crops of the user's keyword-free speech (label ``unknown``) and of noise (``silence``),
  on which the loss also asks for the base model's own softened probabilities (distillation:
  the model keeps what it knew about speech that is not a keyword);

with the parameters pulled towards their starting values (L2-SP), BatchNorm statistics frozen.
``trainable="all"`` (the default) trains the whole network at a small learning rate;
``"head"`` only each network's classifier layers (docs/enrollment.md has the measurement). Then the
detector's threshold is re-chosen on a stream of the held-back takes and the user's speech, and
the base and adapted spotters are both scored on it (the before/after figures); with one take of each
keyword nothing is held back and the threshold is the top of the grid. The adapted model keeps its base
model beside it (:mod:`spotter.guard`): the base model's detections stand too, and it vetoes the adapted
model's when it is sure of another keyword, so that other voices lose nothing; and the user's voice model
(:mod:`spotter.voice`, adapted to the training takes and the speech), so that in the user's own voice the
adapted model decides alone.
"""

from __future__ import annotations

import copy
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..config import SAMPLE_RATE, SILENCE, UNKNOWN, keywords_of
from ..data import noise as noise_gen
from ..detector import DetectorConfig, detector_from_meta
from ..guard import BaseBeside
from ..voice import background as background_voice
from ..training.augment import NoiseMixer, random_gain, spec_augment, speed_perturb, time_shift
from .profile import Enrollment, EnrollmentError, Take

#: Thresholds the re-tuned detector may take (its score, smoothing and count stay the base model's). An
#: enrolled model is sure of its user's keywords: its held-back takes peak near 1, and at the top of this
#: grid it stays quiet in their keyword-free speech (docs/experiments.md, "The enrolled threshold").
THRESHOLDS = (0.8, 0.84, 0.88, 0.92, 0.96)
TRAINABLE = ("head", "all")


@dataclass(frozen=True)
class AdaptConfig:
    """How enrollment fine-tunes (defaults: measured, docs/enrollment.md)."""

    steps: int = 150
    batch_size: int = 48
    trainable: str = "all"
    lr: float = 3e-4
    distill_weight: float = 0.5
    temperature: float = 2.0
    anchor: float = 1e-3  # L2-SP: weight of the squared distance to the starting parameters
    babble: bool = True  # also mix babble made from the user's own speech under the takes
    other_babble: bool = True  # and babble of other voices (the shipped babble.flac)
    snr_db: tuple[float, float] = (0.0, 20.0)
    max_seconds: float = 300.0  # a safety net on a very slow machine only: below it the steps are fixed
    seed: int = 0

    def __post_init__(self) -> None:
        if self.trainable not in TRAINABLE:
            raise ValueError(f"trainable {self.trainable!r}: one of {', '.join(TRAINABLE)}")


@dataclass
class AdaptResult:
    model: object
    detector: DetectorConfig
    report: dict


def split_takes(enrollment: Enrollment, seed: int = 0) -> tuple[dict[str, list[Take]], dict[str, list[Take]]]:
    """(training takes, held-back takes): one take of each keyword with two or more is held back."""
    rng = np.random.default_rng(seed)
    train, held = {}, {}
    for keyword, takes in enrollment.takes.items():
        order = list(rng.permutation(len(takes)))
        held[keyword] = [takes[i] for i in order[:1]] if len(takes) >= 2 else []
        train[keyword] = [takes[i] for i in (order[1:] if len(takes) >= 2 else order)]
    return train, held


def generated_noise(seconds: float, seed: int) -> list[np.ndarray]:
    """Noise of the kinds a room has, generated: white, pink, brown, mains hum (16 kHz)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    return [noise_gen.unit_rms(x) for x in (noise_gen.white(n, rng), noise_gen.pink(n, rng), noise_gen.brown(n, rng),
                                            noise_gen.hum(n, SAMPLE_RATE, 50.0, rng))]


def other_voices_babble() -> np.ndarray:
    """The shipped babble of other voices (``spotter/enroll/babble.flac``: six overlapped piper and festival
    talkers, made by scripts/make_enroll_babble.py), 16 kHz float, unit RMS."""
    from importlib.resources import files

    import soundfile as sf

    x, sr = sf.read(str(files("spotter.enroll") / "babble.flac"), dtype="float32")
    if sr != SAMPLE_RATE or x.ndim != 1:
        raise EnrollmentError(f"spotter/enroll/babble.flac: {sr} Hz, {x.ndim} dimensions; reinstall spotter")
    return noise_gen.unit_rms(x).astype(np.float32)


def speech_babble(speech: list[np.ndarray], seconds: float, seed: int) -> list[np.ndarray]:
    """Babble (several overlapped talkers) made from the user's keyword-free speech, cut in 2 s pieces."""
    pieces = [x[i:i + 2 * SAMPLE_RATE] for x in speech for i in range(0, len(x) - SAMPLE_RATE, 2 * SAMPLE_RATE)]
    pieces = [p for p in pieces if np.sqrt(np.mean(p**2)) > 10 ** (-50 / 20)]  # speech, not a quiet room
    if not pieces:
        return []
    rng = np.random.default_rng(seed)
    return [noise_gen.babble(pieces, int(seconds * SAMPLE_RATE), rng, talkers=4).astype(np.float32)]


def _crops(recordings: list[np.ndarray], count: int, rng: np.random.Generator, samples: int) -> np.ndarray:
    """``count`` random crops of ``samples`` (the model's window) of ``recordings`` (shorter ones padded)."""
    out = np.zeros((count, samples), dtype=np.float32)
    for i in range(count):
        x = recordings[int(rng.integers(len(recordings)))]
        if len(x) <= samples:
            out[i, : len(x)] = x
        else:
            start = int(rng.integers(len(x) - samples))
            out[i] = x[start:start + samples]
    return out


def _members(net) -> list:
    return list(net.members) if hasattr(net, "members") else [net]


def _set_trainable(model, trainable: str) -> list[torch.nn.Parameter]:
    """Freeze all but what ``trainable`` names; the parameters left to train."""
    for p in model.parameters():
        p.requires_grad_(False)
    parts = [model.net] if trainable == "all" else [getattr(m, "classifier", m) for m in _members(model.net)]
    params = [p for part in parts for p in part.parameters()]
    for p in params:
        p.requires_grad_(True)
    return params


def _augment(x: torch.Tensor, mixer: NoiseMixer, config: AdaptConfig, g: torch.Generator,
             speech: bool) -> torch.Tensor:
    if speech:
        x = speed_perturb(x, 0.9, 1.1, g)
        x = time_shift(x, SAMPLE_RATE // 10, g)
    x = random_gain(x, -12.0, 6.0, g)
    return mixer(x, 0.8 if speech else 1.0, config.snr_db, g, reference="speech")


def fine_tune(base, enrollment: Enrollment, train: dict[str, list[Take]], config: AdaptConfig,
              progress: bool = False):
    """The base model fine-tuned on ``train`` (see the module docstring); the base is left untouched."""
    from tqdm.auto import tqdm

    from ..compute import select_device

    device = select_device("auto")  # a GPU when there is one
    labels = list(base.labels)
    model = copy.deepcopy(base).to(device).eval()  # eval: BatchNorm statistics and dropout stay as trained
    teacher = copy.deepcopy(base).to(device).eval()
    params = _set_trainable(model, config.trainable)
    start = [p.detach().clone() for p in params]
    optimiser = torch.optim.Adam(params, lr=config.lr)
    rng = np.random.default_rng(config.seed)
    g = torch.Generator().manual_seed(config.seed)  # waveform augmentation runs on the CPU
    g_device = torch.Generator(device=device).manual_seed(config.seed)
    positives = [(t.clip, labels.index(k)) for k, takes in train.items() for t in takes]
    pos_x = torch.from_numpy(np.stack([c for c, _ in positives]))
    pos_y = torch.tensor([y for _, y in positives])
    room = list(enrollment.noise) + generated_noise(20.0, config.seed)
    noises = room + (speech_babble(enrollment.speech, 20.0, config.seed) if config.babble else [])
    noises += [other_voices_babble()] if config.other_babble else []
    window = base.frontend.config.window_samples
    mixer = NoiseMixer([torch.from_numpy(n) for n in noises], window)
    n_pos = config.batch_size // 2
    n_speech = config.batch_size // 3 if enrollment.speech else 0
    n_silence = config.batch_size - n_pos - n_speech
    unknown, silence = labels.index(UNKNOWN), labels.index(SILENCE)
    started = time.perf_counter()
    steps = 0
    bar = tqdm(total=config.steps, desc="adapting", unit="step", disable=not progress, leave=False)
    for step in range(config.steps):
        if time.perf_counter() - started > config.max_seconds:
            break
        pick = torch.from_numpy(rng.integers(len(positives), size=n_pos))
        xp = _augment(pos_x[pick], mixer, config, g, speech=True)
        quiet = torch.from_numpy(10 ** (-rng.uniform(20, 60, size=(n_silence, 1)) / 20).astype(np.float32))
        negatives = [torch.from_numpy(_crops(room, n_silence, rng, window)) * quiet]  # silence: the room alone, -20..-60 dB
        neg_y = [torch.full((n_silence,), silence)]
        if n_speech:
            speech = torch.from_numpy(_crops(enrollment.speech, n_speech, rng, window))
            negatives.append(_augment(speech, mixer, config, g, speech=False))
            neg_y.append(torch.full((n_speech,), unknown))
        xn = torch.cat(negatives)
        x = torch.cat([xp, xn]).to(device)
        y = torch.cat([pos_y[pick], *neg_y]).to(device)
        with torch.no_grad():
            features = model.frontend(x)
            teacher_logits = teacher.classify(features[n_pos:])
        features = spec_augment(features, 2, 7, 2, 10, g_device)
        logits = model.classify(features)
        loss = F.cross_entropy(logits, y)
        if config.distill_weight > 0:
            t = config.temperature
            kd = F.kl_div(F.log_softmax(logits[n_pos:] / t, -1), F.log_softmax(teacher_logits / t, -1),
                          log_target=True, reduction="batchmean") * t * t
            loss = (1 - config.distill_weight) * loss + config.distill_weight * kd
        if config.anchor > 0:
            loss = loss + config.anchor * sum(((p - p0) ** 2).sum() for p, p0 in zip(params, start))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        steps += 1
        bar.update(1)
    bar.close()
    for p in model.parameters():
        p.requires_grad_(False)
    return model.cpu().eval(), {"steps": steps, "seconds": round(time.perf_counter() - started, 1)}


def _stream(held: dict[str, list[Take]], speech: list[np.ndarray], room: list[np.ndarray], folder: Path,
            seed: int) -> Path:
    """A WAV (with its labels CSV) of the held-back takes and the user's speech over their room."""
    import soundfile as sf

    from ..data.labels import LabelEvent, write_labels

    rng = np.random.default_rng(seed)
    pieces, events, t = [], [], 0
    items = [("kw", k, take.clip, take.word_s) for k, takes in held.items() for take in takes]
    items += [("speech", "speech", x, 0.0) for x in speech]
    for kind, label, x, word_s in [items[i] for i in rng.permutation(len(items))]:
        gap = int(rng.uniform(1.0, 2.0) * SAMPLE_RATE)
        pieces += [np.zeros(gap, np.float32), x.astype(np.float32)]
        t += gap
        if kind == "kw":
            mid = t + len(x) / 2
            events.append(LabelEvent(label, (mid - word_s * SAMPLE_RATE / 2) / SAMPLE_RATE,
                                     (mid + word_s * SAMPLE_RATE / 2) / SAMPLE_RATE, label))
        else:
            events.append(LabelEvent("speech", t / SAMPLE_RATE, (t + len(x)) / SAMPLE_RATE, "(own speech)"))
        t += len(x)
    pieces.append(np.zeros(SAMPLE_RATE, np.float32))
    stream = np.concatenate(pieces)
    bed = np.concatenate(room) if room else np.zeros(1, np.float32)
    bed = np.resize(bed, len(stream)) * 10 ** (-40 / 20) / max(1e-6, float(np.sqrt(np.mean(bed**2))))
    stream = np.clip(stream + bed.astype(np.float32), -1, 1)
    path = folder / "held-back.wav"
    sf.write(str(path), stream, SAMPLE_RATE, subtype="FLOAT")
    write_labels(path.with_suffix(".csv"), events)
    return path


def stream_score(stream, labels, detector: DetectorConfig) -> dict:
    """Keywords found, named wrong and missed, and false alarms, of ``detector`` over stored posteriors."""
    from ..evaluation.tuning import detections_of

    return detections_score(detections_of(stream, labels, detector), stream, labels)


def detections_score(detections, stream, labels) -> dict:
    """:func:`stream_score` of detections made otherwise (e.g. with the base model beside, spotter.guard)."""
    from ..evaluation.streams import score_stream

    score = score_stream(detections, stream.labels, stream.duration_s, keywords=keywords_of(labels))
    return {k: v for k, v in score.to_dict().items()
            if k in ("recall", "matched", "keywords", "wrong", "missed", "false_alarms")}


def _at(detector: DetectorConfig, threshold: float) -> DetectorConfig:
    """``detector`` with one threshold for every keyword."""
    return replace(detector, threshold=threshold, thresholds={})


def retune(stream, labels, base_detector: DetectorConfig) -> DetectorConfig:
    """The highest threshold (from :data:`THRESHOLDS`) that finds the most held-back keywords while neither
    it nor the next lower one fires on the user's speech (a margin), else the top; the base detector's
    other settings kept. The highest, because enrollment's 30 s of speech are too few to show the false
    alarms of a lower one: the enrolled model scores its user's other syllables as keywords more often
    than the base model."""
    from ..evaluation.tuning import grid_search

    configs = [_at(base_detector, t) for t in THRESHOLDS]
    rows = {r["config"].threshold: r for r in grid_search([stream], labels, configs, 0.75, 1e9)}
    quiet = [t for lower, t in zip((None, *THRESHOLDS), THRESHOLDS)
             if rows[t]["false_alarms"] == 0 and (lower is None or rows[lower]["false_alarms"] == 0)]
    # the most takes found, then the highest; when every threshold fires on the speech, the top (it fires least)
    best = max(quiet, key=lambda t: (rows[t]["recall"], t)) if quiet else max(THRESHOLDS)
    return _at(base_detector, best)


def adapt(base, enrollment: Enrollment, config: AdaptConfig = AdaptConfig(), progress: bool = False) -> AdaptResult:
    """Fine-tune ``base`` on ``enrollment`` and re-tune its detector (module docstring); nothing is written."""
    unknown = [k for k in enrollment.keywords if k not in base.labels]
    if unknown:
        raise EnrollmentError(f"{', '.join(unknown)}: not a keyword of {base.name} ({', '.join(base.labels)})")
    torch.manual_seed(config.seed)
    train, held = split_takes(enrollment, config.seed)
    model, facts = fine_tune(base, enrollment, train, config, progress)
    base_detector = detector_from_meta(getattr(base, "meta", {}), source=base.name)
    report = {"trainable": config.trainable, "steps": facts["steps"], "train_seconds": facts["seconds"],
              "takes": enrollment.counts(), "held_back": {k: len(v) for k, v in held.items() if v},
              "speech_s": round(sum(len(x) for x in enrollment.speech) / SAMPLE_RATE, 1),
              "room_s": round(sum(len(x) for x in enrollment.noise) / SAMPLE_RATE, 1)}
    # nothing held back (one take of each keyword): the top of the grid, unchecked; on the selection persons'
    # 1-take models, what the re-tune's margin gives the worse of them (docs/experiments.md, "One take")
    detector = _at(base_detector, max(THRESHOLDS))
    if any(held.values()):
        with tempfile.TemporaryDirectory() as tmp:
            from ..evaluation.tuning import stream_posteriors

            wav = _stream(held, enrollment.speech, enrollment.noise, Path(tmp), config.seed)
            before, after = (stream_posteriors(m, wav, batched=True) for m in (base, model))  # each model once
            detector = retune(after, model.labels, base_detector)
            report["before"] = stream_score(before, base.labels, base_detector)
            report["after"] = stream_score(after, model.labels, detector)
    # the base model beside it: the one enrolled, or the one beside that when it was itself an enrolled model;
    # with the user's voice (their training takes and speech), so that their windows are this model's alone
    root = getattr(base, "guard", None)
    voice = background_voice().adapted([t.clip for takes in train.values() for t in takes] + list(enrollment.speech))
    model.guard = BaseBeside(*((root.model, root.detector) if root else (base, base_detector)), voice=voice,
                             voice_keywords=tuple(enrollment.keywords))
    model.meta = {**getattr(base, "meta", {}), "detector": detector.to_meta(), "guard": model.guard.guard_meta()}
    return AdaptResult(model, detector, report)

