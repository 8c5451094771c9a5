"""benchmarks/bench_voices.py's account of where keywords are lost, on the example recording's labels."""

from __future__ import annotations

import sys
from pathlib import Path

from spotter.data.labels import read_labels
from spotter.events import Detection

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_voices import TOLERANCE_S, found_words, where_lost  # noqa: E402
from spotter.evaluation.streams import score_stream  # noqa: E402


def detection(keyword: str, time: float) -> Detection:
    return Detection(keyword=keyword, confidence=0.9, time=time)


LABELS = read_labels(ROOT / "examples" / "keywords.csv")  # yes stop left (marvin) go (speech) down no right off
DETECTIONS = [
    detection("yes", 2.2),     # named right, 0.27 s after the word
    detection("go", 4.5),      # stop, named wrong
    detection("left", 7.6),    # 0.82 s after left ended: too late
    detection("go", 12.26),    # go, at the tolerance's very end (0.75 s)
    detection("no", 9.0),      # on marvin (not a keyword)
    detection("down", 18.2),
    detection("off", 25.5),
    detection("right", 22.8),  # right, named right 0.2 s after it was named wrong
    detection("left", 22.6),   # (listed out of order): the first answer in time counts
]


def example_found():
    """Each keyword of the example recording and whether DETECTIONS found it, as the stream score counts."""
    return found_words(score_stream(DETECTIONS, LABELS, 27.0, tolerance_s=TOLERANCE_S), LABELS)


def test_each_keyword_said_is_found_only_when_named_right_in_time():
    found = example_found()
    assert found == [("yes", True), ("stop", False), ("left", False), ("go", True), ("down", True),
                     ("no", False), ("right", False), ("off", True)]
    scored = score_stream(DETECTIONS, LABELS, 27.0, tolerance_s=TOLERANCE_S)  # the recall the bench reports
    assert sum(f for _, f in found) == scored.matched == 4


def test_found_by_snr_band_and_by_keyword():
    found = example_found()
    snrs = [5.0, 7.5, 12.0, 14.99, 15.0, 19.0, 22.0, 25.0]  # the last band holds its upper end
    lost = where_lost(found, snrs)
    assert lost["by_snr_db"] == {"5-10": [1, 2], "10-15": [1, 2], "15-20": [1, 2], "20-25": [1, 2]}
    assert lost["by_keyword"]["stop"] == [0, 1] and lost["by_keyword"]["off"] == [1, 1]
    assert lost["by_keyword"]["up"] == [0, 0]  # never said
    assert sum(f for f, _ in lost["by_keyword"].values()) == 4


def test_no_bands_without_an_snr_for_every_word():
    found = example_found()
    assert where_lost(found, None)["by_snr_db"] == {}
    assert where_lost(found, [None] * len(found))["by_snr_db"] == {}  # a stream with nothing over its words
    assert where_lost(found, [10.0] * (len(found) - 1))["by_snr_db"] == {}  # SNRs of another stream
