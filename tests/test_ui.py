"""The terminal UI driven for real: Textual's pilot, the shipped model, a replay of examples/keywords.wav.

The replay is paced like a microphone (``realtime=True``) where the test watches
the live view, and as fast as possible where it needs the whole file.  Keywords
and times come from examples/keywords.csv (see tests/test_listen.py).
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest
import soundfile as sf

from spotter.audio import AudioError, WavSource
from spotter.checkpoint import load_model
from spotter.detector import detector_from_meta
from spotter.config import KEYWORDS
from spotter.events import Detection
from spotter.pipeline import Engine, EngineConfig, replay_file
from spotter.data.labels import read_labels
from spotter.ui import ClassBars, DetectionLog, HelpScreen, LevelMeter, SpotterApp, StatusBar, run_app

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "keywords.wav"
TOLERANCE_S = 0.75
DEFAULT = detector_from_meta(load_model(device="cpu").meta).threshold  # the shipped model's own threshold
WANT = [e for e in read_labels(EXAMPLE.with_suffix(".csv")) if e.label in KEYWORDS]


@pytest.fixture(scope="module")
def model():
    return load_model(device="cpu")  # the shipped model


class Replay(WavSource):
    """The example WAV, remembering that it was closed."""

    closed = False

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        self.closed = True


def make_app(model, realtime: bool = True, **kwargs) -> SpotterApp:
    engine = Engine(model, EngineConfig(skip_stale=realtime))
    return SpotterApp(Replay(EXAMPLE, realtime=realtime), engine, model.name, "cpu", **kwargs)


async def wait_for(pilot, condition, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.05)


def is_spoken_keyword(d) -> bool:
    """The detection names a keyword of examples/keywords.csv, while or just after it is spoken."""
    return any(e.label == d.keyword and e.start <= d.time <= e.end + TOLERANCE_S for e in WANT)


def text(widget) -> str:
    return widget.render().plain


def assert_clean_exit(app: SpotterApp) -> None:
    assert app.engine_done.is_set() and app.worker.is_finished and app.error is None
    assert app.source.closed
    assert not any(t.name == "spotter-wav-replay" for t in threading.enumerate())
    summary = app.return_value
    assert summary["event"] == "summary" and "overruns" in summary


async def test_live_replay_shows_bars_detections_and_status_then_q_exits_cleanly(model):
    app = make_app(model)
    async with app.run_test(size=(80, 24)) as pilot:
        bars, log, status = app.query_one(ClassBars), app.query_one(DetectionLog), app.query_one(StatusBar)
        await wait_for(pilot, lambda: app.updates_shown >= 2, what="posteriors")
        assert "no detections yet" in text(log)  # the first keyword ends at 1.9 s of the stream
        # The bars follow the engine at its 10 Hz hop: about 20 new sets of values while the stream moves on 2 s
        # (measured 19-20; the bound leaves a 3x margin for a loaded machine, where the UI draws less often).
        seen, start, t0 = set(), app.updates_shown, app.status.stream_time
        deadline = time.monotonic() + 30
        while app.status.stream_time < t0 + 2.0:
            assert time.monotonic() < deadline, "the stream time did not advance"
            seen.add(bars.values())
            await pilot.pause(0.02)
        assert app.updates_shown - start >= 6 and len(seen) >= 5
        rows = text(bars).splitlines()
        assert len(rows) == 12 and sum(r[1] == ">" for r in rows) == 1  # one top class, marked
        assert all("|" in r for r in rows if r[2:].split()[0] in KEYWORDS)  # the threshold on keyword bars
        assert "dBFS" in text(app.query_one(LevelMeter)) and app.query_one(LevelMeter).history

        # The first keyword detected is one spoken then; it flashes and is logged with time and confidence.
        await wait_for(pilot, lambda: app.detections, what="the first detection")
        d = app.detections[0]
        assert is_spoken_keyword(d) and d.confidence >= DEFAULT
        assert f"{d.time:7.2f} s {d.keyword:<5} {d.confidence:.2f}" in text(log)
        assert bars.flash == d.keyword and "DETECTED " + d.keyword.upper() in bars.border_title
        assert [r[2:].split()[0] for r in text(bars).splitlines() if r.startswith("*")] == [d.keyword]

        status_line = text(status)
        assert "LIVE" in status_line and "infer" in status_line and "ms" in status_line
        assert "overflows 0" in status_line and f"threshold {DEFAULT:.2f}" in status_line
        # A live replay drops a stale window when the consumer stalls: the status shows the engine's own count
        # (how many depends on the machine's load; that the engine keeps up is tested in test_listen).
        dropped = re.search(r"dropped (\d+)", status_line)
        assert dropped and int(dropped.group(1)) == app.status.dropped == app._shown.dropped_windows, status_line
        title = text(app.query_one("#title"))
        assert all(s in title for s in ("keywords.wav", "16000 Hz", model.name, "cpu"))

        await pilot.press("c")
        assert app.detections == [] and "no detections yet" in text(log)
        await pilot.press("q")
        await wait_for(pilot, lambda: app.return_value is not None, what="the app to exit")
    assert_clean_exit(app)
    assert 2.0 < app.return_value["seconds"] < 10 and app.return_value["detections"] >= 1


async def test_keys_pause_threshold_raw_and_help(model):
    app = make_app(model)
    async with app.run_test(size=(80, 24)) as pilot:
        bars, status = app.query_one(ClassBars), app.query_one(StatusBar)
        await wait_for(pilot, lambda: app.updates_shown >= 3, what="posteriors")

        await pilot.press("space")  # pause: the engine stops scoring, nothing moves
        assert app.engine.paused and "PAUSED" in text(status)
        await pilot.pause(0.3)  # a window already being scored may still arrive
        frozen, frozen_bars = app.updates_shown, text(bars)
        await pilot.pause(0.7)
        assert app.updates_shown == frozen and text(bars) == frozen_bars
        await pilot.press("space")
        assert not app.engine.paused and "LIVE" in text(status)
        await wait_for(pilot, lambda: app.updates_shown > frozen + 2, what="updates after resuming")

        def threshold_column() -> int:
            yes_row = next(r for r in text(bars).splitlines() if r[2:].split()[0] == "yes")
            return yes_row.index("|")

        column = threshold_column()
        await pilot.press("plus")
        raised = min(DEFAULT + 0.05, 0.99)  # the threshold stays below 1: a keyword must be able to reach it
        assert app.engine.detector.config.threshold == pytest.approx(raised)
        assert bars.threshold == pytest.approx(raised) and f"threshold {raised:.2f}" in text(status)
        assert threshold_column() > column
        for _ in range(2):
            await pilot.press("minus")
            await pilot.pause()
        assert app.engine.detector.config.threshold == pytest.approx(raised - 0.10)
        assert f"threshold {raised - 0.10:.2f}" in text(status)
        assert threshold_column() < column

        await pilot.press("r")  # raw probabilities instead of smoothed
        assert bars.raw and bars.values() == bars.update.probs and "raw" in bars.border_title
        await pilot.press("r")
        assert not bars.raw and bars.values() == bars.update.smoothed

        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        help_text = str(app.screen.query_one("#help-text").render())
        assert "threshold" in help_text and "pause" in help_text and "quit" in help_text
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)

        await pilot.press("q")
        await wait_for(pilot, lambda: app.return_value is not None, what="the app to exit")
    assert_clean_exit(app)


async def test_end_of_stream_is_shown_with_every_keyword_logged_until_q(model):
    app = make_app(model, realtime=False)  # every window, as fast as it goes
    async with app.run_test(size=(80, 24)) as pilot:
        status = app.query_one(StatusBar)
        await wait_for(pilot, lambda: status.state == "end", timeout=60, what="the end of the stream")
        assert "END OF STREAM" in text(status) and "q to quit" in text(status)
        # Every detection of the engine is in the log, in order (replay_file: the same replay, without a UI).
        assert app.detections == [e for e in replay_file(model, EXAMPLE)[0] if isinstance(e, Detection)]
        assert app.detections and all(is_spoken_keyword(d) for d in app.detections)
        log_lines = text(app.query_one(DetectionLog)).splitlines()
        assert [line[1:].split()[2] for line in log_lines] == [d.keyword for d in app.detections]
        await pilot.pause(0.3)
        assert app.is_running and app.return_value is None  # it stays for the person to read
        await pilot.press("q")
        await wait_for(pilot, lambda: app.return_value is not None, what="the app to exit")
    assert_clean_exit(app)
    assert app.return_value["detections"] == len(app.detections)
    assert app.return_value["seconds"] == pytest.approx(sf.info(EXAMPLE).duration, abs=0.01)


@pytest.mark.parametrize("size", [(80, 24), (60, 18), (40, 12)])
async def test_renders_at_80x24_and_degrades_when_smaller(model, size):
    width, height = size
    app = make_app(model)
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: app.updates_shown >= 3, what="posteriors")
        await pilot.pause(0.1)
        screen = app.screen
        assert screen.max_scroll_y == 0 and screen.max_scroll_x == 0  # nothing hangs off the screen
        bars, status = app.query_one(ClassBars), app.query_one(StatusBar)
        for widget in (bars, status, app.query_one(LevelMeter)):
            assert widget.display and widget.region.height >= 1
            assert screen.region.contains_region(widget.region), widget
        rows = text(bars).splitlines()
        assert len(rows) == min(12, bars.region.height) and len(rows) >= 8
        assert sum(r[1] == ">" for r in rows) == 1  # the top class is always among those shown
        assert all(len(r) <= bars.region.width for r in rows) and len(text(status)) <= width
        log = app.query_one(DetectionLog)
        assert log.display == (width >= 50)
        if height >= 18:
            assert len(rows) == 12
        app.export_screenshot()  # the whole screen renders
        await pilot.press("q")
        await wait_for(pilot, lambda: app.return_value is not None, what="the app to exit")
    assert_clean_exit(app)


def test_run_app_returns_the_summary(model):
    engine = Engine(model, EngineConfig())
    source = Replay(EXAMPLE, realtime=False)
    summary = run_app(source, engine, model.name, "cpu", exit_on_end=True, headless=True)
    assert summary == {**engine.summary(), "overruns": 0}
    assert summary["detections"] >= 1 and summary["windows"] == int(sf.info(EXAMPLE).duration * 10) and source.closed


class Unplugged(Replay):
    """A device that disappears after half a second of audio."""

    def read(self, timeout):
        if self._position > self.device_rate // 2:
            raise AudioError("audio device 'keywords.wav' stopped delivering audio (unplugged?)")
        return super().read(timeout)


def test_an_error_in_the_engine_thread_ends_the_app_and_is_reraised(model):
    source = Unplugged(EXAMPLE, realtime=False)
    with pytest.raises(AudioError, match="unplugged"):
        run_app(source, Engine(model, EngineConfig()), model.name, "cpu", headless=True)
    assert source.closed


@pytest.mark.parametrize("score, green", [("class", []), ("any-keyword", ["up"])])
async def test_bars_turn_green_where_the_detector_score_reaches_the_threshold(score, green):
    from textual.app import App

    from spotter.config import LABELS
    from spotter.events import PosteriorUpdate

    class Bars(App):
        def compose(self):
            yield ClassBars(LABELS, score=score)

    probs = [0.0] * len(LABELS)
    probs[LABELS.index("up")], probs[LABELS.index("off")], probs[LABELS.index("unknown")] = 0.5, 0.44, 0.06
    app = Bars()
    async with app.run_test(size=(60, 16)) as pilot:
        bars = app.query_one(ClassBars)
        bars.threshold = 0.8  # up 0.5 alone is below it; up + off (0.94) is above
        bars.update = PosteriorUpdate(1.0, LABELS, tuple(probs), tuple(probs), -30.0, 5.0)
        await pilot.pause()
        rendered = bars.render()
        rows = rendered.plain.split("\n")
        green_rows = {rows[rendered.plain[:span.start].count("\n")].split()[0].strip("*>")
                      for span in rendered.spans if "green" in str(span.style)}
        assert sorted(green_rows) == green
