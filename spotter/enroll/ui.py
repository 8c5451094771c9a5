"""The terminal UI of ``spotter enroll``: a Textual app that guides one recording :class:`~.record.Session`.

Its one job is to show the session: the word to say in large letters, the prompt with the take
number, a live level meter, the last take's result (accepted, or refused with the reason) and the
paragraph to read; ``r`` redoes the take just said, ``q`` / Ctrl-C stop without writing anything.

The session runs in a thread worker. Its prompter never blocks it: prompts and results are
posted as messages (``post_message`` is thread-safe; they are queued, never dropped) and the
level is one attribute write that a 15 Hz timer copies to the meter. ``r`` sets an event that
the session polls after each take (:class:`Session` ``redo``); ``q`` sets its stop event, the
session raises :class:`~spotter.errors.Interrupted` within one read and :meth:`UiSession.run`
re-raises it once the terminal is restored.
"""

from __future__ import annotations

import threading

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState

from ..errors import Interrupted
from ..ui import _bar, _level_fraction
from .record import Recordings, Session

REFRESH_HZ = 15
#: A 3x5 pixel font, one octal digit per row (4 = left pixel), drawn with half blocks: 3 rows of text.
_FONT = dict(zip("abcdefghijklmnopqrstuvwxyz ", (
    "25755 65656 34443 65556 74647 74644 34553 55755 72227 11152 55655 44447 57755 65555 25552 65644 25563 "
    "65655 34216 72222 55557 55522 55775 55255 55222 71247 00000").split()))
_HALF = {(True, True): "██", (True, False): "▀▀", (False, True): "▄▄", (False, False): "  "}


def big_text(word: str) -> str:
    """``word`` in 3 rows of large letters (each pixel two cells wide); as it is if the font lacks a letter."""
    if not word or any(c not in _FONT for c in word.lower()):
        return word
    pixels = [[[int(_FONT[c][r]) >> (2 - col) & 1 for col in range(3)] for c in word.lower()] for r in range(5)]
    pixels.append([[0, 0, 0] for _ in word])
    return "\n".join("  ".join("".join(_HALF[bool(top[i][col]), bool(bottom[i][col])] for col in range(3))
                               for i in range(len(word))) for top, bottom in zip(pixels[::2], pixels[1::2]))


class Prompt(Message):
    """Posted from the session thread: a new prompt (``keyword`` while a take is asked for)."""

    def __init__(self, text: str, keyword: str | None) -> None:
        super().__init__()
        self.text, self.keyword = text, keyword


class Result(Message):
    """Posted from the session thread: a take accepted, or refused with the reason."""

    def __init__(self, text: str, ok: bool) -> None:
        super().__init__()
        self.text, self.ok = text, ok


class AppPrompter:
    """The session's prompter: everything goes to the app without blocking the recording thread."""

    def __init__(self, app: "EnrollApp") -> None:
        self.app = app

    def show(self, text: str, keyword: str | None = None) -> None:
        self.app.post_message(Prompt(text, keyword))

    def level(self, dbfs: float) -> None:
        self.app.latest_level = dbfs

    def result(self, text: str, ok: bool) -> None:
        self.app.post_message(Result(text, ok))


class EnrollApp(App):
    """Guides a :class:`Session` through ``source``; returns its :class:`Recordings` (``None`` when stopped)."""

    CSS = """
    #title { height: 1; background: $primary-background; text-style: bold; }
    #word { height: 5; border: round $accent; content-align: center middle; text-style: bold; color: $accent; }
    #prompt { height: auto; padding: 0 1; text-style: bold; }
    #level { height: 1; padding: 0 1; }
    #result { height: auto; max-height: 3; padding: 0 1; }
    #result.ok { color: $success; }
    #result.refused { color: $warning; }
    #text { height: 1fr; padding: 0 1; border: round $primary; display: none; }
    """
    TITLE = "spotter enroll"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [Binding("r", "redo", "redo take"), Binding("q", "quit", "quit (nothing is written)"),
                Binding("ctrl+c", "quit", show=False, priority=True)]

    def __init__(self, source, keywords, takes: int = 5, speech_seconds: float = 30.0,
                 room_seconds: float = 10.0, max_word: float | None = None) -> None:
        super().__init__()
        self.stop_event, self.redo_event = threading.Event(), threading.Event()
        self.session = Session(source, keywords, takes, AppPrompter(self), speech_seconds, room_seconds,
                               stop=self.stop_event, redo=self._redo_wanted,
                               **({} if max_word is None else {"max_word": max_word}))
        self.keyword: str | None = None  # the word asked for now (None: reading, room, done)
        self.latest_level: float | None = None  # written by the session thread
        self.prompts: list[str] = []  # every prompt shown, in order (what a test or a person can follow)
        self.shown_level: float | None = None  # what the meter shows now
        self.session_done = threading.Event()
        self.recordings: Recordings | None = None
        self.error: BaseException | None = None
        self.worker: Worker | None = None

    def _run_session(self) -> Recordings:
        try:
            return self.session.run()
        finally:
            self.session_done.set()

    def _redo_wanted(self) -> bool:  # called on the session thread after each take
        wanted = self.redo_event.is_set()
        self.redo_event.clear()
        return wanted

    def compose(self) -> ComposeResult:
        s = self.session
        takes = f"{s.takes} take{'s' if s.takes != 1 else ''} each"
        source = getattr(s.source, "name", "")
        yield Static(f" spotter enroll │ {', '.join(s.keywords)} │ {takes} │ {source}", id="title", markup=False)
        for name in ("word", "prompt", "level", "result", "text"):  # texts shown as they are: no markup
            yield Static("starting ..." if name == "prompt" else "", id=name, markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#word").border_title = "say"
        self.set_interval(1 / REFRESH_HZ, self._show_level)
        self.worker = self.run_worker(self._run_session, name="spotter-enroll", thread=True, exit_on_error=False)

    def on_unmount(self) -> None:
        self.stop_event.set()  # however the app ends, the session ends with it

    def _show_level(self) -> None:
        db = self.latest_level
        width = max(4, self.size.width - 20)
        line = Text(f"level {'  --.-' if db is None else f'{db:6.1f}'} dBFS ", style="bold")
        frac = 0.0 if db is None else _level_fraction(db)
        line.append(_bar(frac, width), "red" if db is not None and db > -3 else "green")
        self.query_one("#level", Static).update(line)
        self.shown_level = db

    def on_prompt(self, message: Prompt) -> None:
        self.keyword = message.keyword
        self.prompts.append(message.text)
        first, _, rest = message.text.partition("\n")
        word = self.query_one("#word", Static)
        word.display = message.keyword is not None
        word.update(big_text(message.keyword or ""))
        self.query_one("#prompt", Static).update(first)
        text = self.query_one("#text", Static)
        text.display = bool(rest)
        text.update(rest)
        if message.keyword is None:
            self.query_one("#result", Static).update("")

    def on_result(self, message: Result) -> None:
        result = self.query_one("#result", Static)
        result.set_classes("ok" if message.ok else "refused")
        result.update(("✓ " if message.ok else "✗ ") + message.text)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is not self.worker:
            return
        if event.state == WorkerState.SUCCESS:
            self.recordings = event.worker.result
            self.exit(self.recordings)
        elif event.state in (WorkerState.ERROR, WorkerState.CANCELLED):
            self.error = event.worker.error or Interrupted("enrollment stopped; nothing was written")
            self.exit(None, return_code=1)

    def action_redo(self) -> None:
        if self.keyword is None:
            self.notify("nothing to redo: the takes are done", severity="warning", timeout=3)
            return
        self.redo_event.set()
        self.query_one("#result", Static).update(f"↺ this take of \"{self.keyword}\" will be asked again")

    def action_quit(self) -> None:
        self.stop_event.set()  # the session raises Interrupted within one read; that ends the app
        self.query_one("#prompt", Static).update("stopping; nothing is written")


class UiSession:
    """:class:`Session`'s contract (``run() -> Recordings``, :class:`Interrupted` when stopped) with the UI."""

    def __init__(self, app: EnrollApp) -> None:
        self.app = app

    def run(self, headless: bool = False) -> Recordings:
        from ..pipeline import GracefulExit

        app = self.app
        try:
            with GracefulExit(app.stop_event):  # SIGTERM stops the session, which ends the app
                app.run(headless=headless)
        finally:
            app.stop_event.set()
            if app.worker is not None:  # the session closes the microphone within one read
                app.session_done.wait(5.0)
        if app.error is not None:
            raise app.error
        if app.recordings is None:
            raise Interrupted("enrollment stopped; nothing was written")
        return app.recordings


def ui_session(source, keywords, takes: int = 5, speech_seconds: float = 30.0,
               room_seconds: float = 10.0, max_word: float | None = None) -> UiSession:
    """The session of ``spotter enroll`` with its terminal UI (see :class:`EnrollApp`)."""
    return UiSession(EnrollApp(source, keywords, takes, speech_seconds, room_seconds, max_word))
