"""The labels CSV of a stream: one row per utterance, ``label,start,end[,word]`` in seconds.

``label`` is a keyword, ``unknown`` (another word) or ``speech`` (a sentence without keywords);
``word`` is what was said. ``spotter data stream`` writes it beside each WAV, ``spotter
eval-stream`` and ``spotter tune`` read it (scoring is :mod:`spotter.evaluation.streams`)::

    label,start,end,word
    yes,1.000,1.420,yes
    speech,2.500,4.250,"Hello, there."
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..errors import SpotterError

__all__ = ["SPEECH", "LabelEvent", "LabelsError", "read_labels", "write_labels"]

SPEECH = "speech"


class LabelsError(SpotterError, ValueError):
    """A labels file is missing or malformed; the message names the file, the line and what was found."""


@dataclass(frozen=True)
class LabelEvent:
    """One labelled utterance: ``label`` (a keyword, ``unknown`` or ``speech``), times in seconds."""

    label: str
    start: float
    end: float
    word: str = ""


def read_labels(path: str | os.PathLike) -> list[LabelEvent]:
    """The rows of a labels CSV (header ``label,start,end`` and optionally ``word``), in file order."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LabelsError(f"{path}: no such labels file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise LabelsError(f"{path}: cannot read labels ({e})") from None
    rows = list(csv.reader(text.splitlines()))
    if not rows or [h.strip() for h in rows[0][:3]] != ["label", "start", "end"]:
        found = ",".join(rows[0]) if rows else "an empty file"
        raise LabelsError(f"{path} line 1: expected the header label,start,end[,word], found {found!r}")
    events = []
    for line_no, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) not in (3, 4):
            raise LabelsError(f"{path} line {line_no}: expected 3 or 4 fields (label,start,end[,word]), "
                              f"found {len(row)}: {','.join(row)!r}")
        label = row[0].strip()
        if not label:
            raise LabelsError(f"{path} line {line_no}: empty label")
        times = []
        for name, value in (("start", row[1]), ("end", row[2])):
            try:
                t = float(value)
            except ValueError:
                t = math.nan
            if not math.isfinite(t) or t < 0:
                raise LabelsError(f"{path} line {line_no}: {name} must be seconds >= 0, found {value!r}")
            times.append(t)
        if times[1] < times[0]:
            raise LabelsError(f"{path} line {line_no}: end {times[1]} is before start {times[0]}")
        events.append(LabelEvent(label, times[0], times[1], row[3].strip() if len(row) == 4 else ""))
    return events


def write_labels(path: str | os.PathLike, events: Iterable[LabelEvent]) -> Path:
    """Write ``events`` as a labels CSV (times to the millisecond) that :func:`read_labels` reads back."""
    path = Path(path)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["label", "start", "end", "word"])
        for e in events:
            writer.writerow([e.label, f"{e.start:.3f}", f"{e.end:.3f}", e.word])
    return path
