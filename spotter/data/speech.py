"""Continuous-speech "unknown" clips: 1 s crops of whole sentences, for training a live spotter to stay quiet.

A corpus of isolated words teaches a model what the keywords sound like, but
not what the rest of speech sounds like *through a 1 s window sliding over
it*: word fragments, coarticulated syllables, words that rhyme with a
keyword.  Those windows are where a live spotter raises false alarms.
:func:`add_speech_crops` synthesises sentences containing none of the
keywords with the corpus' **training voices only** and writes random 1 s
crops of them into ``<corpus>/speech/`` - a word folder whose label is
``unknown`` - so they join training (they are in neither split list, so they
are never in validation or test).

The sentences (:data:`TRAINING_SENTENCES` and synth's babble sentences) are
disjoint from the sentences of the test streams (:data:`spotter.data.stream.SENTENCES`),
and many deliberately contain near misses: rhymes and partial overlaps with
keywords ("night", "top", "dawn", "lift", "often", "going").
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf

from ..config import CLIP_SAMPLES, SAMPLE_RATE
from .texts import BABBLE_SENTENCES
from .tts import available_engines, say

SPEECH_WORD = "speech"

TRAINING_SENTENCES = (
    "The night was bright and the lights of the town were low.",
    "He dropped the top of the box near the shop door.",
    "At dawn the cat sat by the brown gate.",
    "We often lift the heavy chest together.",
    "They are going to the coast in August.",
    "My neighbour is knocking at the door again.",
    "A yellow kite flew high above the field.",
    "Nobody noticed the note under the window.",
    "The gold coat was sold at the old market.",
    "Let us test the new kettle in the kitchen.",
    "The tiny spider climbed the drainpipe slowly.",
    "Forty seven people signed the letter yesterday.",
    "The soft pillow fell from the sofa.",
    "I bought a ticket for the late show.",
    "The story ends with a quiet dinner by the sea.",
    "She told me the price was far too high.",
    "The dog barked at every bicycle that passed.",
    "A loud truck rolled along the narrow lane.",
    "The cook added salt and pepper to the soup.",
    "My brother keeps his bike in the garage.",
    "The picture above the fireplace is slightly crooked.",
    "We watched the clouds drift over the hills.",
    "The teacher made a long list for the class.",
    "Our flight leaves early in the morning.",
    "The baby laughed at the funny noise.",
    "Fresh bread smells wonderful in the evening.",
    "He fixed the lock with a small screwdriver.",
    "The train stopped between two stations for an hour.",
    "The garden looks lovely after the rain.",
    "I need a new battery for the clock.",
    "The meeting moved to the second floor.",
    "Her sister plays the violin beautifully.",
    "The river flows past the old mill.",
    "Could I borrow a pencil for a minute?",
    "The kids built a castle out of sand.",
    "Tomorrow we will paint the fence white.",
    "The waiter brought the bill with a smile.",
    "That movie was much longer than I expected.",
    "The farmer drove the tractor across the mud.",
    "The parcel arrived a day later than planned.",
    "Light rain is expected over the weekend.",
    "The store sells fruit, cheese and fresh fish.",
    "A gentle breeze moved through the tall grass.",
    "He keeps forgetting where he parked the car.",
    "The museum opens at half past nine.",
    "Please make the music a little quieter.",
    "The printer in the office is jammed again.",
    "We shared a pizza after the football match.",
    "My grandmother tells the best stories.",
    "The lamp flickered and then went dark.",
    "Dinner is ready whenever you are hungry.",
    "The sky turned orange as the sun set.",
    "A robin landed near the garden fence.",
    "The library is quiet in the afternoon.",
    "They planted tomatoes along the south wall.",
    "The corner shop closes at six.",
    "My phone battery is almost empty.",
    "Snow covered the roofs during the night.",
    "The children ran across the playground.",
    "Her handwriting is neat and easy to read.",
)


def keyword_free(sentences) -> tuple[str, ...]:
    """The sentences, checked to contain no keyword (or homophone) as a word: those would teach "unknown"."""
    from .stream import BANNED_WORDS, tokens

    bad = [s for s in sentences if set(tokens(s)) & BANNED_WORDS]
    if bad:
        raise ValueError(f"sentences with a keyword in them cannot be 'unknown' examples: {bad}")
    return tuple(sentences)


def _training_voices(root: Path) -> list[dict]:
    manifest = json.loads((root / "corpus.json").read_text())
    engines = set(available_engines())
    voices = [v for v in manifest["voices"] if v["split"] == "training" and v["engine"] in engines]
    if not voices:
        raise ValueError(f"{root}/corpus.json lists no training voices of an installed engine")
    return voices


def _clip_samples(root: Path) -> int:
    """The length of a corpus's clips, from its manifest (``corpus.json``)."""
    return int(json.loads((root / "corpus.json").read_text()).get("clip_samples", CLIP_SAMPLES))


def add_speech_crops(corpus_dir: str | os.PathLike, count: int = 3000, seed: int = 0, crops_per_sentence: int = 2,
                     progress: bool = True, keywords: Sequence[str] | None = None) -> Path:
    """Write ``count`` crops of sentences spoken by training voices to ``corpus_dir/speech/``, each as long
    as the corpus's clips (its manifest's ``clip_samples``; 1 s).

    ``keywords``: another model's own keywords; the sentences that say one of them are left out (by
    default Speech Commands' ten, which no sentence says)."""
    from tqdm import tqdm

    from .stream import mentions

    root = Path(corpus_dir)
    voices = _training_voices(root)
    clip = _clip_samples(root)
    out = root / SPEECH_WORD
    out.mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    texts = keyword_free(TRAINING_SENTENCES + tuple(BABBLE_SENTENCES))
    if keywords is not None:
        texts = tuple(s for s in texts if not mentions(s, keywords))
    written = 0
    with tqdm(total=count, unit="clip", desc="speech crops", disable=not progress) as bar:
        while written < count:
            voice = voices[rng.integers(len(voices))]
            audio = say(texts[rng.integers(len(texts))], voice)
            audio = audio / (np.max(np.abs(audio)) + 1e-9) * 10 ** (rng.uniform(-20, -1) / 20)
            if audio.size < clip:
                audio = np.pad(audio, (0, clip - audio.size))
            for _ in range(min(crops_per_sentence, count - written)):
                start = int(rng.integers(0, audio.size - clip + 1))
                path = out / f"{voice['speaker']}_{written:05d}.wav"
                path.unlink(missing_ok=True)  # replace, never write through a hard link of a merged corpus
                sf.write(path, audio[start:start + clip], SAMPLE_RATE, subtype="PCM_16")
                written += 1
                bar.update(1)
    return out
