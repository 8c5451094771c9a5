"""`spotter custom`: the user's own words checked, their confusables found, and a spotter made from text.

The end-to-end run is deliberately tiny (12 voices a word, 1 epoch): it checks that every step runs on
real synthesised speech, writes a checkpoint of the user's labels that `listen` takes, and resumes;
how good a full-size run is, is measured in docs/custom.md, not here.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from spotter.checkpoint import load_model
from spotter.custom.phrases import CMU_DICT, PhraseError, check_phrases, confusables, neighbours, reduced_words
from spotter.data.labels import read_labels
from spotter.data.stream import mentions

LEX = {  # a few words of the CMU dictionary, as the lexicon holds them
    "lights": ("l", "ay", "t", "s"), "nights": ("n", "ay", "t", "s"), "lies": ("l", "ay", "z"),
    "on": ("aa", "n"), "in": ("ih", "n"), "an": ("ae", "n"), "off": ("ao", "f"),
    "right": ("r", "ay", "t"), "write": ("r", "ay", "t"), "bright": ("b", "r", "ay", "t"), "ride": ("r", "ay", "d"),
    "the": ("dh", "ax"), "they": ("dh", "ey"), "thau": ("dh", "aw"),
}


def _spotter(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spotter", *args], capture_output=True, text=True, timeout=1200,
                          cwd=cwd)


def test_phrases_are_normalised_into_a_label_set():
    assert check_phrases(["Lights  On", "next slide", "go"]) == ("lights on", "next slide", "go")


@pytest.mark.parametrize("phrases, message", [
    ([""], "no keyword given"),
    (["lights on", ""], "an empty keyword"),
    (["route 66"], "write numbers as words"),
    (["lights@on"], "@ cannot be spoken"),
    (["lights, on"], ", cannot be spoken"),
    (["!!"], "! cannot be spoken"),
    (["one two three four five"], "5 words"),
    (["unknown"], "'unknown' is a class of every model"),
    (["Stop", "stop"], "'stop' is named twice"),
    ([f"word{chr(97 + i)}" for i in range(21)], "21 keywords; at most 20"),
])
def test_bad_keywords_are_refused_in_one_line(phrases, message):
    with pytest.raises(PhraseError, match=message):
        check_phrases(phrases)


def test_confusables_are_parts_and_one_sound_away_never_homophones_or_keywords():
    assert confusables("lights on", ["lights on", "lights off"], lex=LEX) == [
        "lights", "on", "nights on", "lights in", "lights an"]  # "lies" is two sounds from "lights"
    near_right = confusables("right", lex=LEX, per_word=5)
    assert "write" not in near_right and set(near_right) == {"bright", "ride"}
    assert "lights off" not in confusables("lights on", ["lights on", "lights off"], lex=LEX, per_word=10)
    assert confusables("zorblax", lex=LEX) == []  # a word the dictionary does not list: nothing to swap
    assert confusables("zorblax on", lex=LEX) == ["zorblax", "on", "zorblax in", "zorblax an"]


def test_a_reduced_function_word_of_a_phrase_is_not_swapped():
    assert confusables("the lights", lex=LEX, reduced=frozenset()) == ["the", "lights", "they lights", "thau lights",
                                                                         "the nights"]
    assert confusables("the lights", lex=LEX, reduced=frozenset({"the"})) == ["the", "lights", "the nights"]
    assert confusables("the", lex=LEX, reduced=frozenset({"the"})) == ["they", "thau"]  # a word alone: its sounds


@pytest.mark.skipif(not CMU_DICT.is_file(), reason="the CMU dictionary comes with festival (scripts/install_tts.sh)")
def test_the_dictionary_marks_unstressed_function_words_as_reduced():
    reduced = reduced_words()
    assert {"the", "a"} <= reduced and not {"on", "off", "lights", "they"} & reduced
    assert "turn off they lights" not in confusables("turn off the lights")


@pytest.mark.skipif(not CMU_DICT.is_file(), reason="the CMU dictionary comes with festival (scripts/install_tts.sh)")
def test_the_dictionarys_neighbours_are_everyday_words_first():
    from spotter.custom.phrases import lexicon

    near = neighbours("lights", lexicon(), 2)
    assert near == ["likes", "writes"], near  # everyday words of spotter's sentences, one sound from "lights"


def test_mentions_finds_a_phrase_as_whole_words_in_order():
    assert mentions("Please turn the lights on now.", ["lights on"])
    assert not mentions("The lights were on.", ["lights on"])
    assert not mentions("Highlights online", ["lights on"])


def test_bad_keywords_write_nothing(tmp_path):
    out = _spotter("custom", "lights on", "route 66", "--out", str(tmp_path / "c.pt"))
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "write numbers as words" in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_world_voices_are_a_fifth_of_the_voices_unless_given(tmp_path):
    from spotter.custom.build import plan
    from spotter.errors import SpotterError

    out = tmp_path / "c.pt"
    assert plan(["lights on"], out, voices=300, base="none").world_count == 60
    assert plan(["lights on"], out, voices=12, base="none").world_count == 2
    assert plan(["lights on"], out, voices=300, base="none", world_voices=0).world_count == 0
    # every English engine installed says the corpus: the three it needs and the optional ones present
    from spotter.custom.build import ENGINES, MORE_ENGINES
    from spotter.data.tts import available_engines

    engines = plan(["lights on"], out, base="none").engines
    assert engines == ENGINES + tuple(e for e in MORE_ENGINES if e in available_engines())
    refused = _spotter("custom", "lights on", "--out", str(out), "--world-voices", "-1")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "--world-voices -1" in refused.stderr
    with pytest.raises(SpotterError, match="0 \\(none\\) or more"):
        plan(["lights on"], out, world_voices=-3, base="none")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_custom_makes_a_spotter_of_the_users_words_and_resumes(tmp_path):
    out = tmp_path / "mine.pt"
    args = ("custom", "lights on", "next slide", "--out", str(out), "--voices", "12", "--epochs", "1", "--no-progress")
    first = _spotter(*args)
    assert first.returncode == 0, first.stderr
    model = load_model(out, device="cpu")
    assert model.labels == ("lights on", "next slide", "unknown", "silence")
    facts = model.meta["custom"]
    assert facts["keywords"] == ["lights on", "next slide"] and facts["voices"] == 12
    assert facts["base"] == "bcresnet-3-synth.pt"  # custom.yaml's BC-ResNet-3 starts from the shipped network
    assert "nights on" in facts["confusables"]["lights on"] or "likes on" in facts["confusables"]["lights on"]
    assert "detector" in model.meta
    assert 1.0 <= facts["window_s"] == model.frontend.config.window_seconds <= 1.5  # "next slide": about 1.3 s
    assert facts["validation"]["confusables_said"] > 0
    work = tmp_path / "mine-work"
    assert facts["world_voices"] == 2  # a fifth of --voices: WORLD conversions of training voices
    trained_on = json.loads((work / "train" / "corpus.json").read_text())
    world = [v for v in trained_on["voices"] if v["engine"] == "world"]
    assert len(world) == 2 and all(v["split"] == "training" for v in world)
    assert trained_on["split_clips"]["validation"] == json.loads((work / "corpus" / "corpus.json").read_text())[
        "split_clips"]["validation"]  # held-out voices stay as they were: no WORLD voice is tuned or scored on
    assert f"data: {work / 'train'}" in (work / "run" / "config.yaml").read_text()  # trained on the joined corpus
    corpus = json.loads((work / "corpus" / "corpus.json").read_text())
    assert {"lights on", "next slide", *facts["confusables"]["next slide"]} <= set(corpus["words"])
    assert facts["engines"] == corpus["engines"] == sorted({v["engine"] for v in corpus["voices"]},
                                                           key=corpus["engines"].index)
    rows = read_labels(work / "streams" / "val-keywords.csv")
    assert {"lights on", "next slide"} & {r.label for r in rows}
    assert not any(r.label == "speech" and mentions(r.word, facts["keywords"]) for r in rows)

    again = _spotter(*args)  # every step is there: it only re-tunes and writes
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already") == 6, again.stdout

    listened = _spotter("listen", "--model", str(out), "--wav", str(work / "streams" / "val-keywords.wav"),
                        "--json", "--no-ui", "--runtime", "torch")
    assert listened.returncode == 0, listened.stderr
    assert json.loads(listened.stdout.splitlines()[-1])["event"] == "summary"


def test_the_detector_keeps_confusables_and_false_alarms_apart():
    """The validation keyword stream says each confusable far more often than an hour of speech would: one
    "likes on" in twenty firing is within the target, not 12 false alarms per hour that silence the spotter."""
    from spotter.config import labels_for
    from spotter.data.labels import LabelEvent
    from spotter.evaluation.tuning import StreamPosteriors, tune
    from spotter.custom.tune import choose_detector

    labels = labels_for(("lights on",))
    hop = 0.1

    def stream(name, seconds, bursts, events):
        times = np.round(np.arange(1, int(seconds / hop) + 1) * hop, 3)
        probs = np.tile([0.02, 0.9, 0.08], (times.size, 1))
        for t, p in bursts:  # the keyword's probability for 5 hops after t
            i = int(round(t / hop))
            probs[i:i + 5] = [p, 1 - p - 0.01, 0.01]
        return StreamPosteriors(name, times, probs, events, float(seconds))

    keywords = [5.0 + 10 * i for i in range(10)]
    confusables = [10.0 + 10 * i for i in range(20)]
    peaks = [0.96] + [0.3] * 19  # one "likes on" sounds just like the keyword
    kw_stream = stream("kw", 300, [(t + 0.5, 0.95) for t in keywords] + [(t + 0.5, p) for t, p in zip(confusables, peaks)],
                       [LabelEvent("lights on", t, t + 0.6, "lights on") for t in keywords]
                       + [LabelEvent("unknown", t, t + 0.6, "likes on") for t in confusables])
    speech = stream("speech", 1800, [(900.0, 0.7)], [LabelEvent("speech", 0.0, 1800.0, "...")])

    best = choose_detector(kw_stream, speech, labels, ["likes on", "lights"], max_latency_s=None)
    assert best.within and best.recall == 1.0 and best.worst_keyword_recall == 1.0
    assert best.confusables_said == 20 and best.confusables_fired == 1 and best.fa_per_hour <= 1.0
    assert 0.7 < best.config.threshold <= 0.95
    # counted as false alarms per hour of the two streams, that one confusable leaves nothing within 1/h
    lumped = tune([kw_stream, speech], labels, max_fa_per_hour=1.0)
    assert not any(r["recall"] for r in lumped.rows if r["fa_per_hour"] <= 1.0)

    strict = choose_detector(kw_stream, speech, labels, ["likes on"], max_confusable_rate=0.0, max_latency_s=None)
    assert strict.within and strict.confusables_fired == 0 and strict.recall == 0.0  # the keyword is given up


def test_a_keyword_the_model_is_less_sure_of_gets_a_threshold_of_its_own():
    """"next slide" peaks at 0.82 and nothing else comes near it; "lights on" peaks at 0.95 but its confusable
    "likes on" at 0.86. One threshold for both must stay above 0.86 and gives "next slide" up; a threshold
    of its own finds both, and the confusables stay quiet."""
    from spotter.config import labels_for
    from spotter.data.labels import LabelEvent
    from spotter.evaluation.tuning import StreamPosteriors
    from spotter.custom.tune import choose_detector

    labels = labels_for(("lights on", "next slide"))
    hop = 0.1

    def stream(name, seconds, bursts, events):
        times = np.round(np.arange(1, int(seconds / hop) + 1) * hop, 3)
        probs = np.tile([0.01, 0.01, 0.9, 0.08], (times.size, 1))
        for t, k, p in bursts:  # keyword k's probability for 5 hops after t
            i = int(round(t / hop))
            probs[i:i + 5] = 0.0
            probs[i:i + 5, k], probs[i:i + 5, 2], probs[i:i + 5, 3] = p, 1 - p - 0.01, 0.01
        return StreamPosteriors(name, times, probs, events, float(seconds))

    lights, slides, likes = ([5.0 + 15 * i + d for i in range(10)] for d in (0.0, 5.0, 10.0))
    kw_stream = stream("kw", 160, [(t + 0.5, 0, 0.95) for t in lights] + [(t + 0.5, 1, 0.82) for t in slides]
                       + [(t + 0.5, 0, 0.86) for t in likes],
                       [LabelEvent("lights on", t, t + 0.6, "lights on") for t in lights]
                       + [LabelEvent("next slide", t, t + 0.6, "next slide") for t in slides]
                       + [LabelEvent("unknown", t, t + 0.6, "likes on") for t in likes])
    speech = stream("speech", 1800, [(900.0, 0, 0.7)], [LabelEvent("speech", 0.0, 1800.0, "...")])

    one = choose_detector(kw_stream, speech, labels, ["likes on"], max_latency_s=None, per_keyword=False)
    assert one.within and one.worst_keyword_recall == 0.0 and one.per_keyword["lights on"] == 1.0
    own = choose_detector(kw_stream, speech, labels, ["likes on"], max_latency_s=None)
    assert own.within and own.worst_keyword_recall == 1.0 and own.confusables_fired == 0 and own.fa_per_hour == 0
    assert own.config.threshold_for("next slide") <= 0.8 < 0.86 < own.config.threshold_for("lights on")
    assert own.to_dict()["per_keyword_recall"] == {"lights on": 1.0, "next slide": 1.0}


def test_a_run_made_with_other_settings_is_trained_again_not_reused(tmp_path):
    from spotter.custom.build import CONFIG, _stale
    from spotter.training.options import TrainOptions, load_config

    run = tmp_path / "run"
    options = {**load_config(CONFIG), "data": str(tmp_path / "train"), "keywords": "lights on,next slide",
               "epochs": 40, "window_seconds": 1.3, "seed": 0, "out": str(run), "init": "/models/base.pt"}
    assert _stale(run, options) == []  # nothing there yet
    run.mkdir()
    (run / "config.yaml").write_text(TrainOptions(**options).to_yaml())
    assert _stale(run, options) == []  # the same command again: resumed or reused
    other = {**options, "data": str(tmp_path / "corpus"), "window_seconds": 1.5, "init": None}
    assert _stale(run, other) == [f"data {tmp_path / 'train'} -> {tmp_path / 'corpus'}", "window_seconds 1.3 -> 1.5",
                                  "init /models/base.pt -> None"]
