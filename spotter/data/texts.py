"""The sentence and word lists that ship as package data, read from ``spotter/data/text/``.

Each list is a plain UTF-8 file, one item per line (``*.txt``), or a JSON table (``*.json``); they are
read with :mod:`importlib.resources`, so an installed spotter finds them wherever it runs.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

__all__ = ["BABBLE_SENTENCES", "RESPELLINGS", "read_lines", "read_table"]


def read_lines(name: str) -> tuple[str, ...]:
    """The non-empty lines of the text file ``name`` in ``spotter/data/text/``, in order."""
    text = (files("spotter.data") / "text" / name).read_text(encoding="utf-8")
    return tuple(line for line in text.splitlines() if line.strip())


def read_table(name: str) -> Any:
    """The JSON file ``name`` in ``spotter/data/text/``."""
    return json.loads((files("spotter.data") / "text" / name).read_text(encoding="utf-8"))


#: Sentences for the babble noise: none contains a Speech Commands word.
BABBLE_SENTENCES: tuple[str, ...] = read_lines("babble_sentences.txt")

#: English words respelled in the orthography of another language (``italian``: Latin-1 letters, the accent
#: marks the stressed vowel; ``czech``: ISO-8859-2 letters), so a festival voice of that language says them as
#: its speakers would say English: language -> word -> respelling. See :mod:`spotter.data.tts.festival`.
RESPELLINGS: dict[str, dict[str, str]] = read_table("respellings.json")
