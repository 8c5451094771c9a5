"""Hard negatives: the 1 s windows of keyword-free speech that a model takes for a keyword.

A live spotter's false alarms come from windows of ordinary speech that look
like a keyword: "yesterday" for *yes*, "a long time ago" for *go*, "the top
shelf" for *stop*.  Random crops of sentences (:mod:`spotter.data.speech`)
rarely hit those few windows.  :func:`add_hard_negatives` searches for them:
it synthesises keyword-free sentences with the corpus' **training voices**
(including its WORLD-vocoded voices, by converting their source voice's
speech), slides a 1 s window over each sentence every 50 ms (with 0.2..0.8 s
of silence either side, as a stream has), scores every window with a model,
and writes the windows whose highest keyword probability reaches ``min_prob``
- at most ``per_sentence`` of them per sentence, at least 0.3 s apart - into
``<corpus>/hardneg/``: a word folder whose label is ``unknown``.  The files are
in neither split list, so they only ever join training; validation and test
voices and the sentences of the test streams
(:data:`spotter.data.stream.SENTENCES`) are never used.

The sentences are the training sentences of :mod:`spotter.data.speech` plus
:data:`NEAR_MISS_SENTENCES`: everyday English full of words that share sounds
with a keyword (rhymes, prefixes, the keyword inside a longer word), and none
that *is* a keyword.  Running it again replaces the windows written before.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from ..config import CLIP_SAMPLES, KEYWORDS, SAMPLE_RATE
from .speech import TRAINING_SENTENCES, keyword_free
from .texts import BABBLE_SENTENCES
from .tts import available_engines, say

__all__ = ["HARDNEG_WORD", "NEAR_MISS_SENTENCES", "HardNegatives", "add_hard_negatives", "hard_windows"]

HARDNEG_WORD = "hardneg"
HOP = int(0.05 * SAMPLE_RATE)
MIN_GAP = int(0.3 * SAMPLE_RATE)
PAD_S = (0.2, 0.8)
SENTENCES_PER_TASK = 8

NEAR_MISS_SENTENCES = (
    "Yesterday the yellow yeast was set aside to rise.",
    "I guess the chess set is still a mess in the hall.",
    "Her new address is less than a mile from the lake.",
    "Yet again the dress was pressed and hung to dry.",
    "The farmer yelled across the field at his neighbour.",
    "Nobody noticed the gnome by the pond this morning.",
    "A note pinned to the notice board asked for snow boots.",
    "The noble horse nodded its nose at the children.",
    "Now and then the wind blows the boat toward the dock.",
    "The puppy spilled the cup of tea at supper.",
    "Upstairs the upper window was open all day.",
    "After a hiccup the pup popped out of the basket.",
    "Once upon a time a king lived in a castle.",
    "The clown in the brown gown walked into town.",
    "Downtown the crowd gathered around the crown jewels.",
    "At dawn the town hall clock struck six.",
    "The theft of the loft ladder made him angry.",
    "We lift the leftover boxes into the van.",
    "Her lefty friend signs every card with a flourish.",
    "The bright light at night gave me a fright.",
    "The rice was ripe and ready by the time we arrived.",
    "We took a ride to see the height of the tower.",
    "He wrote a polite reply and signed it twice.",
    "The onion soup is the only dish John likes.",
    "To be honest the bus had gone before we came.",
    "Tom owns a long coat that he wears every winter.",
    "He often offers coffee to the office staff.",
    "The cough medicine tasted awful this week.",
    "The coffee shop at the top of the street sells cake.",
    "She stomped past the stock room with a stopwatch.",
    "We spotted a tiny spot of paint near the step.",
    "The stoppage lasted longer than the match itself.",
    "A long time ago a goat ate the gold coin.",
    "The ghost story made the kids grow quiet.",
    "She scored a goal though her toe was sore.",
    "The slow show ended and the crowd went home.",
    "The boat floated past the coast road at noon.",
    "Going home early was a good idea after all.",
    "The doe and her fawn crossed the frozen road.",
    "Dough rises slowly in a cold kitchen.",
    "The rope was tied to a post by the moat.",
    "Lots of people queued at the box office.",
    "The wet dog shook itself next to the fence.",
    "I bet the pet shop sells fresh food for birds.",
    "The loud sound came from the ground floor.",
    "Pound the garlic and add a pinch of salt.",
    "The sheriff rode the cliff path at sunset.",
    "A tight knot held the kite to the post.",
    "Quite a lot of white paint dripped from the wire.",
    "The long song lasted for ages.",
    "Bob swung the golf club at the ball.",
    "The frog hopped onto the log by the bog.",
    "A soft cloth was tossed across the moss.",
    "She put the mop and the pot by the shelf.",
    "The hot tap was dripping into the bowl.",
    "They keep a map of the shops in the car.",
    "Grow the tomatoes in a row by the window.",
    "The old bowl was sold for a low price.",
    "Yellow roses grew against the stone wall.",
    "The nurse wore a new uniform and a name badge.",
)


@dataclass(frozen=True)
class HardNegatives:
    written: int          # windows written to <corpus>/hardneg/
    sentences: int        # sentences synthesised and searched
    by_keyword: dict      # keyword the model took each window for -> count


def hard_windows(model, audio: np.ndarray, min_prob: float, per_sentence: int) -> list[tuple[int, float, str]]:
    """``(start sample, probability, keyword)`` of the windows of ``audio`` (16 kHz, longer than 1 s)
    that ``model`` scores highest for some keyword, at least ``min_prob``, best first, at most
    ``per_sentence``, starts at least 0.3 s apart.  Windows start every 50 ms."""
    import torch

    starts = np.arange(0, audio.size - CLIP_SAMPLES + 1, HOP)
    windows = np.lib.stride_tricks.sliding_window_view(audio.astype(np.float32), CLIP_SAMPLES)[starts]
    with torch.inference_mode():
        probs = torch.softmax(model(torch.from_numpy(np.ascontiguousarray(windows))).float(), dim=-1).numpy()
    keyword_columns = [model.labels.index(k) for k in KEYWORDS]
    keyword_probs = probs[:, keyword_columns]
    best = keyword_probs.max(axis=1)
    found: list[tuple[int, float, str]] = []
    for i in np.argsort(-best, kind="stable"):
        if best[i] < min_prob or len(found) == per_sentence:
            break
        if all(abs(int(starts[i]) - s) >= MIN_GAP for s, _, _ in found):
            found.append((int(starts[i]), float(best[i]), KEYWORDS[int(keyword_probs[i].argmax())]))
    return found


def _speak(text: str, voice: dict, voices: dict) -> np.ndarray:
    if voice["engine"] == "world":
        from .vocode import convert

        return convert(say(text, voices[voice["params"]["source"]]), voice["params"]).astype(np.float32)
    return say(text, voice)


_WORKER: dict = {}


def _init_worker(checkpoint, voices: dict, min_prob: float, per_sentence: int) -> None:
    import torch

    from ..checkpoint import load_model

    torch.set_num_threads(1)
    _WORKER.update(model=load_model(checkpoint, device="cpu").eval(), voices=voices, min_prob=min_prob,
                   per_sentence=per_sentence)


def _search(task: tuple[list[tuple[str, str]], int]) -> list[tuple[str, np.ndarray, str]]:
    """Synthesise a few sentences and return ``(speaker, window int16, keyword)`` of their hard windows."""
    items, seed = task
    rng = np.random.default_rng(seed)
    out = []
    for speaker, text in items:
        voice = _WORKER["voices"][speaker]
        speech = _speak(text, voice, _WORKER["voices"])
        speech = speech / (np.max(np.abs(speech)) + 1e-9) * 10 ** (rng.uniform(-20, -1) / 20)
        pads = (rng.uniform(*PAD_S, size=2) * SAMPLE_RATE).astype(int)
        audio = np.concatenate([np.zeros(pads[0], np.float32), speech.astype(np.float32), np.zeros(pads[1], np.float32)])
        if audio.size < CLIP_SAMPLES:
            audio = np.pad(audio, (0, CLIP_SAMPLES - audio.size))
        for start, _, keyword in hard_windows(_WORKER["model"], audio, _WORKER["min_prob"], _WORKER["per_sentence"]):
            window = audio[start:start + CLIP_SAMPLES]
            out.append((speaker, np.clip(np.rint(window * 32767), -32768, 32767).astype(np.int16), keyword))
    return out


def _training_voices(root: Path) -> tuple[list[str], dict]:
    """Speakers to search with (training split, engine installed; WORLD voices whose source is) and every voice."""
    manifest = json.loads((root / "corpus.json").read_text())
    voices = {v["speaker"]: v for v in manifest["voices"]}
    engines = set(available_engines())

    def usable(v: dict) -> bool:
        if v["engine"] == "world":
            source = voices.get(v["params"].get("source"))
            return source is not None and source["engine"] in engines
        return v["engine"] in engines

    speakers = [s for s, v in voices.items() if v["split"] == "training" and usable(v)]
    if not speakers:
        raise ValueError(f"{root}/corpus.json lists no training voices of an installed engine")
    return speakers, voices


def add_hard_negatives(corpus_dir: str | os.PathLike, checkpoint=None, count: int = 2000, seed: int = 0,
                       min_prob: float = 0.3, per_sentence: int = 2, workers: int | None = None,
                       max_sentences: int | None = None, progress: bool = True) -> HardNegatives:
    """Write up to ``count`` hard-negative windows into ``corpus_dir/hardneg/`` (see the module docstring).

    ``checkpoint`` is the model that searches (default: the shipped one).  Stops after ``max_sentences``
    sentences (default: 20 per window wanted) even if fewer windows were found."""
    from tqdm import tqdm

    if count < 1 or per_sentence < 1 or not 0 < min_prob < 1:
        raise ValueError("count and per_sentence must be at least 1 and min_prob between 0 and 1")
    from ..checkpoint import load_model

    root = Path(corpus_dir)
    if not (root / "corpus.json").is_file():
        raise ValueError(f"{root}: no corpus.json; give a corpus made by `spotter data synth`")
    speakers, voices = _training_voices(root)
    load_model(checkpoint, device="cpu")  # a bad checkpoint fails here, once, not in every worker
    texts = keyword_free(TRAINING_SENTENCES + tuple(BABBLE_SENTENCES) + NEAR_MISS_SENTENCES)
    max_sentences = max_sentences or 20 * count
    out = root / HARDNEG_WORD
    out.mkdir(exist_ok=True)
    for old in out.glob("*.wav"):
        old.unlink()
    rng = np.random.default_rng(seed)

    def tasks():
        made = 0
        while made < max_sentences:
            n = min(SENTENCES_PER_TASK, max_sentences - made)
            items = [(speakers[rng.integers(len(speakers))], texts[rng.integers(len(texts))]) for _ in range(n)]
            made += n
            yield items, int(rng.integers(2**31))

    workers = workers or os.cpu_count() or 1
    written, sentences, by_keyword = 0, 0, {}
    context = mp.get_context("spawn" if os.name == "nt" else "fork")
    with context.Pool(workers, _init_worker, (checkpoint, voices, min_prob, per_sentence)) as pool, \
            tqdm(total=count, unit="window", desc="hard negatives", disable=not progress) as bar:
        pending = tasks()
        batch = [t for _, t in zip(range(4 * workers), pending)]
        while batch and written < count:
            for (items, _), found in zip(batch, pool.map(_search, batch)):
                sentences += len(items)
                for speaker, window, keyword in found:
                    if written == count:
                        break
                    path = out / f"{speaker}_{written:05d}.wav"
                    path.unlink(missing_ok=True)  # never write through a hard link of a merged corpus
                    sf.write(path, window, SAMPLE_RATE, subtype="PCM_16")
                    by_keyword[keyword] = by_keyword.get(keyword, 0) + 1
                    written += 1
                    bar.update(1)
            batch = [t for _, t in zip(range(4 * workers), pending)]
    return HardNegatives(written, sentences, dict(sorted(by_keyword.items())))
