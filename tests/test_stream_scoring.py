"""Streaming accuracy scoring (spotter.evaluation.streams): hand-made detections with known counts, and labels files."""

from __future__ import annotations

import json

import pytest

from spotter.errors import SpotterError
from spotter.events import Detection
from spotter.data.labels import LabelEvent, LabelsError, read_labels
from spotter.evaluation.streams import score_stream

LABELS = [
    LabelEvent("yes", 1.0, 1.5, "yes"),
    LabelEvent("no", 3.0, 3.4, "no"),
    LabelEvent("stop", 5.0, 5.5, "stop"),
    LabelEvent("go", 7.0, 7.3, "go"),
    LabelEvent("unknown", 9.0, 9.4, "marvin"),
    LabelEvent("speech", 11.0, 14.0, "A sentence."),
]


def test_every_branch_counted():
    detections = [
        ("off", 18.0),   # false alarm, in nothing
        ("yes", 1.7),    # matched, latency +0.2
        ("yes", 1.9),    # same window again: duplicate
        ("up", 3.5),     # another keyword in "no"'s window: wrong
        ("stop", 6.0),   # exactly at end + tolerance: matched, latency +0.5
        ("left", 9.2),   # false alarm inside an unknown word
        ("on", 12.0),    # false alarm inside a sentence
    ]                    # "go" gets nothing: missed
    s = score_stream(detections, LABELS, duration_s=20.0, tolerance_s=0.5)
    assert (s.matched, s.wrong, s.missed, s.false_alarms, s.duplicates) == (2, 1, 1, 3, 1)
    assert (s.fa_in_speech, s.fa_in_unknown, s.keywords) == (1, 1, 4)
    assert s.recall == pytest.approx(0.5)
    assert s.fa_per_hour == pytest.approx(3 / (20 / 3600))
    assert s.latency_mean_s == pytest.approx(0.35)
    assert s.latency_median_s == pytest.approx(0.35) and s.latencies_s == pytest.approx((0.2, 0.5))
    assert s.latency_p95_s == pytest.approx(0.2 + 0.95 * 0.3)  # linear interpolation of [0.2, 0.5]
    assert s.per_keyword_recall == {"yes": 1.0, "no": 0.0, "stop": 1.0, "go": 0.0}
    assert s.per_keyword_total == {"yes": 1, "no": 1, "stop": 1, "go": 1}
    assert s.matched + s.wrong + s.missed == s.keywords


def test_tolerance_edges_and_early_detection():
    just_late = score_stream([("yes", 1.5 + 0.25 + 1e-6)], LABELS[:1], 10.0, tolerance_s=0.25)
    assert (just_late.matched, just_late.false_alarms, just_late.missed) == (0, 1, 1)
    before_start = score_stream([("yes", 0.99)], LABELS[:1], 10.0)
    assert (before_start.matched, before_start.false_alarms) == (0, 1)
    early = score_stream([("yes", 1.2)], LABELS[:1], 10.0)  # before the word ends
    assert early.matched == 1 and early.latency_mean_s == pytest.approx(-0.3)
    at_start = score_stream([("yes", 1.0)], LABELS[:1], 10.0, tolerance_s=0.0)
    assert at_start.matched == 1


def test_detection_objects_unsorted_and_overlapping_windows():
    labels = [LabelEvent("yes", 1.0, 1.5), LabelEvent("yes", 1.8, 2.2)]  # windows overlap from 1.8 to 2.0
    detections = [Detection("yes", 0.9, 2.3), Detection("yes", 0.9, 1.9)]
    s = score_stream(detections, labels, 10.0, tolerance_s=0.5)
    # 1.9 takes the earlier, still free utterance; 2.3 then the second one
    assert (s.matched, s.duplicates, s.false_alarms, s.missed) == (2, 0, 0, 0)
    assert s.latency_mean_s == pytest.approx((0.4 + 0.1) / 2)


def test_first_detection_decides():
    s = score_stream([("no", 1.6), ("yes", 1.7)], LABELS[:1], 10.0)
    assert (s.matched, s.wrong, s.duplicates, s.missed) == (0, 1, 1, 0)
    assert s.latency_mean_s is None and s.recall == 0.0


def test_no_keywords_and_reports():
    speech = [LabelEvent("speech", 0.0, 30.0, "Long talk.")]
    s = score_stream([("go", 10.0)], speech, duration_s=3600.0)
    assert s.keywords == 0 and s.recall is None and s.latency_p95_s is None
    assert (s.false_alarms, s.fa_in_speech, s.fa_per_hour) == (1, 1, pytest.approx(1.0))
    assert json.loads(json.dumps(s.to_dict()))["false_alarms"] == 1
    table = s.format_table()
    assert "false alarms" in table and "1.00 per hour" in table and "recall -" in table

    full = score_stream([("yes", 1.7)], LABELS, 20.0)
    table = full.format_table()
    assert "recall 25.0 %" in table and "yes" in table and "1/1" in table


def test_bad_arguments():
    with pytest.raises(ValueError):
        score_stream([], LABELS, 0.0)
    with pytest.raises(ValueError):
        score_stream([], LABELS, 10.0, tolerance_s=-0.1)


# --------------------------------------------------------------------------- labels files

def test_read_labels_round_trip(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text('label,start,end,word\nyes,1.000,1.500,yes\n\nspeech,2.5,4.25,"Hello, there."\n'
                    "unknown,5,5.4,marvin\n", encoding="utf-8")
    assert read_labels(path) == [LabelEvent("yes", 1.0, 1.5, "yes"), LabelEvent("speech", 2.5, 4.25, "Hello, there."),
                                 LabelEvent("unknown", 5.0, 5.4, "marvin")]
    three = tmp_path / "three.csv"
    three.write_text("label,start,end\nno,0.5,0.9\n", encoding="utf-8")
    assert read_labels(three) == [LabelEvent("no", 0.5, 0.9, "")]


@pytest.mark.parametrize("text, expected", [
    ("", "line 1: expected the header"),
    ("start,end,label\nyes,1,2\n", "line 1: expected the header"),
    ("label,start,end\nyes,1\n", "line 2: expected 3 or 4 fields"),
    ("label,start,end\nyes,1,2\nno,abc,2\n", "line 3: start must be seconds >= 0, found 'abc'"),
    ("label,start,end\nyes,-1,2\n", "line 2: start must be seconds >= 0"),
    ("label,start,end\nyes,1,nan\n", "line 2: end must be seconds >= 0"),
    ("label,start,end\nyes,2,1\n", "line 2: end 1.0 is before start 2.0"),
    ("label,start,end\n ,1,2\n", "line 2: empty label"),
])
def test_read_labels_errors(tmp_path, text, expected):
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LabelsError, match=expected.replace("(", r"\(")) as info:
        read_labels(path)
    assert isinstance(info.value, SpotterError) and "\n" not in str(info.value)


def test_read_labels_missing_file(tmp_path):
    with pytest.raises(LabelsError, match="no such labels file"):
        read_labels(tmp_path / "nope.csv")
