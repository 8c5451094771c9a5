"""The detector is pure: posteriors and times in, detections out."""

import re
import numpy as np
import pytest

from spotter.config import LABELS
from spotter.detector import Detector, DetectorConfig

YES, NO, UNKNOWN = LABELS.index("yes"), LABELS.index("no"), LABELS.index("unknown")


def posterior(label: int, p: float) -> np.ndarray:
    v = np.full(len(LABELS), (1 - p) / (len(LABELS) - 1))
    v[label] = p
    return v


def run(det, seq, hop=0.1):
    fired = []
    for i, probs in enumerate(seq):
        fired += det.update(round((i + 1) * hop, 3), probs)[1]
    return fired


def test_fires_once_per_word_after_min_count_smoothed_hops():
    det = Detector(LABELS, DetectorConfig(threshold=0.6, smoothing_hops=2, min_count=2, refractory_s=0.5))
    seq = [posterior(UNKNOWN, 0.9)] * 5 + [posterior(YES, 0.95)] * 6 + [posterior(UNKNOWN, 0.9)] * 5
    fired = run(det, seq)
    # yes starts at hop 6 (t=0.6); smoothed over 2 hops it first reaches 0.6 at t=0.7, the 2nd such hop is t=0.8
    assert [(d.keyword, d.time) for d in fired] == [("yes", 0.8)]
    assert fired[0].confidence == pytest.approx(0.95)


def test_smoothing_removes_a_single_hop_spike():
    det = Detector(LABELS, DetectorConfig(threshold=0.7, smoothing_hops=3, min_count=1))
    seq = [posterior(UNKNOWN, 0.9)] * 3 + [posterior(NO, 0.99)] + [posterior(UNKNOWN, 0.9)] * 3
    assert run(det, seq) == []


def test_refractory_suppresses_a_quick_second_word_but_not_a_later_one():
    cfg = DetectorConfig(threshold=0.6, smoothing_hops=1, min_count=1, refractory_s=1.0)
    quiet = [posterior(UNKNOWN, 0.9)] * 3
    seq = [posterior(YES, 0.9)] * 2 + quiet + [posterior(NO, 0.9)] * 2 + quiet * 3 + [posterior(NO, 0.9)] * 2
    fired = run(Detector(LABELS, cfg), seq)
    # "no" at t=0.6-0.7 falls within 1 s of "yes" (t=0.1); the next "no" starts at t=1.7
    assert [(d.keyword, d.time) for d in fired] == [("yes", 0.1), ("no", 1.7)]


def test_per_keyword_threshold_and_non_keywords_never_fire():
    cfg = DetectorConfig(threshold=0.5, thresholds={"yes": 0.97}, smoothing_hops=1, min_count=1, refractory_s=0)
    assert run(Detector(LABELS, cfg), [posterior(YES, 0.95)] * 5) == []
    assert len(run(Detector(LABELS, cfg), [posterior(NO, 0.95)] * 5)) == 1
    assert run(Detector(LABELS, cfg), [posterior(UNKNOWN, 1.0)] * 5 + [posterior(LABELS.index("silence"), 1.0)] * 5) == []


def test_same_input_same_output_and_reset():
    cfg = DetectorConfig(threshold=0.5, smoothing_hops=3, min_count=2, refractory_s=0.3)
    rng = np.random.default_rng(0)
    seq = []
    while len(seq) < 400:  # runs of 3-10 hops dominated by one random class, with noise
        label, length = rng.integers(12), rng.integers(3, 11)
        seq += [0.8 * posterior(label, rng.uniform(0.4, 1.0)) + 0.2 * rng.dirichlet(np.ones(12)) for _ in range(length)]
    det = Detector(LABELS, cfg)
    first = run(det, seq)
    det.reset()
    assert run(det, seq) == first and len(first) > 3


@pytest.mark.parametrize("changes, message", [
    ({"threshold": 0.0}, "threshold 0: a probability in (0, 1]"),
    ({"threshold": 1.2}, "threshold 1.2: a probability in (0, 1]"),
    ({"thresholds": {"go": -0.1}}, "thresholds['go'] -0.1"),
    ({"smoothing_hops": 0}, "smoothing-hops 0: must be at least 1"),
    ({"min_count": 0}, "min-count 0: must be at least 1"),
    ({"refractory_s": -1.0}, "must not be negative"),
    ({"score": "keywords"}, "score 'keywords': one of class, any-keyword"),
])
def test_impossible_settings_are_refused_with_a_message(changes, message):
    from spotter.detector import DetectorConfigError

    with pytest.raises(DetectorConfigError, match=re.escape(message)):
        DetectorConfig(**changes)


def test_settings_travel_in_checkpoint_meta_and_bad_ones_name_the_file():
    from spotter.detector import DetectorConfigError, detector_from_meta

    tuned = DetectorConfig(threshold=0.97, thresholds={"off": 0.8, "yes": 0.9}, smoothing_hops=2, min_count=2)
    assert detector_from_meta({"detector": tuned.to_meta()}) == tuned
    any_keyword = DetectorConfig(threshold=0.9, smoothing_hops=4, min_count=2, score="any-keyword")
    assert detector_from_meta({"detector": any_keyword.to_meta()}) == any_keyword
    older = {k: v for k, v in tuned.to_meta().items() if k != "score"}  # saved before scores existed
    assert detector_from_meta({"detector": older}).score == "class"
    assert detector_from_meta({}) == DetectorConfig() and detector_from_meta({"epochs": 3}) == DetectorConfig()
    for bad, why in (({"threshold": 2.0}, "threshold 2"), ({"thershold": 0.9}, "unknown keys"),
                     ({"thresholds": {"off": "x"}}, "could not convert|must be real|float"), ("0.9", "unknown keys")):
        with pytest.raises(DetectorConfigError, match=r"m\.pt: its stored detector settings are unusable") as info:
            detector_from_meta({"detector": bad}, source="m.pt")
        assert re.search(why, str(info.value)) and "\n" not in str(info.value)


def test_set_threshold_moves_the_per_keyword_thresholds_with_it():
    det = Detector(LABELS, DetectorConfig(threshold=0.95, thresholds={"off": 0.8, "stop": 0.98}))
    det.set_threshold(0.9)
    assert det.config.threshold == pytest.approx(0.9)
    assert det.config.thresholds == pytest.approx({"off": 0.75, "stop": 0.93})
    det.set_threshold(1.5)  # clipped at 0.99; per-keyword ones clipped too
    assert det.config.threshold == 0.99 and det.config.thresholds == pytest.approx({"off": 0.84, "stop": 0.99})
    # a lowered per-keyword threshold changes what fires
    seq = [posterior(UNKNOWN, 0.9)] * 3 + [posterior(LABELS.index("off"), 0.86)] * 4 + [posterior(UNKNOWN, 0.9)] * 3
    assert [d.keyword for d in run(det, seq)] == ["off"]
    det.reset()
    det.config = DetectorConfig(threshold=0.99)
    assert run(det, seq) == []


def split(probs: dict) -> np.ndarray:
    """A posterior with the given classes' probabilities and the rest spread evenly."""
    v = np.full(len(LABELS), (1 - sum(probs.values())) / (len(LABELS) - len(probs)))
    for label, p in probs.items():
        v[LABELS.index(label)] = p
    return v


def test_any_keyword_score_fires_on_a_keyword_split_between_two_and_names_the_likelier():
    quiet = [split({"unknown": 0.9})] * 3
    word = [split({"up": 0.5, "off": 0.44, "unknown": 0.06})] * 4  # sure of a keyword, not of which: 0.94
    seq = quiet + word + quiet
    by_class = DetectorConfig(threshold=0.8, smoothing_hops=1, min_count=2, score="class")
    assert run(Detector(LABELS, by_class), seq) == []
    fired = run(Detector(LABELS, DetectorConfig(threshold=0.8, smoothing_hops=1, min_count=2, score="any-keyword")), seq)
    assert [(d.keyword, d.time) for d in fired] == [("up", 0.5)]
    assert fired[0].confidence == pytest.approx(0.94)  # the score that reached the threshold
    # the per-keyword threshold of the named keyword applies
    strict_up = DetectorConfig(threshold=0.8, thresholds={"up": 0.97}, smoothing_hops=1, min_count=2, score="any-keyword")
    assert run(Detector(LABELS, strict_up), seq) == []


def test_any_keyword_score_ignores_non_keywords_and_a_changing_guess_restarts_the_count():
    cfg = DetectorConfig(threshold=0.8, smoothing_hops=1, min_count=2, refractory_s=0, score="any-keyword")
    # unknown words and silence: the keywords together stay far below the threshold
    seq = [split({"unknown": 0.7, "no": 0.2})] * 4 + [split({"silence": 0.95})] * 4
    assert run(Detector(LABELS, cfg), seq) == []
    # keyword mass above threshold, but the likeliest keyword flips every hop: never 2 in a row of one
    flip = [split({"no": 0.5, "go": 0.4}), split({"go": 0.5, "no": 0.4})] * 3
    assert run(Detector(LABELS, cfg), flip) == []
    assert [d.keyword for d in run(Detector(LABELS, cfg), flip[:1] * 2)] == ["no"]


@pytest.mark.parametrize("score", ["class", "any-keyword"])
@pytest.mark.parametrize("smoothing, min_count, refractory, per_keyword", [
    (1, 1, 0.0, {}), (4, 2, 1.0, {}), (3, 3, 0.5, {"off": 0.6, "yes": 0.95}), (5, 1, 1.0, {"no": 0.5})])
def test_offline_replay_fires_exactly_what_the_hop_by_hop_detector_fires(score, smoothing, min_count, refractory,
                                                                           per_keyword):
    from spotter.detector import detect_offline, smoothed_posteriors

    rng = np.random.default_rng(smoothing * 10 + min_count)
    seq = []
    while len(seq) < 3000:  # runs of 1-12 hops led by a random class or split between two keywords, with noise
        a, b, length = rng.integers(12), rng.integers(10), rng.integers(1, 13)
        for _ in range(length):
            v = 0.8 * posterior(a, rng.uniform(0.5, 1.0)) + 0.2 * rng.dirichlet(np.ones(12) * 0.3)
            if rng.random() < 0.3:  # move part of the top class to another keyword
                moved = v[a] * rng.uniform(0.2, 0.5)
                v[a] -= moved
                v[b] += moved
            seq.append(v)
    times = np.round(np.arange(1, len(seq) + 1) * 0.1, 3)
    cfg = DetectorConfig(threshold=0.6, thresholds=per_keyword, smoothing_hops=smoothing, min_count=min_count,
                         refractory_s=refractory, score=score)
    det, hop_by_hop, smoothed = Detector(LABELS, cfg), [], []
    for t, p in zip(times, seq):
        s, fired = det.update(float(t), p)
        smoothed.append(s)
        hop_by_hop += fired
    assert np.array_equal(smoothed_posteriors(seq, smoothing), np.array(smoothed))  # bit for bit
    assert detect_offline(LABELS, cfg, times, np.array(seq)) == hop_by_hop and len(hop_by_hop) > 20


@pytest.mark.parametrize("score", ["class", "any-keyword"])
@pytest.mark.parametrize("smoothing", [1, 2, 4])
def test_one_array_passed_again_and_again_scores_as_fresh_copies_would(score, smoothing):
    """The engine passes one silence array for every gated hop; the detector skips the work of an input that
    changes nothing, and must give what copies of it give, also when a threshold moves under it."""
    rng = np.random.default_rng(smoothing)
    runs = [posterior(LABELS.index("silence"), 1.0), posterior(YES, 0.5), posterior(NO, 0.97),
            posterior(UNKNOWN, 0.9), posterior(YES, 0.5)]
    cfg = DetectorConfig(threshold=0.6, smoothing_hops=smoothing, min_count=2, refractory_s=0.5, score=score)
    shared, copied = Detector(LABELS, cfg), Detector(LABELS, cfg)
    t, fired_shared, fired_copied = 0.0, [], []
    for i in range(40):
        v, length = runs[i % len(runs)], int(rng.integers(1, 9))
        if i == 24:
            assert v is runs[4]
            length = 12
        for j in range(length):
            if i == 24 and j == 6:  # the UI's threshold keys, in the middle of a run of one array scored below it
                shared.set_threshold(0.45)
                copied.set_threshold(0.45)
            t = round(t + 0.1, 3)
            s1, f1 = shared.update(t, v)
            s2, f2 = copied.update(t, v.copy())
            assert np.array_equal(s1, s2)
            fired_shared += f1
            fired_copied += f2
    assert fired_shared == fired_copied
    assert {d.keyword for d in fired_shared} == {"no", "yes"}  # "yes" at 0.5 fires only after the threshold moved


def _member_posterior(rng, keyword_sum: float, keyword: int) -> np.ndarray:
    """Random class probabilities whose ten keywords sum to ``keyword_sum``, most of it on ``keyword``."""
    v = np.zeros(len(LABELS))
    v[:10] = keyword_sum * rng.dirichlet(np.full(10, 0.3))
    v[keyword] += keyword_sum * rng.uniform(5, 300)
    v[:10] *= keyword_sum / v[:10].sum()
    v[10:] = (1 - keyword_sum) * rng.dirichlet(np.ones(2))
    return v


@pytest.mark.parametrize("score, threshold, per_keyword, smoothing, members", [
    ("any-keyword", 0.85, {}, 2, 2),  # the shipped settings
    ("class", 0.95, {}, 1, 2), ("class", 0.92, {"no": 0.88}, 2, 3), ("any-keyword", 0.9, {}, 2, 3)])
def test_screening_members_fires_exactly_what_the_whole_ensemble_fires(score, threshold, per_keyword, smoothing,
                                                                       members):
    """The engine runs an ensemble's other members only when the first member's keyword probability reaches
    screen_limit, and feeds the first member's probabilities alone otherwise: the detections must be the
    ensemble's, on sequences where the first member often sits just below the limit while the others are sure."""
    from spotter.detector import screen_limit

    cfg = DetectorConfig(threshold=threshold, thresholds=per_keyword, smoothing_hops=smoothing, min_count=2,
                         refractory_s=0.3, score=score)
    limit = screen_limit(cfg, members)
    assert 0 < limit < min([threshold, *per_keyword.values()])
    rng = np.random.default_rng(smoothing * 7 + members)
    whole, screened_det = Detector(LABELS, cfg), Detector(LABELS, cfg)
    want, got, screened, i = [], [], 0, 0
    while i < 6000:  # runs of 1-8 hops of one keyword: the first member unsure, near the limit or sure
        keyword, length = int(rng.integers(10)), int(rng.integers(1, 9))
        level = rng.choice([rng.uniform(0, 1), limit + rng.uniform(-0.05, 0.05), rng.uniform(0.9, 1)])
        others_sure = rng.random() < 0.7
        for _ in range(length):
            first = _member_posterior(rng, float(np.clip(level + rng.normal(0, 0.02), 0, 1)), keyword)
            others = [_member_posterior(rng, rng.uniform(0.97, 1) if others_sure else rng.uniform(0, 1), keyword)
                      for _ in range(members - 1)]
            ensemble = (first + sum(others)) / members
            i += 1
            t = round(i * 0.1, 3)
            want += whole.update(t, ensemble)[1]
            skip = first[:10].sum() < limit
            screened += skip
            got += screened_det.update(t, first if skip else ensemble)[1]
    assert got == want and len(want) > 100 and screened > 1500


def test_screen_limit_of_the_shipped_settings_and_where_there_is_no_room():
    from spotter.detector import screen_limit

    shipped = DetectorConfig(threshold=0.85, smoothing_hops=2, min_count=3, score="any-keyword")
    # a hop's ensemble sum must reach 2 x 0.85 - 1 = 0.7 to count; with two members the first must reach 0.4
    assert screen_limit(shipped, 2) == pytest.approx(0.4, abs=1e-3) and screen_limit(shipped, 2) < 0.4
    assert screen_limit(shipped, 1) == 0.0  # one network: nothing to screen
    assert screen_limit(DetectorConfig(threshold=0.5, smoothing_hops=4), 2) == 0.0  # no hop can be ruled out
