"""The terminal UI of ``spotter listen``: a Textual app that watches the engine.

Design
------
The app never touches audio.  On mount it starts :func:`spotter.pipeline.run`
(source -> engine -> sink) in a *thread* worker, so feature extraction and
inference stay off the UI thread; the audio callback only ever writes to the
source's ring buffer and is never blocked by anything here.

The sink, called on the engine thread, does O(1) non-blocking work:

* a :class:`~spotter.events.PosteriorUpdate` is stored as ``latest`` (one
  attribute assignment, older ones are simply overwritten) and its level is
  appended to a bounded deque for the level history;
* a :class:`~spotter.events.Detection` is posted to the app as a
  :class:`Detected` message (``post_message`` is thread-safe): detections are
  queued, never dropped.

A 15 Hz timer on the UI thread copies the newest update into the widgets'
reactive attributes, which repaint them; so the UI costs the same at any hop
rate and a slow terminal cannot slow the engine down.  The keys act on the
engine directly (``Engine.paused``, ``Detector.set_threshold``), plain
attribute writes that the engine thread picks up on its next window.

Quitting (``q``, ``ctrl+c``, or SIGTERM via :class:`~spotter.pipeline.GracefulExit`)
sets the stop event; ``run`` returns within one read timeout, the source is
closed by its ``with`` block, and the worker's success ends the app with the
summary as its return value.  When the source ends by itself (a WAV replay)
the app shows "end of stream" and waits for ``q`` (or exits at once with
``exit_on_end=True``).  An exception in the worker (an :class:`AudioError`
when the microphone disappears) ends the app and :func:`run_app` re-raises it
after the terminal is restored, so the CLI prints its one-line error.

Without colour everything is still readable: ``>`` marks the top class,
``*`` a keyword just detected, ``|`` the threshold on each keyword's bar.
Screen-size classes (breakpoints) drop borders, the title and the footer,
narrow or hide the log, and show only the most probable classes when the
terminal is too small for all twelve.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState

from .config import keywords_of
from .events import Detection, PosteriorUpdate
from .pipeline import GracefulExit, run

REFRESH_HZ = 15
THRESHOLD_STEP = 0.05
FLASH_S = 1.2  # how long a detected keyword's row stays marked
LEVEL_FLOOR_DB = -70.0  # bottom of the level meter and the history strip
HISTORY = 200  # level samples kept (20 s at a 100 ms hop)
EIGHTHS = " ▏▎▍▌▋▊▉█"
SPARKS = "▁▂▃▄▅▆▇█"


class Detected(Message):
    """Posted from the engine thread for each detection."""

    def __init__(self, detection: Detection) -> None:
        super().__init__()
        self.detection = detection


class SourceNotice(Message):
    """Posted from the engine thread when the source has news (``--reconnect``: device lost, back)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


def _bar(fraction: float, width: int) -> str:
    """A horizontal bar of ``width`` cells with eighth-cell resolution."""
    eighths = int(round(max(0.0, min(1.0, fraction)) * width * 8))
    full, part = divmod(eighths, 8)
    return ("█" * full + (EIGHTHS[part] if part else "")).ljust(width)


def _level_fraction(dbfs: float) -> float:
    return max(0.0, min(1.0, 1.0 - dbfs / LEVEL_FLOOR_DB))


class ClassBars(Widget):
    """One row per class: markers, name, probability bar with the threshold, value."""

    update: reactive[PosteriorUpdate | None] = reactive(None)
    raw = reactive(False)  # show the raw probabilities instead of the smoothed ones
    threshold = reactive(0.7)
    flash: reactive[str | None] = reactive(None)  # keyword detected within FLASH_S

    def __init__(self, labels, thresholds=None, score: str = "class", **kwargs) -> None:
        super().__init__(**kwargs)
        self.labels = tuple(labels)
        self.thresholds = dict(thresholds or {})  # per-keyword overrides of `threshold`
        self.score = score  # the detector's score (spotter.detector.SCORES): what the threshold applies to

    def values(self) -> tuple[float, ...]:
        u = self.update
        if u is None:
            return (0.0,) * len(self.labels)
        return u.probs if self.raw else u.smoothed

    def render(self) -> Text:
        probs = self.values()
        top = max(range(len(probs)), key=probs.__getitem__) if self.update is not None else None
        rows = list(range(len(self.labels)))
        height = max(1, self.size.height)
        if height < len(rows):  # too short for all: the most probable classes, in label order
            rows = sorted(sorted(rows, key=lambda i: -probs[i])[:height])
        name_w = max(map(len, self.labels))
        bar_w = max(3, self.size.width - name_w - 8)  # "*>" + name + " " + bar + " 0.00"
        text = Text(no_wrap=True, overflow="crop")
        keywords = keywords_of(self.labels)
        keyword_rows = [i for i, label in enumerate(self.labels) if label in keywords]
        any_keyword = self.score == "any-keyword" and keyword_rows
        if any_keyword:  # the detector compares all keywords' sum with the likeliest keyword's threshold
            keyword_mass = sum(float(probs[i]) for i in keyword_rows)
            likeliest = max(keyword_rows, key=probs.__getitem__)
        for n, i in enumerate(rows):
            label, p = self.labels[i], float(probs[i])
            flash, is_top = label == self.flash, i == top
            keyword = label in keywords
            row_style = "bold reverse" if flash else ("bold" if is_top else ("" if keyword else "dim"))
            text.append(("*" if flash else " ") + (">" if is_top else " "), row_style)
            text.append(label.ljust(name_w) + " ", row_style)
            bar = _bar(p, bar_w)
            thr = self.thresholds.get(label, self.threshold)
            above = (i == likeliest and keyword_mass >= thr) if any_keyword else p >= thr
            colour = ("green" if above else "cyan") if keyword else "grey50"
            if keyword:  # the threshold, drawn over the bar
                mark = min(bar_w - 1, int(thr * bar_w))
                text.append(bar[:mark], colour)
                text.append("|", "bold red")
                text.append(bar[mark + 1:], colour)
            else:
                text.append(bar, colour)
            text.append(f" {p:4.2f}", row_style)
            if n < len(rows) - 1:
                text.append("\n")
        return text


class DetectionLog(Widget):
    """The detections, oldest first; the newest fill the bottom (a scrolling log)."""

    entries: reactive[tuple[Detection, ...]] = reactive(())
    flash: reactive[Detection | None] = reactive(None)

    def lines(self, width: int | None = None) -> list[str]:
        width = self.size.width if width is None else width
        if width >= 22:
            fmt = "{m}{d.time:7.2f} s {d.keyword:<5} {d.confidence:.2f}"
        else:
            fmt = "{m}{d.time:6.1f} {d.keyword:<5} {d.confidence:.2f}"
        return [fmt.format(d=d, m="*" if d is self.flash else " ") for d in self.entries]

    def render(self) -> Text:
        if not self.entries:
            return Text("no detections yet", style="dim", no_wrap=True, overflow="ellipsis")
        lines = self.lines()[-max(1, self.size.height):]
        text = Text(no_wrap=True, overflow="crop")
        for n, line in enumerate(lines):
            text.append(line, "bold reverse" if line.startswith("*") else "")
            if n < len(lines) - 1:
                text.append("\n")
        return text


class LevelMeter(Widget):
    """Input level in dBFS: the value and a meter, then a scrolling strip of the recent past.

    One row: all on one line.  More rows: the strip fills the rows below (one column per hop,
    newest on the right, bottom of the scale LEVEL_FLOOR_DB).
    """

    level: reactive[float | None] = reactive(None)
    history: reactive[tuple[float, ...]] = reactive(())

    def __init__(self, hop_s: float = 0.1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.hop_s = hop_s

    def render(self) -> Text:
        width, height = self.size.width, max(1, self.size.height)
        text = Text(no_wrap=True, overflow="crop")
        value = "  --.- dBFS" if self.level is None else f"{self.level:6.1f} dBFS"
        text.append(("input " if width >= 50 else "") + value + " ", "bold")
        meter_w = 16 if width >= 60 else 8
        frac = 0.0 if self.level is None else _level_fraction(self.level)
        filled = int(round(frac * meter_w))
        text.append("█" * filled, "green" if self.level is None or self.level < -6 else "red")
        text.append("░" * (meter_w - filled), "grey37")
        if height == 1:
            strip_w = width - text.cell_len - 1
            if strip_w > 0 and self.history:
                text.append(" " + self._strip(self.history[-strip_w:], 1)[0], "cyan")
            return text
        text.append(f"  last {len(self.history[-width:]) * self.hop_s:.0f} s" if width >= 50 else "", "dim")
        for row in self._strip(self.history[-width:], height - 1):
            text.append("\n" + row, "cyan")
        return text

    @staticmethod
    def _strip(levels, rows: int) -> list[str]:
        """``rows`` text rows (top first) of a bar chart of ``levels``, eighth-cell resolution."""
        heights = [max(1, int(round(_level_fraction(v) * rows * 8))) for v in levels]
        out = []
        for r in range(rows - 1, -1, -1):  # r = rows below this one
            cells = []
            for h in heights:
                part = h - r * 8
                cells.append("█" if part >= 8 else (SPARKS[part - 1] if part > 0 else " "))
            out.append("".join(cells))
        return out


class StatusBar(Widget):
    """State, stream time, inference time, dropped windows, overflows, threshold."""

    state = reactive("starting")  # live, paused, stopping, end of stream
    stream_time = reactive(0.0)
    inference_ms = reactive(0.0)
    dropped = reactive(0)
    overflows = reactive(0)
    threshold = reactive(0.7)
    raw = reactive(False)

    MARKS = {"live": "▶ LIVE", "paused": "‖ PAUSED", "stopping": "■ STOPPING", "end": "■ END OF STREAM",
             "starting": "… STARTING"}

    def render(self) -> Text:
        state = self.MARKS.get(self.state, self.state)
        view = "raw" if self.raw else "smoothed"
        forms = [  # the longest that fits
            f" {state}  {self.stream_time:.1f} s │ infer {self.inference_ms:.1f} ms │ dropped {self.dropped}"
            f" │ overflows {self.overflows} │ threshold {self.threshold:.2f} ({view})",
            f" {state}  {self.stream_time:.1f} s │ infer {self.inference_ms:.1f} ms │ dropped {self.dropped}"
            f" │ overflows {self.overflows} │ threshold {self.threshold:.2f}",
            f" {state} {self.stream_time:.1f}s │ {self.inference_ms:.1f}ms │ drop {self.dropped}"
            f" │ ovf {self.overflows} │ thr {self.threshold:.2f}",
            f" {state.split()[0]} {self.stream_time:.1f}s {self.inference_ms:.0f}ms d{self.dropped}"
            f" o{self.overflows} t{self.threshold:.2f}",
        ]
        line = next((f for f in forms if len(f) <= self.size.width), forms[-1])
        if self.state == "end" and len(line) + 12 <= self.size.width:
            line += " │ q to quit"
        return Text(line, no_wrap=True, overflow="ellipsis",
                    style="bold reverse" if self.state in ("paused", "end") else "")


HELP = """\
spotter listen: live keyword spotting

  q         quit (prints the summary)
  space     pause / resume scoring
  + / -     raise / lower the detection threshold by 0.05
  r         bars show raw / smoothed probabilities
  c         clear the detection log
  ?         this help (esc or ? closes it)

Bars: one per class, the model's probability.
  >   the most probable class
  *   a keyword just detected (also in the log)
  |   the threshold a keyword's smoothed probability must reach
      (with --score any-keyword: the keywords' sum must reach the
      likeliest keyword's threshold; its bar turns green)
Input: level of the newest audio in dBFS and its recent history.
Status: stream time, inference time per window, windows
dropped because inference fell behind, input overflows."""


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,question_mark", "dismiss", "close help")]

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box"):
            yield Static(HELP, id="help-text")


class SpotterApp(App):
    """Live view of an :class:`~spotter.pipeline.Engine` fed by an audio source."""

    CSS_PATH = "ui.tcss"
    TITLE = "spotter"
    ENABLE_COMMAND_PALETTE = False
    HORIZONTAL_BREAKPOINTS = [(0, "-w-small"), (50, "-w-mid"), (70, "-w-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-h-small"), (16, "-h-mid"), (24, "-h-tall")]
    BINDINGS = [
        Binding("q", "quit", "quit"),
        Binding("ctrl+c", "quit", show=False, priority=True),
        Binding("space", "pause", "pause"),
        Binding("plus,equals_sign", "threshold(1)", "thr+", key_display="+"),
        Binding("minus", "threshold(-1)", "thr-", key_display="-"),
        Binding("r", "raw", "raw"),
        Binding("c", "clear", "clear"),
        Binding("question_mark", "help", "help", key_display="?"),
    ]

    def __init__(self, source, engine, model_name: str = "", device: str = "cpu", *,
                 exit_on_end: bool = False) -> None:
        super().__init__()
        self.source, self.engine = source, engine
        self.model_name, self.device = model_name, device
        self.exit_on_end = exit_on_end
        self.stop_event = threading.Event()
        self.engine_done = threading.Event()
        self.summary: dict | None = None
        self.error: BaseException | None = None
        self.worker: Worker | None = None
        self.detections: list[Detection] = []
        self.updates_shown = 0  # posterior updates drawn so far (the tests' way to see refreshes)
        self.notices: list[str] = []  # the source's messages (reconnects), also shown as notifications
        self._latest: PosteriorUpdate | None = None
        self._shown: PosteriorUpdate | None = None
        self._levels: deque[float] = deque(maxlen=HISTORY)
        self._flash_until = 0.0

    # -- engine thread ---------------------------------------------------------------
    def _sink(self, event) -> None:
        """Called on the engine thread: never blocks."""
        if isinstance(event, PosteriorUpdate):
            self._levels.append(event.level_dbfs)
            self._latest = event
        elif isinstance(event, Detection):
            self.post_message(Detected(event))

    def _pipeline(self) -> dict:
        try:
            return run(self.source, self.engine, self._sink, self.stop_event)
        finally:
            self.engine_done.set()

    # -- UI thread ---------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(self._title(), id="title")
        with Horizontal(id="main"):
            yield ClassBars(self.engine.labels, self.engine.detector.config.thresholds,
                            score=self.engine.detector.config.score, id="bars")
            yield DetectionLog(id="log")
        yield LevelMeter(self.engine.config.hop_ms / 1000, id="level")
        yield StatusBar(id="status")
        yield Footer(compact=True)

    def _title(self) -> str:
        return (f" spotter │ {self.source.name} {self.source.device_rate} Hz │ "
                f"{self.model_name} on {self.device}")

    def on_mount(self) -> None:
        # Kept: the widgets live on the main screen, also while the help screen is on top.
        self.bars, self.log_view = self.query_one(ClassBars), self.query_one(DetectionLog)
        self.meter, self.status = self.query_one(LevelMeter), self.query_one(StatusBar)
        self.meter.border_title = "input level"
        self.log_view.border_title = "detections"
        self._show_threshold()
        self.set_interval(1 / REFRESH_HZ, self._tick)
        if hasattr(self.source, "log"):  # a reconnecting microphone: its retry lines become notifications
            self.source.log = lambda text: self.post_message(SourceNotice(text))
        self.worker = self.run_worker(self._pipeline, name="spotter-engine", thread=True, exit_on_error=False)
        self.status.state = "live"

    def on_unmount(self) -> None:
        self.stop_event.set()  # however the app ends, the pipeline ends with it

    def _tick(self) -> None:
        """Copy the engine's newest state into the widgets (REFRESH_HZ times a second)."""
        bars = self.bars
        if self._flash_until and time.monotonic() > self._flash_until:
            self._flash_until = 0.0
            bars.flash = None
            self.log_view.flash = None
            self._bars_title()
        u = self._latest
        if u is None or u is self._shown:
            return
        self._shown = u
        self.updates_shown += 1
        bars.update = u
        meter = self.meter
        meter.level = u.level_dbfs
        meter.history = tuple(self._levels)
        status = self.status
        status.stream_time, status.inference_ms = u.time, u.inference_ms
        status.dropped, status.overflows = u.dropped_windows, u.overflows

    def on_detected(self, message: Detected) -> None:
        d = message.detection
        self.detections.append(d)
        log = self.log_view
        log.entries = tuple(self.detections)
        log.flash = d
        log.border_title = f"detections ({len(self.detections)})"
        self.bars.flash = d.keyword
        self._flash_until = time.monotonic() + FLASH_S
        self._bars_title(f"DETECTED {d.keyword.upper()} {d.confidence:.2f}")

    def on_source_notice(self, message: SourceNotice) -> None:
        self.notices.append(message.text)
        self.notify(message.text.removeprefix("spotter: "), severity="warning", timeout=8)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is not self.worker:
            return
        if event.state == WorkerState.SUCCESS:
            self.summary = event.worker.result
            self._tick()
            if self.stop_event.is_set() or self.exit_on_end:
                self.exit(self.summary)
            else:
                self.status.state = "end"
        elif event.state == WorkerState.ERROR:  # e.g. AudioError: run_app re-raises it
            self.error = event.worker.error
            self.exit(None, return_code=1)

    def _bars_title(self, extra: str = "") -> None:
        view = "raw" if self.bars.raw else "smoothed"
        self.bars.border_title = f"{view} probabilities" + (f" ── {extra}" if extra else "")

    def _show_threshold(self) -> None:
        threshold = self.engine.detector.config.threshold
        self.bars.thresholds = dict(self.engine.detector.config.thresholds)
        self.bars.threshold = threshold
        self.bars.refresh()
        self.status.threshold = threshold
        self._bars_title()

    # -- actions ---------------------------------------------------------------------------
    async def action_quit(self) -> None:
        if self.engine_done.is_set() and self.summary is not None:
            self.exit(self.summary)
            return
        self.stop_event.set()  # the worker's success exits the app
        self.status.state = "stopping"

    def action_pause(self) -> None:
        if self.summary is not None:
            return
        self.engine.paused = not self.engine.paused
        self.status.state = "paused" if self.engine.paused else "live"

    def action_threshold(self, direction: int) -> None:
        detector = self.engine.detector
        detector.set_threshold(round(detector.config.threshold + direction * THRESHOLD_STEP, 2))
        self._show_threshold()

    def action_raw(self) -> None:
        bars = self.bars
        bars.raw = not bars.raw
        self.status.raw = bars.raw
        self._bars_title()

    def action_clear(self) -> None:
        self.detections.clear()
        log = self.log_view
        log.entries, log.flash = (), None
        log.border_title = "detections"

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def stop_engine(self, timeout: float = 5.0) -> None:
        """Stop the pipeline (if still running) and wait for the source to be closed."""
        self.stop_event.set()
        if self.worker is not None:
            self.engine_done.wait(timeout)


def run_app(source, engine, model_name: str = "", device: str = "cpu", *, exit_on_end: bool = False,
            headless: bool = False) -> dict:
    """Run the UI until ``q``; returns the summary (``engine.summary()`` + ``overruns``).

    An error raised by the pipeline (e.g. :class:`~spotter.audio.AudioError`) is re-raised here.
    """
    app = SpotterApp(source, engine, model_name, device, exit_on_end=exit_on_end)
    try:
        with GracefulExit(app.stop_event):  # SIGTERM stops the pipeline, which ends the app
            app.run(headless=headless)
    finally:
        app.stop_engine()
    if app.error is not None:
        raise app.error
    if app.summary is None:  # the app ended some other way (its own error, Textual's exit)
        return {**engine.summary(), "overruns": source.overruns, "interrupted": True}
    return app.summary
