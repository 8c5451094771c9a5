"""The user's keywords, checked; and the words that sound nearly like them (confusable negatives).

:func:`check_phrases` turns ``spotter custom "lights on" "next slide"`` into a label set or a one-line
error. :func:`confusables` finds, for each phrase, what a spotter of it must *not* fire on: the
phrase's words alone ("lights", "on"), and the phrase with one word swapped for a word one speech
sound away ("nights on", "lights in", "lice on"). Pronunciations come from the CMU Pronouncing
Dictionary as Festival ships it (Debian's ``festlex-cmu``, installed with festival by
``scripts/install_tts.sh``); a word it does not list (a product name, say) keeps only the parts.
"""

from __future__ import annotations

import re
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from ..config import parse_keywords
from ..errors import SpotterError

#: The CMU Pronouncing Dictionary in Festival's lexicon format.
CMU_DICT = Path("/usr/share/festival/dicts/cmu/cmudict-0.4.out")
#: A keyword is a word or a short phrase: it must fit in a window of at most 1.5 s.
MAX_WORDS = 4
_ALLOWED = re.compile(r"[a-z' -]")


class PhraseError(SpotterError, ValueError):
    """A keyword that cannot be trained; the message says which and what to do."""


def check_phrases(phrases: Sequence[str]) -> tuple[str, ...]:
    """The keywords of ``phrases``, lower-cased, spaces normalised; :class:`PhraseError` (one line) for an
    empty one, a duplicate, ``unknown`` / ``silence``, more than 20, more than :data:`MAX_WORDS` words, or
    characters the speech engines cannot say as written (digits, symbols: write them as words)."""
    cleaned = [" ".join(str(p).lower().split()) for p in phrases]
    for phrase, raw in zip(cleaned, phrases):
        odd = sorted({ch for ch in phrase if not _ALLOWED.fullmatch(ch)})
        if any(ch.isdigit() for ch in odd):
            raise PhraseError(f"{raw!r}: write numbers as words (\"route 66\" -> \"route sixty six\"): the speech "
                              "engines read digits differently")
        if odd:
            raise PhraseError(f"{raw!r}: {' '.join(odd)} cannot be spoken; use letters, spaces, - and ' only")
        if phrase and not re.search("[a-z]", phrase):
            raise PhraseError(f"{raw!r}: no letters to say")
        if len(phrase.split()) > MAX_WORDS:
            raise PhraseError(f"{raw!r}: {len(phrase.split())} words; a keyword is a word or a phrase of at most "
                              f"{MAX_WORDS} (it must fit in a window of at most 1.5 s)")
    try:
        return parse_keywords(",".join(cleaned) if cleaned else "", what="keywords")
    except ValueError as err:
        raise PhraseError(str(err)) from None


@lru_cache(maxsize=1)
def _entries(path: Path = CMU_DICT) -> dict[str, str]:
    """word -> its first entry's syllables as Festival writes them (``((dh ax) 0)``) for every plain word of
    the CMU dictionary; empty when the dictionary is not installed."""
    out: dict[str, str] = {}
    try:
        text = path.read_text(encoding="latin-1")
    except OSError:
        return out
    for line in text.splitlines():
        m = re.match(r'\("([a-z][a-z\']*)" \S+ (.*)\)$', line)
        if m and m.group(1) not in out:
            out[m.group(1)] = m.group(2)
    return out


@lru_cache(maxsize=1)
def lexicon(path: Path = CMU_DICT) -> dict[str, tuple[str, ...]]:
    """word -> phonemes (ARPAbet, stress dropped) of every plain word of the CMU dictionary; empty when
    the dictionary is not installed."""
    return {w: tuple(re.findall(r"[a-z]+", re.sub(r"\) \d\)", ")", body))) for w, body in _entries(path).items()}


@lru_cache(maxsize=1)
def reduced_words(path: Path = CMU_DICT) -> frozenset[str]:
    """Words the dictionary gives no stressed syllable ("the" dh-ax, "a" ax, "in"): function words, said
    with a reduced vowel in a phrase, so that one sound of theirs changed ("they", "thau") is not another
    phrase a listener would hear. Empty when the dictionary is not installed."""
    return frozenset(w for w, body in _entries(path).items() if set(re.findall(r"\) (\d)\)", body)) == {"0"})


def _one_edit_apart(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """Whether ``b`` is ``a`` with exactly one phoneme changed, added or left out."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b)) == 1
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


@lru_cache(maxsize=1)
def everyday_words() -> frozenset[str]:
    """Words of the sentences spotter speaks (test streams, training crops, babble) and of Speech
    Commands: everyday English, preferred over the dictionary's rarer entries (names, spellings)."""
    from ..config import ALL_WORDS
    from ..data.speech import TRAINING_SENTENCES
    from ..data.stream import SENTENCES, tokens
    from ..data.texts import BABBLE_SENTENCES

    return frozenset(ALL_WORDS) | {w for s in (*SENTENCES, *TRAINING_SENTENCES, *BABBLE_SENTENCES) for w in tokens(s)}


def neighbours(word: str, lex: dict[str, tuple[str, ...]], count: int) -> list[str]:
    """Up to ``count`` dictionary words one speech sound away from ``word`` (not its homophones):
    everyday words first, then substitutions of a sound before one added or left out, then plain
    spellings no longer than the word's; within those, the same fixed order on every run."""
    sounds = lex.get(word)
    if not sounds:
        return []
    everyday = everyday_words()
    near = [w for w, s in lex.items() if len(w) > 1 and _one_edit_apart(sounds, s)]
    near.sort(key=lambda w: (w not in everyday, len(lex[w]) != len(sounds),
                             "'" in w or len(w) > len(word) + 1, zlib.crc32(f"{word}/{w}".encode())))
    return near[:count]


def confusables(phrase: str, keywords: Sequence[str] = (), per_word: int = 2,
                lex: dict[str, tuple[str, ...]] | None = None, reduced: frozenset[str] | None = None) -> list[str]:
    """What sounds nearly like ``phrase``: its words alone (of a phrase) and the phrase with one word
    replaced by a :func:`neighbours` word (``per_word`` for each of its words but the :func:`reduced_words`
    of a phrase; substitutions of one sound first). None of them is one of ``keywords`` or says a keyword's
    words in the same order."""
    lex = lexicon() if lex is None else lex
    reduced = reduced_words() if reduced is None else reduced
    words = phrase.split()
    out = list(dict.fromkeys(words)) if len(words) > 1 else []
    for i, word in enumerate(words):
        if len(words) > 1 and word in reduced:
            continue  # "turn off they lights" is "turn off the lights" as people say it
        for near in neighbours(word, lex, per_word):
            out.append(" ".join([*words[:i], near, *words[i + 1:]]))
    taken = {" ".join(k.split()) for k in keywords} | {phrase}
    homophones = {tuple(s for w in k.split() for s in lex.get(w, (w,))) for k in taken}
    return [c for c in dict.fromkeys(out)
            if c not in taken and tuple(s for w in c.split() for s in lex.get(w, (w,))) not in homophones]
