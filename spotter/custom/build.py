"""`spotter custom`: a spotter of the user's own words, made offline from text.

:func:`build_custom` runs six steps in a work folder, each skipped when its result is already there
(so an interrupted run resumes where it stopped):

1. ``corpus/``: a corpus in Speech Commands layout (:func:`~spotter.data.synth.synthesize_corpus`) of the
   keywords, their :func:`~spotter.custom.phrases.confusables` and a few other words, said by voices of
   every English engine there is (espeak-ng, piper, festival's ked; pico, mbrola and rhvoice where they
   are installed: :func:`corpus_engines`), whole voices held out for
   validation and test; clips of :data:`MAX_WINDOW_S`, so that a long phrase fits;
2. ``corpus/speech/``: crops of keyword-free sentences said by the training voices (``unknown``);
3. ``world/``: new training voices, WORLD-vocoder conversions of training voices
   (:func:`~spotter.data.vocode.make_world_corpus`: other pitch, vocal tract, envelope detail, breathiness;
   :data:`WORLD_SHARE` of ``--voices``), joined to the corpus in ``train/``; skipped, and said so, when
   ``pyworld`` is not installed;
4. ``run/``: training (:func:`~spotter.training.run.run_train`) with the shipped config ``custom.yaml``
   (the main recipe's augmentation), the keywords as the classes, the window the longest keyword needs
   (:func:`choose_window`: 1 s for words, up to 1.5 s for a long phrase, cut from the clips' middle),
   starting from the shipped network's weights (:func:`choose_base`, :data:`BASE_SCHEDULE`);
5. ``streams/``: a stream of the validation voices' keywords, confusables and sentences, and one of
   their keyword-free speech (:func:`~spotter.data.stream.make_stream`);
6. the detector tuned on those streams (:func:`~spotter.custom.tune.choose_detector`: the worst
   keyword's recall within the false-alarm budget on speech and at most one confusable in twenty
   firing, then keyword thresholds of their own), and the checkpoint written to ``out`` (atomically)
   with its labels, detector and ``meta["custom"]``: keywords, confusables, voices, epochs, window,
   figures.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import SAMPLE_RATE
from ..errors import SpotterError
from .phrases import check_phrases, confusables

#: Words of Speech Commands said as further "unknown" words (none sounds like a usual custom phrase).
OTHER_WORDS = ("backward", "bird", "follow", "happy", "house", "learn", "marvin", "sheila", "visual", "wow")
#: English engines and festival's English voice: a custom phrase is said as written.
ENGINES = ("espeak", "piper", "festival")
#: English engines used as well where they are installed (``scripts/install_tts.sh --more-voices``).
MORE_ENGINES = ("pico", "mbrola", "rhvoice")
FESTIVAL_VOICES = ("ked",)
CONFIG = "custom.yaml"
#: The longest window a custom model has (seconds), and so the length of its corpus's clips.
MAX_WINDOW_S = 1.5
CORPUS_CLIP_SAMPLES = int(MAX_WINDOW_S * SAMPLE_RATE)
#: Room around a keyword in its window: the clips' placement jitter (+-0.1 s) on either side.
WINDOW_MARGIN_S = 0.2
#: A keyword's sound: its 10 ms frames within this many dB of the clip's loudest.
SPOKEN_RANGE_DB = 40.0
#: The share of a keyword's clips whose length sets the window (the rest are a little cut at the edges).
WINDOW_QUANTILE = 0.9


#: How a network that starts from a trained model's weights (``--base``) is trained: a lower peak learning
#: rate and a short warm-up, as the main recipe's fine-tunes (the new keywords' output rows start fresh).
BASE_SCHEDULE = {"lr": 0.02, "warmup_epochs": 1}
#: WORLD voices made from the training voices, as a share of ``--voices`` (60 for 300: the worst keyword's
#: recall on held-out voices rose with two seeds; docs/experiments.md).
WORLD_SHARE = 0.2


@dataclass(frozen=True)
class CustomPlan:
    """What :func:`build_custom` makes, and where."""

    keywords: tuple[str, ...]
    out: Path
    work: Path
    voices: int = 200  # clips of each word, each from another voice
    epochs: int = 30
    model: str | None = None  # the architecture; None: custom.yaml's
    base: str | None = None  # the checkpoint training starts from (:func:`choose_base`); None: random weights
    seed: int = 0
    max_fa_per_hour: float = 1.0
    accelerator: str = "auto"
    progress: bool = True
    confusables: dict[str, list[str]] = field(default_factory=dict)
    world_voices: int | None = None  # WORLD voices to add (None: :data:`WORLD_SHARE` of voices, if pyworld is there)
    engines: tuple[str, ...] = ENGINES  # the engines whose voices say the corpus (:func:`corpus_engines`)

    def __post_init__(self) -> None:
        if self.voices < 10 or self.epochs < 1:
            raise SpotterError("--voices must be at least 10 (whole voices are held out for tuning) and --epochs "
                               "at least 1")
        if self.world_voices is not None and self.world_voices < 0:
            raise SpotterError(f"--world-voices {self.world_voices}: 0 (none) or more")

    @property
    def world_count(self) -> int:
        """How many WORLD voices the corpus gets."""
        return int(round(self.voices * WORLD_SHARE)) if self.world_voices is None else self.world_voices

    @property
    def speech_crops(self) -> int:
        """Crops of keyword-free sentences (``unknown``): as many as the keywords' clips, 100 to 1,500."""
        return int(min(1500, max(100, self.voices * len(self.keywords))))

    @property
    def stream_minutes(self) -> tuple[float, float]:
        """Minutes of the validation streams: keywords among other words and sentences; keyword-free speech."""
        minutes = min(10.0, max(1.0, self.voices / 20))
        return minutes, 2 * minutes

    @property
    def words(self) -> tuple[str, ...]:
        other = [w for w in OTHER_WORDS if w not in self.keywords]
        return tuple(dict.fromkeys([*self.keywords, *(c for cs in self.confusables.values() for c in cs), *other]))


def choose_base(base: str | None, model: str | None) -> str | None:
    """The checkpoint a custom model of architecture ``model`` (None: custom.yaml's) starts from, for
    ``--base``: ``auto`` (or None): the shipped model when its networks are that architecture, else none;
    ``none``: random weights; anything else: that checkpoint, which must be of that architecture."""
    from ..checkpoint import read_checkpoint
    from ..locate import DEFAULT_MODEL, CheckpointError, resolve
    from ..model import member_names
    from ..training.options import load_config

    wanted = model or load_config(CONFIG)["model"]
    if base is not None and base.lower() == "none":
        return None
    explicit = base is not None and base.lower() != "auto"
    try:
        path = resolve(base if explicit else DEFAULT_MODEL)
        theirs = member_names(read_checkpoint(path).get("model", ""))[0]
    except CheckpointError:
        if explicit:
            raise
        return None  # no shipped model here: random weights
    if theirs == wanted:
        return str(path)
    if explicit:
        raise SpotterError(f"--base {base}: a {theirs} network cannot start a {wanted} model; give --model {theirs}, "
                           "another --base, or --base none")
    return None


def corpus_engines() -> tuple[str, ...]:
    """The engines a custom corpus is said by: :data:`ENGINES` and those of :data:`MORE_ENGINES` installed here."""
    from ..data.tts import available_engines

    have = available_engines()
    return ENGINES + tuple(e for e in MORE_ENGINES if e in have)


def plan(phrases, out, work=None, base: str | None = "auto", **options) -> CustomPlan:
    """The plan for ``phrases`` (checked: :class:`~spotter.custom.phrases.PhraseError`), their confusables
    found, the checkpoint it starts from (:func:`choose_base`); nothing is written."""
    keywords = check_phrases(phrases)
    out = Path(out)
    if out.suffix != ".pt":
        raise SpotterError(f"--out {out}: a checkpoint file name ending in .pt")
    if options.get("world_voices"):
        from ..data.vocode import load_pyworld

        load_pyworld()  # asked for WORLD voices: the install hint now, before anything is made
    found = {k: confusables(k, keywords) for k in keywords}
    work = Path(work) if work else out.with_name(out.stem + "-work")
    options.setdefault("engines", corpus_engines())
    return CustomPlan(keywords, out, work, confusables=found, base=choose_base(base, options.get("model")), **options)


def spoken_seconds(corpus: Path, keyword: str) -> list[float]:
    """How long ``keyword`` lasts in each of its corpus clips: from the first to the last 10 ms frame within
    :data:`SPOKEN_RANGE_DB` of the clip's loudest (a vocoder's faint tail and breath are not the word)."""
    import soundfile as sf

    from ..enroll.takes import FRAME, frame_db

    out = []
    for path in sorted((corpus / keyword).glob("*.wav")):
        db = frame_db(sf.read(str(path), dtype="float32")[0])
        loud = np.flatnonzero(db > db.max() - SPOKEN_RANGE_DB)
        if loud.size and db.max() > -100:
            out.append((loud[-1] - loud[0] + 1) * FRAME / SAMPLE_RATE)
    return out


def choose_window(lengths: dict[str, list[float]]) -> float:
    """The window (seconds, a multiple of 0.1) for keywords that last ``lengths`` in their clips: the longest
    keyword's :data:`WINDOW_QUANTILE` length plus :data:`WINDOW_MARGIN_S`, at least 1 s, at most
    :data:`MAX_WINDOW_S`."""
    longest = max(float(np.quantile(v, WINDOW_QUANTILE)) for v in lengths.values() if len(v))
    return min(MAX_WINDOW_S, max(1.0, math.ceil(round((longest + WINDOW_MARGIN_S) * 10, 6)) / 10))


def _window(p: CustomPlan, corpus: Path) -> float:
    lengths = {k: spoken_seconds(corpus, k) for k in p.keywords}
    window = choose_window(lengths)
    usual = {k: float(np.quantile(v, WINDOW_QUANTILE)) for k, v in lengths.items()}
    said = ", ".join(f"{k!r} {s:.2f} s" for k, s in usual.items())
    _say("window", f"{window:g} s (keywords last up to: {said}, {WINDOW_QUANTILE:.0%} of clips)")
    if max(usual.values()) > MAX_WINDOW_S - WINDOW_MARGIN_S:
        _say("window", f"the longest keyword barely fits {MAX_WINDOW_S:g} s; a shorter phrase is heard better")
    return window


def _say(step: str, text: str) -> None:
    print(f"custom: {step}: {text}", flush=True)


def _corpus(p: CustomPlan) -> Path:
    from ..data.synth import synthesize_corpus

    root = p.work / "corpus"
    manifest = root / "corpus.json"
    if manifest.is_file():
        done = json.loads(manifest.read_text())
        if done.get("complete") and done.get("words") == list(p.words) and done.get("per_word") == p.voices \
                and done.get("clip_samples") == CORPUS_CLIP_SAMPLES and done.get("engines") == list(p.engines):
            _say("1/6 corpus", f"{root} (already made)")
            return root
    _say("1/6 corpus", f"{len(p.words)} words x {p.voices} voices -> {root}")
    for made_from_it in (root / "speech", p.work / "world", p.work / "train", p.work / "run", p.work / "streams"):
        shutil.rmtree(made_from_it, ignore_errors=True)  # an earlier corpus's: made again from the new one
    synthesize_corpus(root, per_word=p.voices, seed=p.seed, engines=p.engines, words=p.words, progress=p.progress,
                      noise_seconds=60.0, festival_voices=FESTIVAL_VOICES,
                      clip_samples=CORPUS_CLIP_SAMPLES)
    return root


def _speech(p: CustomPlan, corpus: Path) -> None:
    from ..data.speech import SPEECH_WORD, add_speech_crops

    folder = corpus / SPEECH_WORD
    if folder.is_dir() and len(list(folder.glob("*.wav"))) >= p.speech_crops:
        _say("2/6 speech", f"{folder} (already made)")
        return
    _say("2/6 speech", f"{p.speech_crops} crops of keyword-free sentences -> {folder}")
    add_speech_crops(corpus, count=p.speech_crops, seed=p.seed, progress=p.progress, keywords=p.keywords)


def _world(p: CustomPlan, corpus: Path) -> tuple[Path, int]:
    """The training corpus: ``corpus`` joined with :attr:`CustomPlan.world_count` WORLD voices made from its
    training voices (``train/``), or ``corpus`` itself when there are none to add; and how many were added."""
    from ..data.merge import merge_corpora
    from ..data.vocode import load_pyworld, make_world_corpus

    world, joined = p.work / "world", p.work / "train"
    if p.world_count < 1:
        _say("3/6 world voices", "none (--world-voices 0)")
        return corpus, 0
    try:
        load_pyworld()
    except SpotterError as err:
        _say("3/6 world voices", f"skipped: {err} (or pip install 'spotter[vocode]')")
        return corpus, 0
    manifest = world / "corpus.json"
    done = json.loads(manifest.read_text()) if manifest.is_file() else {}
    if done.get("complete") and done.get("requested_voices") == p.world_count and done.get("seed") == p.seed \
            and done.get("converted_from") == str(corpus) and (joined / "corpus.json").is_file():
        _say("3/6 world voices", f"{joined} (already made)")
        return joined, len(done["voices"])
    for folder in (world, joined, p.work / "run"):  # the run too: it trained on the voices made before
        shutil.rmtree(folder, ignore_errors=True)
    _say("3/6 world voices", f"{p.world_count} WORLD conversions of training voices -> {world}, joined in {joined}")
    made = make_world_corpus(corpus, world, voices=p.world_count, seed=p.seed, engines=ENGINES, progress=p.progress)
    merge_corpora(joined, [corpus, world])
    return joined, len(made["voices"])


#: The training options that make a run another run: a run in the work folder made with other values of
#: these (an earlier command with other arguments) is started again, not resumed or reused.
RUN_DEFINING = ("model", "data", "keywords", "epochs", "window_seconds", "seed", "init")


def _stale(run: Path, options: dict) -> list[str]:
    """The :data:`RUN_DEFINING` options whose value in ``run/config.yaml`` differs from ``options``."""
    import yaml

    try:
        had = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return []  # no run there yet (or it never wrote its options): nothing to compare
    return [f"{k} {had.get(k)} -> {options.get(k)}" for k in RUN_DEFINING if had.get(k) != options.get(k)]


def _train(p: CustomPlan, corpus: Path, window: float) -> Path:
    from ..training.options import TrainOptions, load_config
    from ..training.run import run_train

    run = p.work / "run"
    model = run / "model.pt"
    recipe = load_config(CONFIG)
    options = {**recipe, "model": p.model or recipe["model"], "batch_size": min(recipe["batch_size"], p.voices),
               "data": str(corpus), "keywords": ",".join(p.keywords), "epochs": p.epochs, "window_seconds": window,
               "seed": p.seed, "out": str(run), "accelerator": p.accelerator, "no_progress": not p.progress,
               "init": p.base, **(BASE_SCHEDULE if p.base else {})}
    changed = _stale(run, options)
    if changed:
        _say("4/6 train", f"{run} was trained with other settings ({'; '.join(changed)}): training again")
        shutil.rmtree(run)
    elif model.is_file():
        _say("4/6 train", f"{model} (already trained)")
        return model
    start = f"from {Path(p.base).name}" if p.base else "from random weights"
    _say("4/6 train", f"{CONFIG}, {p.model or 'its model'} {start}, {window:g} s window, {p.epochs} epochs -> {run}")
    run_train(TrainOptions(**options, resume=(run / "checkpoints" / "last.ckpt").is_file()))
    return model


def _streams(p: CustomPlan, corpus: Path) -> list[Path]:
    from ..data.stream import make_stream

    folder = p.work / "streams"
    keywords, speech = p.stream_minutes
    wanted = [(folder / "val-keywords.wav", {"minutes": keywords}),
              (folder / "val-speech.wav", {"minutes": speech, "speech_only": True})]
    for wav, kwargs in wanted:
        if wav.is_file() and wav.with_suffix(".csv").is_file():
            _say("5/6 streams", f"{wav} (already made)")
            continue
        _say("5/6 streams", f"{kwargs['minutes']:g} min of validation voices -> {wav}")
        make_stream(corpus, wav, split="val", seed=p.seed, keywords=p.keywords, progress=p.progress, **kwargs)
    return [wav for wav, _ in wanted]


def _tune_and_write(p: CustomPlan, trained: Path, streams: list[Path], started: float, world: int = 0) -> dict:
    from ..checkpoint import load_model, read_checkpoint, save_checkpoint
    from ..evaluation.tuning import stream_posteriors
    from .tune import choose_detector

    _say("6/6 tune", f"the detector on {', '.join(s.name for s in streams)}")
    model = load_model(trained, device="cpu")
    keywords_stream, speech_stream = (stream_posteriors(model, wav, batched=True) for wav in streams)
    said = sorted({c for cs in p.confusables.values() for c in cs})
    best = choose_detector(keywords_stream, speech_stream, model.labels, said, max_fa_per_hour=p.max_fa_per_hour)
    meta = read_checkpoint(trained).get("meta", {})
    facts = {"keywords": list(p.keywords), "confusables": p.confusables, "voices": p.voices, "epochs": p.epochs,
             "model": model.name, "window_s": model.frontend.config.window_seconds,
             "engines": list(p.engines), "world_voices": world, "seed": p.seed,
             "base": Path(p.base).name if p.base else None,
             "validation": {**best.to_dict(), "within_targets": best.within,
                            "hours": round((keywords_stream.duration_s + speech_stream.duration_s) / 3600, 2)},
             "seconds": round(time.monotonic() - started, 1), "date": time.strftime("%Y-%m-%d")}
    save_checkpoint(model, p.out, meta={**meta, "detector": best.config.to_meta(), "custom": facts})
    return facts


def build_custom(p: CustomPlan) -> dict:
    """Run the steps of the module docstring for ``p`` (resuming where an earlier run stopped); the
    facts written to the checkpoint's ``meta["custom"]``."""
    started = time.monotonic()
    p.work.mkdir(parents=True, exist_ok=True)
    corpus = _corpus(p)
    _speech(p, corpus)
    training, world = _world(p, corpus)
    trained = _train(p, training, _window(p, corpus))
    streams = _streams(p, corpus)
    return _tune_and_write(p, trained, streams, started, world)
