"""`spotter custom`: the user's own words checked, their confusables found, and a spotter made from text.

The end-to-end run is deliberately tiny (12 voices a word, 1 epoch): it checks that every step runs on
real synthesised speech, writes a checkpoint of the user's labels that `listen` takes, and resumes;
how good a full-size run is, is measured in docs/custom.md, not here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from spotter.checkpoint import load_model
from spotter.custom.phrases import CMU_DICT, PhraseError, check_phrases, confusables, neighbours
from spotter.data.labels import read_labels
from spotter.data.stream import mentions

LEX = {  # a few words of the CMU dictionary, as the lexicon holds them
    "lights": ("l", "ay", "t", "s"), "nights": ("n", "ay", "t", "s"), "lies": ("l", "ay", "z"),
    "on": ("aa", "n"), "in": ("ih", "n"), "an": ("ae", "n"), "off": ("ao", "f"),
    "right": ("r", "ay", "t"), "write": ("r", "ay", "t"), "bright": ("b", "r", "ay", "t"), "ride": ("r", "ay", "d"),
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
    assert "nights on" in facts["confusables"]["lights on"] or "likes on" in facts["confusables"]["lights on"]
    assert "detector" in model.meta
    work = tmp_path / "mine-work"
    corpus = json.loads((work / "corpus" / "corpus.json").read_text())
    assert {"lights on", "next slide", *facts["confusables"]["next slide"]} <= set(corpus["words"])
    rows = read_labels(work / "streams" / "val-keywords.csv")
    assert {"lights on", "next slide"} & {r.label for r in rows}
    assert not any(r.label == "speech" and mentions(r.word, facts["keywords"]) for r in rows)

    again = _spotter(*args)  # every step is there: it only re-tunes and writes
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already") == 5, again.stdout

    listened = _spotter("listen", "--model", str(out), "--wav", str(work / "streams" / "val-keywords.wav"),
                        "--json", "--no-ui", "--runtime", "torch")
    assert listened.returncode == 0, listened.stderr
    assert json.loads(listened.stdout.splitlines()[-1])["event"] == "summary"
