"""A guided enrollment session through the microphone: the takes, a paragraph read aloud, the room.

:class:`Session` asks for each keyword ``takes`` times: it shows the word, records a few seconds,
finds the word (:func:`spotter.enroll.takes.find_word`) and asks again, with the reason, when the
take holds no word, is clipped or too long. Then it records the user reading :data:`PARAGRAPH`
(keyword-free speech) and their room in silence. What the user sees goes through a *prompter*:
:class:`PlainPrompter` prints lines (``spotter enroll --no-ui``); the Textual UI
(:mod:`spotter.enroll.ui`) shows the word, a level meter and lets the user redo a take.
The session only records: writing the files and adapting the model are the caller's.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from ..config import SAMPLE_RATE
from ..errors import Interrupted, SpotterError
from .takes import MAX_WORD_S, TakeError, find_word

#: Keyword-free text the user reads aloud (about 30 s at a calm pace): none of the ten keywords (tested),
#: since this speech is trained on as `unknown`.
PARAGRAPH = (
    "The morning train was late again, so I walked along the river to the bakery. The baker had "
    "already sold most of the bread, but she kept a small loaf for me, as she often does. Walking "
    "back I watched the boats, counted the ducks under the bridge and thought about the long "
    "weekend ahead. Later I will call my sister, water the plants in the garden and read a few "
    "chapters of the book that my neighbour lent me last month."
)
TAKE_SECONDS = 2.5
REDO_PAUSE_S = 0.6
MAX_RETRIES = 5


class Prompter(Protocol):
    def show(self, text: str, keyword: str | None = None) -> None: ...
    def level(self, dbfs: float) -> None: ...
    def result(self, text: str, ok: bool) -> None: ...


class PlainPrompter:
    """Prompts as plain lines on stdout (one line per prompt, flushed, so a script can follow them)."""

    def __init__(self, out=None) -> None:
        self.out = out or sys.stdout

    def show(self, text: str, keyword: str | None = None) -> None:
        print(text, file=self.out, flush=True)

    def level(self, dbfs: float) -> None:
        pass

    def result(self, text: str, ok: bool) -> None:
        print(("  ok: " if ok else "  again: ") + text, file=self.out, flush=True)


@dataclass
class Recordings:
    """What a session recorded: raw takes per keyword (16 kHz), the read paragraph, the room."""

    takes: dict[str, list[np.ndarray]] = field(default_factory=dict)
    speech: list[np.ndarray] = field(default_factory=list)
    noise: list[np.ndarray] = field(default_factory=list)


def _dbfs(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-12)) if x.size else -120.0


class Session:
    """Records ``takes`` takes of each keyword, then ``speech_seconds`` of reading and ``room_seconds`` of room."""

    def __init__(self, source, keywords, takes: int = 5, prompter: Prompter | None = None,
                 speech_seconds: float = 30.0, room_seconds: float = 10.0,
                 stop: threading.Event | None = None, redo: Callable[[], bool] | None = None,
                 max_word: float = MAX_WORD_S) -> None:
        self.source, self.keywords, self.takes = source, list(keywords), takes
        self.max_word = max_word  # the longest keyword the model's window holds (seconds)
        self.prompter = prompter or PlainPrompter()
        self.speech_seconds, self.room_seconds = speech_seconds, room_seconds
        self.stop = stop or threading.Event()
        self.redo = redo or (lambda: False)

    def record(self, seconds: float) -> np.ndarray:
        """``seconds`` of audio from the (started) source, the level shown as it comes."""
        want = int(seconds * SAMPLE_RATE)
        got, n = [], 0
        while n < want:
            if self.stop.is_set():
                raise Interrupted("enrollment stopped; nothing was written")
            block = self.source.read(0.25)
            if block.samples.size:
                got.append(block.samples)
                n += block.samples.size
                self.prompter.level(_dbfs(block.samples))
            elif self.source.finished:
                break
        x = np.concatenate(got) if got else np.zeros(0, np.float32)
        return x[:want].astype(np.float32)

    def take(self, keyword: str, index: int) -> np.ndarray:
        """One usable take of ``keyword``: asked again (with the reason) until the word is found."""
        for _ in range(MAX_RETRIES):
            self.prompter.show(f"say \"{keyword}\" ({index} of {self.takes})", keyword)
            x = self.record(TAKE_SECONDS)
            try:
                word = find_word(x, what=f"take {index} of \"{keyword}\"", max_word=self.max_word)
            except TakeError as err:
                self.prompter.result(str(err), ok=False)
                continue
            self.prompter.result(f"\"{keyword}\" {index}/{self.takes}: {word.seconds:.2f} s, "
                                 f"{word.snr_db:.0f} dB above the room", ok=True)
            return x
        raise SpotterError(f"no usable take of \"{keyword}\" in {MAX_RETRIES} tries; check the microphone "
                          "(spotter devices) and run spotter enroll again")

    def run(self) -> Recordings:
        out = Recordings()
        with self.source:
            for keyword in self.keywords:
                clips: list[np.ndarray] = []
                while len(clips) < self.takes:
                    clips.append(self.take(keyword, len(clips) + 1))
                    self.record(REDO_PAUSE_S)  # a moment to ask for a redo before the next prompt
                    if self.redo():  # the user asked to say the last take again
                        clips.pop()
                        self.prompter.result(f"take {len(clips) + 1} of \"{keyword}\" again", ok=True)
                out.takes[keyword] = clips
            if self.speech_seconds > 0:
                self.prompter.show(f"read aloud, at your own pace ({self.speech_seconds:.0f} s):\n{PARAGRAPH}")
                out.speech.append(self.record(self.speech_seconds))
            if self.room_seconds > 0:
                self.prompter.show(f"now stay quiet: recording your room ({self.room_seconds:.0f} s)")
                out.noise.append(self.record(self.room_seconds))
        self.prompter.show("recorded; adapting the model to your voice")
        return out
