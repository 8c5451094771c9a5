"""Long test streams for streaming evaluation: keywords, other words and sentences over noise.

:func:`make_stream` writes a long 16 kHz mono PCM16 WAV and, beside it, a labels
CSV (same name, ``.csv``) for ``spotter eval-stream`` (:mod:`spotter.data.labels`),
in the spirit of TensorFlow's ``generate_streaming_test_wav``.

Content, laid end to end with random gaps of ``gap_s`` seconds:

* single words: clips of one split of a Speech Commands style folder (by default
  ``test``, whose voices the synthetic corpus holds out of training), a keyword
  with probability ``keyword_share``, else one of the other words. Each clip's
  speech is found by energy (10 ms frames louder than both 40 dB below the
  loudest frame and 10 dB above the clip's quietest tenth), cut out with 50 ms
  on each side and faded; its label gives those speech bounds, not the clip's 1 s;
* stretches of continuous speech: 1 to 4 whole sentences by one voice, with
  short pauses, from :data:`SENTENCES` (everyday English with no keyword, nor a
  word that sounds the same such as "know" or "write", as a word; "going" or
  "nobody" are fine). Voices: those of the same split in the corpus manifest
  (``corpus.json``) whose engine is in ``sentence_engines``, plus flite's five
  stock voices (slt, awb, rms, kal16, kal) when the corpus was not made with
  flite, i.e. an engine the model never heard. Each stretch picks an engine
  uniformly, then one of its voices. A stretch comes next whenever sentences
  have had less than ``sentences_share`` of the stream so far;
* ``speech_only=True``: sentence stretches only (no keyword rows), for
  measuring false alarms per hour on continuous speech.

Keywords, other words, clips of a word, sentences and the voices of an engine
are each drawn in shuffled rounds, so each is used once before any repeats.
The stream is exactly ``minutes`` long: the item that would run past the end
is left out (but a stretch keeps the sentences that fit).

Background: the corpus' ``_background_noise_`` files, only the split's region of
each (as :data:`~spotter.data.speech_commands.NOISE_REGIONS`, so the test
stream does not reuse training noise), looped mirrored (no jump at the seam) in
segments of 8..30 s of one file at a random RMS of -50..-35 dBFS. Every word or
stretch gets a random SNR in ``snr_db``: the RMS of its speech over the RMS of
the noise under it. A folder without noise files gives a silent background
(speech then sits at the level of -45 dBFS noise plus the SNR). The whole
stream is scaled down if its peak passes -1 dBFS. Noise segments cross-fade
over 0.5 s.

Labels CSV::

    label,start,end,word
    yes,3.217,3.701,yes
    unknown,5.880,6.342,marvin
    speech,8.102,10.954,"The bus was crowded this morning, so I walked."

one row per placed utterance, sorted by start, never overlapping; times in
seconds, 3 decimals. ``label`` is the keyword for keywords, ``unknown`` for
other words and ``speech`` for sentences; ``word`` is the word said, or the
sentence's text. The same arguments and corpus give byte-identical files
(the TTS engines are deterministic, see :mod:`spotter.data.synth`).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf

from spotter.config import KEYWORDS, SAMPLE_RATE, UNKNOWN
from spotter.data.download import DataError
from spotter.data.noise import unit_rms
from spotter.data.speech_commands import (NOISE_REGIONS, TESTING_LIST, VALIDATION_LIST, list_clips, load_audio,
                                          noise_files, read_split_list, split_of, word_to_label)
from spotter.data.tts import ENGINES, TRACT_STEPS, check_engine, flite_voices, say
from .labels import SPEECH, LabelEvent, write_labels

__all__ = ["SENTENCES", "SPEECH", "StreamInfo", "make_stream", "tokens"]

#: Keywords and the words that sound exactly like them: none may appear in :data:`SENTENCES`.
BANNED_WORDS = frozenset(KEYWORDS) | {"know", "write", "rite", "wright"}
LABEL_FLOOR_DB = 40.0          # speech: frames within this many dB of the loudest...
LABEL_ABOVE_QUIET_DB = 10.0    # ...and this far above the quietest tenth of the clip
CLIP_MARGIN_S = 0.05
FADE_S = 0.01
SENTENCES_PER_STRETCH = (1, 4)
SENTENCE_PAUSE_S = (0.15, 0.6)
NOISE_SEGMENT_S = (8.0, 30.0)
NOISE_DBFS = (-50.0, -35.0)    # RMS level of each background segment
SILENT_NOISE_DBFS = -45.0      # reference level when the background is silent
PEAK_DBFS = -1.0
_SPLITS = {"train": "train", "training": "train", "val": "val", "validation": "val", "valid": "val",
           "test": "test", "testing": "test", "all": "all"}
_MANIFEST_SPLITS = {"train": "training", "val": "validation", "test": "testing"}

#: Everyday English sentences for the continuous-speech stretches: no word of
#: :data:`BANNED_WORDS` (tests check with :func:`tokens`), none of synth's babble sentences.
SENTENCES = (
    "I usually drink a cup of tea before work.",
    "The bus was crowded this morning, so I walked.",
    "Could you send me the report by Friday afternoon?",
    "We are having pasta with tomato sauce for dinner.",
    "My sister moved to a small town near the coast.",
    "The printer in the office is making a strange noise again.",
    "Have you seen my keys anywhere in the kitchen?",
    "It rained all weekend, so we stayed inside and played cards.",
    "The new cafe across the street makes excellent coffee.",
    "Please remember to lock the back door tonight.",
    "I think the meeting has been moved to Thursday.",
    "Our neighbours have a big garden full of vegetables.",
    "The library opens at nine and closes at six.",
    "She has been learning to play the violin for three years.",
    "We should book the tickets before the prices rise.",
    "The baby finally fell asleep after a long walk.",
    "He forgot his umbrella at the station yesterday.",
    "Can I borrow your pen for a moment?",
    "The soup tastes better with a little more salt.",
    "Most of the shops in the village close early in winter.",
    "My grandmother tells wonderful stories about her childhood.",
    "The train to the city leaves every twenty minutes.",
    "I need to buy milk, eggs and bread at the supermarket.",
    "The film was much longer than I expected.",
    "They painted the fence white last summer.",
    "Let me check my calendar and call you back.",
    "The children built a sandcastle at the beach.",
    "It is much colder today than it was yesterday.",
    "Would you like some sugar in your coffee?",
    "We watched the sunset from the top of the hill.",
    "The doctor said I should drink more water.",
    "Her phone battery died in the middle of the call.",
    "The museum has a new exhibition about ancient Egypt.",
    "I will collect the kids from school at four.",
    "The restaurant was full, so we ordered takeaway.",
    "This recipe needs two cups of flour and a pinch of salt.",
    "My brother is training for a marathon in the spring.",
    "The cat sleeps in the sun every afternoon.",
    "We spent the holiday visiting old friends in Scotland.",
    "Please close the window, it is getting cold in here.",
    "The traffic was terrible because of the roadworks.",
    "I have read that book three times already.",
    "The teacher asked the students to bring their homework.",
    "He always whistles when he is cooking.",
    "Our flight was delayed by almost two hours.",
    "The flowers in the park are beautiful this time of year.",
    "I prefer walking to driving when the weather is nice.",
    "She bought a red scarf at the market.",
    "The washing machine finished its cycle an hour ago.",
    "We need a bigger table for the dining room.",
    "The concert tickets sold out in less than a day.",
    "Can you remind me what time the dentist appointment is?",
    "The river flooded the fields after the storm.",
    "I am trying to eat more fruit and vegetables.",
    "My laptop needs a new battery soon.",
    "They invited us to a barbecue in their garden.",
    "The hotel room had a lovely view of the lake.",
    "I lost track of time while reading in the garden.",
    "The postman delivered a parcel for the neighbours.",
    "We practised the song together every evening.",
    "He fixed the leaking tap in the bathroom himself.",
    "The cinema is showing an old black and white film tonight.",
    "My friend makes the best chocolate cake in town.",
    "We could hear birds singing in the trees.",
    "The store will be closed for the bank holiday.",
    "She speaks French and a little Spanish.",
    "The children were excited about the school trip.",
    "I usually read the news while having breakfast.",
    "The paint needs another day to dry properly.",
    "Our team won the quiz at the pub last night.",
    "Make sure you save your work before closing the program.",
    "The garden looks much tidier since we cut the grass.",
    "We should invite your parents for lunch this weekend.",
    "It took me an hour to find a parking space.",
    "The coffee machine at work is broken again.",
    "His jokes always make everyone laugh.",
    "I would like a window seat, if possible.",
    "The autumn leaves were red, orange and gold.",
    "My cousin is getting married in June.",
    "The bakery sells fresh croissants every morning.",
    "Please wipe your feet before coming inside.",
    "The weather forecast says it will be sunny tomorrow.",
    "They spent the afternoon fishing by the lake.",
    "I cannot remember where I parked the car.",
    "The kids are building a treehouse with their father.",
    "The library has a large collection of maps.",
    "She wrapped the present in shiny silver paper.",
    "We ran out of bread, so I made pancakes instead.",
    "The office will be quiet during the summer holidays.",
    "He has a collection of old coins from all over the world.",
    "The meeting ended earlier than we expected.",
    "Let us take a photo in front of the fountain.",
    "The shop assistant helped me find a smaller size.",
    "The street was decorated with lights for the festival.",
    "I am going to the gym after work today.",
    "There is a small bakery at the corner of our street.",
    "The students listened carefully to the lecture.",
    "She always carries a notebook in her bag.",
    "We visited a farm and fed the goats.",
    "The battery of the remote control is flat.",
    "He plays football with his friends every Sunday.",
    "The room smelled of fresh bread and cinnamon.",
    "I finally finished painting the bedroom walls.",
    "We need to leave early to avoid the traffic.",
    "The waiter brought us a basket of warm bread.",
    "My daughter wants to become a vet when she grows older.",
    "The parcel should arrive within three working days.",
    "I like to listen to the radio while cooking.",
    "The mountains were covered in snow all year.",
    "She asked the librarian for a book about birds.",
    "The garage door makes a loud squeaking sound.",
    "We should water the plants more often in summer.",
    "The hospital is a short walk from the station.",
    "I have an early start tomorrow, so I am heading to bed.",
    "The puppy chewed one of my favourite shoes.",
    "Their house has a lovely view of the valley.",
    "He spent the whole evening playing the piano.",
    "The price of petrol has gone through the roof.",
    "Please put the dishes in the sink when you finish.",
    "My phone keeps losing its signal in the basement.",
    "The farmers market is busy every Saturday morning.",
    "We celebrated her birthday with a picnic in the park.",
    "I forgot to bring my glasses to the cinema.",
    "The bridge was closed for repairs all week.",
    "She painted a portrait of her grandfather.",
    "They are planning a trip to Italy next year.",
    "The kettle has just boiled, would you like a cup of tea?",
    "Our teacher gave us a surprise test this morning.",
    "I heard a strange noise coming from the attic.",
    "The soup was too hot to eat straight away.",
    "Send me a message when you arrive at the airport.",
    "The ice cream van plays the same tune every day.",
    "We spent hours looking at the stars last night.",
    "The jacket was too small, so I returned it.",
    "My uncle grows tomatoes in his greenhouse.",
    "The lift in our building is broken again.",
    "She laughed so hard that she started crying.",
    "The children are playing hide and seek in the garden.",
    "I usually take the bus, but today I cycled.",
    "The old church in the village dates from the twelfth century.",
    "Could you tell me the way to the nearest pharmacy?",
    "The fridge is almost empty, we need to buy food.",
    "He wore a blue suit to the wedding.",
    "The lake was so calm that it looked like glass.",
    "I am saving money for a new bicycle.",
    "The dog barks every time someone rings the bell.",
    "We had a lovely chat over lunch yesterday.",
    "The author signed copies of her new novel.",
    "Please speak a little louder, I can barely hear you.",
    "The sky turned pink just before the sun set.",
    "My favourite season is autumn because of the colours.",
    "The plumber will come between ten and twelve.",
    "She has a beautiful singing voice.",
    "The kitchen smells wonderful when you bake bread.",
    "We waited for the rain to pass under a tree.",
    "The schedule has changed, the class now starts at eight.",
    "He collects stamps from every country he visits.",
    "I would rather stay home and watch a film tonight.",
    "The heating in the flat is not working properly.",
    "Our new sofa will be delivered in two weeks.",
    "The park is full of families when the weather is warm.",
    "She keeps a diary and writes in it every night.",
    "The harbour was full of small fishing boats.",
    "I made a list of things we need for the party.",
    "The guide showed us around the castle and the gardens.",
    "Breakfast is served from seven until ten.",
    "My grandfather used to work as a carpenter.",
    "It is the first time I have tried sushi.",
    "The nurse was very kind and patient with the children.",
    "We could smell the sea before we could see it.",
    "The neighbours are having a party tonight.",
    "He finished the crossword in less than ten minutes.",
    "The trees along the avenue were planted a century ago.",
    "I think this plant needs a bigger pot.",
)


def tokens(text: str) -> list[str]:
    """The words of ``text``: lower-cased, punctuation stripped (``"Don't stop!"`` -> ``["don't", "stop"]``)."""
    return [t.strip("'") for t in re.findall(r"[a-z0-9']+", text.lower()) if t.strip("'")]


def mentions(text: str, phrases: Sequence[str]) -> bool:
    """Whether ``text`` says one of ``phrases`` (each a word or several) as whole words, in order."""
    words = tokens(text)
    for phrase in phrases:
        p = tokens(phrase)
        if p and any(words[i:i + len(p)] == p for i in range(len(words) - len(p) + 1)):
            return True
    return False


@dataclass(frozen=True)
class StreamInfo:
    """What :func:`make_stream` wrote: the WAV, its labels CSV, its length and the rows per label."""

    path: Path
    csv_path: Path
    duration_s: float
    counts: dict[str, int]


@dataclass(frozen=True)
class _Piece:
    audio: np.ndarray   # float, 16 kHz
    start: int          # speech bounds within audio (samples)
    end: int
    label: str
    word: str


class _Deck:
    """Draws items in shuffled rounds, so each is used once before any repeats."""

    def __init__(self, items: Sequence, rng: np.random.Generator) -> None:
        self.items, self.rng, self.order = list(items), rng, []

    def draw(self):
        if not self.order:
            self.order = self.rng.permutation(len(self.items)).tolist()
        return self.items[self.order.pop()]


def _speech_bounds(x: np.ndarray) -> tuple[int, int] | None:
    """(start, end) samples of the speech in ``x`` by frame energy (see the module docstring); None if silent."""
    hop = SAMPLE_RATE // 100
    n = len(x) // hop
    if n == 0:
        return None
    rms = np.sqrt(np.mean(np.asarray(x[:n * hop], dtype=np.float64).reshape(n, hop) ** 2, axis=1))
    top = float(rms.max())
    if top <= 1e-6:
        return None
    quiet = float(np.percentile(rms, 10))
    threshold = max(top * 10 ** (-LABEL_FLOOR_DB / 20), quiet * 10 ** (LABEL_ABOVE_QUIET_DB / 20))
    loud = np.flatnonzero(rms > threshold)
    return int(loud[0] * hop), int((loud[-1] + 1) * hop)


def _fade(x: np.ndarray) -> np.ndarray:
    n = min(len(x) // 2, int(FADE_S * SAMPLE_RATE))
    ramp = np.linspace(0.0, 1.0, n, endpoint=False)
    x = np.array(x, dtype=np.float64)
    x[:n] *= ramp
    x[len(x) - n:] *= ramp[::-1]
    return x


def _background(root: Path, split: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of the split's region of the noise files, in cross-faded segments (module docstring)."""
    lo, hi = NOISE_REGIONS[split]
    loops = []
    for path in noise_files(root):
        x = load_audio(path)
        region = unit_rms(x[int(lo * len(x)):int(hi * len(x))])
        if np.any(region):
            loops.append(np.concatenate([region, region[::-1]]))
    out = np.zeros(n, dtype=np.float64)
    if not loops:
        return out
    fade = int(0.5 * SAMPLE_RATE)
    ramp = np.linspace(0.0, 1.0, fade, endpoint=False)
    pos = 0
    while pos < n:
        length = min(n - pos, int(rng.uniform(*NOISE_SEGMENT_S) * SAMPLE_RATE)) + fade
        loop = loops[int(rng.integers(len(loops)))]
        start, gain = int(rng.integers(len(loop))), 10 ** (rng.uniform(*NOISE_DBFS) / 20)
        seg = loop[(start + np.arange(length)) % len(loop)] * gain
        if pos > 0:
            seg[:fade] *= ramp
        seg[-fade:] *= ramp[::-1]
        end = min(n, pos + length)
        out[pos:end] += seg[:end - pos]
        pos += length - fade
    return out


def _word_clips(root: Path, split: str) -> dict[str, list[str]]:
    """word -> relative paths of its clips in ``split``, from the folder's split lists."""
    validation, testing = read_split_list(root / VALIDATION_LIST), read_split_list(root / TESTING_LIST)
    clips: dict[str, list[str]] = {}
    for rel, word in list_clips(root):
        if split == "all" or split_of(rel, validation, testing) == split:
            clips.setdefault(word, []).append(rel)
    return clips


def _sentence_voices(root: Path, split: str, engines: Sequence[str]) -> dict[str, list[dict]]:
    """engine -> voices for sentences: the manifest's voices of ``split``, plus stock flite if it is unheard."""
    manifest_path = root / "corpus.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else {}
    voices: dict[str, list[dict]] = {}
    for voice in manifest.get("voices", []):
        if voice["engine"] in engines and (split == "all" or voice["split"] == _MANIFEST_SPLITS[split]):
            voices.setdefault(voice["engine"], []).append(voice)
    if "flite" in engines and "flite" not in manifest.get("engines", []):
        voices["flite"] = [{"speaker": f"flite-{name}", "engine": "flite",
                            "params": {"voice": name, "duration_stretch": 1.0, "f0_mean": None, "f0_stddev": None,
                                       "tract": TRACT_STEPS}}
                           for name in flite_voices()]
    if not voices:
        raise DataError(f"{root}: no voices of engines {tuple(engines)} for split {split!r} to say sentences")
    for engine in voices:
        check_engine(engine)
    return dict(sorted(voices.items()))


def _progress(total: int, disable: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="s", desc="stream", disable=disable, dynamic_ncols=True)


def make_stream(corpus_dir: str | os.PathLike, out_wav: str | os.PathLike, minutes: float = 10.0, seed: int = 0,
                split: str = "test", sentences_share: float = 0.3, keyword_share: float = 0.6,
                snr_db: tuple[float, float] = (5.0, 25.0), gap_s: tuple[float, float] = (0.6, 2.0),
                speech_only: bool = False, sentence_engines: Sequence[str] = ENGINES,
                progress: bool = True, keywords: Sequence[str] = KEYWORDS) -> StreamInfo:
    """Write a ``minutes`` long test stream and its labels CSV; see the module docstring.

    ``split``: ``test``, ``val``, ``train`` or ``all`` (the corpus' split lists
    ignored). ``keywords``: the word folders that are keywords (another model's own set; the sentences
    that say one are left out). ``sentences_share``: share of the stream's time given to sentence
    stretches (0 for none); ``keyword_share``: share of the single words that are
    keywords. ``snr_db`` and ``gap_s``: ranges drawn uniformly. Raises
    :class:`~spotter.data.download.DataError` when the split has no keyword
    clips or no voice can say sentences, :class:`~spotter.data.synth.SynthError`
    when a needed TTS engine is missing.
    """
    if minutes <= 0 or not 0 <= sentences_share < 1 or not 0 <= keyword_share <= 1:
        raise ValueError("minutes must be > 0, sentences_share in [0, 1) and keyword_share in [0, 1]")
    if not (0 <= gap_s[0] <= gap_s[1] and snr_db[0] <= snr_db[1]):
        raise ValueError("gap_s and snr_db must be (low, high) ranges, gaps >= 0")
    if split not in _SPLITS:
        raise ValueError(f"split must be one of train, val, test, all; not {split!r}")
    split, root, out_wav = _SPLITS[split], Path(corpus_dir), Path(out_wav)
    words = _word_clips(root, split)
    keyword_set = tuple(keywords)
    keywords = [w for w in keyword_set if w in words]
    others = sorted(w for w in words if word_to_label(w, keyword_set) == UNKNOWN)
    if not speech_only and not keywords:
        raise DataError(f"{root}: no keyword clips in split {split!r} (is it a Speech Commands folder with "
                        "split lists? use split='all' for one without)")
    voices = _sentence_voices(root, split, sentence_engines) if speech_only or sentences_share > 0 else {}

    n_total = int(round(minutes * 60 * SAMPLE_RATE))
    stream = _background(root, split, n_total, np.random.default_rng([seed, 0x401]))
    rng = np.random.default_rng([seed, 0x57EA])
    keyword_deck, other_deck = _Deck(keywords, rng), _Deck(others, rng)
    clip_decks = {w: _Deck(paths, rng) for w, paths in words.items()}
    voice_decks = {e: _Deck(v, rng) for e, v in voices.items()}
    sentence_deck = _Deck([s for s in SENTENCES if not mentions(s, keyword_set)], rng)

    def word_piece() -> list[_Piece]:
        keyword = bool(keywords) and (not others or rng.random() < keyword_share)
        word = (keyword_deck if keyword else other_deck).draw()
        x = load_audio(root / clip_decks[word].draw())
        bounds = _speech_bounds(x)
        if bounds is None:
            return []
        margin = int(CLIP_MARGIN_S * SAMPLE_RATE)
        a, b = max(0, bounds[0] - margin), min(len(x), bounds[1] + margin)
        return [_Piece(_fade(x[a:b]), bounds[0] - a, bounds[1] - a, word_to_label(word, keyword_set), word)]

    def stretch() -> list[_Piece]:
        voice = voice_decks[list(voice_decks)[int(rng.integers(len(voice_decks)))]].draw()
        pieces = []
        for _ in range(int(rng.integers(SENTENCES_PER_STRETCH[0], SENTENCES_PER_STRETCH[1] + 1))):
            text = sentence_deck.draw()
            x = say(text, voice).astype(np.float64)
            bounds = _speech_bounds(x)
            if bounds is not None:
                pieces.append(_Piece(_fade(x), *bounds, SPEECH, text))
        return pieces

    rows: list[tuple[str, int, int, str]] = []
    pos = int(rng.uniform(*gap_s) * SAMPLE_RATE)
    speech_time = 0
    bar = _progress(int(minutes * 60), disable=not progress)
    try:
        while True:
            is_stretch = speech_only or (bool(voices) and speech_time < sentences_share * pos)
            pieces = stretch() if is_stretch else word_piece()
            starts, p = [], pos
            for i, piece in enumerate(pieces):
                if i:
                    p += int(rng.uniform(*SENTENCE_PAUSE_S) * SAMPLE_RATE)
                starts.append(p)
                p += len(piece.audio)
            placed = [(at, piece) for at, piece in zip(starts, pieces) if at + len(piece.audio) <= n_total]
            snr = rng.uniform(*snr_db)
            for at, piece in placed:
                a, b = at + piece.start, at + piece.end
                noise_rms = float(np.sqrt(np.mean(stream[a:b] ** 2)))
                speech_rms = float(np.sqrt(np.mean(piece.audio[piece.start:piece.end] ** 2)))
                level = (noise_rms if noise_rms > 1e-7 else 10 ** (SILENT_NOISE_DBFS / 20)) * 10 ** (snr / 20)
                stream[at:at + len(piece.audio)] += piece.audio * (level / speech_rms)
                rows.append((piece.label, a, b, piece.word))
            if len(placed) < len(pieces):  # the end of the stream: keep the sentences that fit
                break
            if is_stretch:
                speech_time += p - pos
            pos = p + int(rng.uniform(*gap_s) * SAMPLE_RATE)
            bar.update(min(n_total, pos) // SAMPLE_RATE - bar.n)
        bar.update(bar.total - bar.n)
    finally:
        bar.close()

    peak, limit = float(np.max(np.abs(stream))), 10 ** (PEAK_DBFS / 20)
    if peak > limit:
        stream *= limit / peak
    out_wav.parent.mkdir(parents=True, exist_ok=True)
    sf.write(out_wav, np.clip(np.round(stream * 32767), -32768, 32767).astype(np.int16), SAMPLE_RATE,
             subtype="PCM_16")
    csv_path = write_labels(out_wav.with_suffix(".csv"),
                            [LabelEvent(label, a / SAMPLE_RATE, b / SAMPLE_RATE, word) for label, a, b, word in rows])
    order = [*keyword_set, UNKNOWN, SPEECH]
    counts = Counter(label for label, *_ in rows)
    return StreamInfo(out_wav, csv_path, n_total / SAMPLE_RATE,
                      {label: counts[label] for label in sorted(counts, key=order.index)})
