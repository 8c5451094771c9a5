"""spotter data merge: corpora joined into one, held-out voices still held out."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from spotter.config import BACKGROUND_NOISE_DIR
from spotter.data.merge import merge_corpora
from spotter.data.speech_commands import build_index
from spotter.data.synth import synthesize_corpus
from spotter.errors import SpotterError


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("merge")
    made = []
    for seed in (0, 1):
        out = root / f"c{seed}"
        synthesize_corpus(out, per_word=5, seed=seed, engines=("espeak",), words=("yes", "no", "bed"),
                          progress=False, noise_seconds=1.0)
        made.append(out)
    return made


def _paths(root, split):
    return {e.path for e in build_index(root, split, unknown_fraction=0.1, silence_fraction=0.0, balance_all=False)}


def test_merge_joins_clips_splits_noise_and_voices(corpora, tmp_path):
    a, b = corpora
    out = tmp_path / "m"
    manifest = merge_corpora(out, [a, b])
    for split in ("test", "val"):  # every held-out clip of either source is held out in the merge
        assert _paths(out, split) == _paths(a, split) | _paths(b, split)
    clips = sorted(p.relative_to(out).as_posix() for p in out.glob("*/*_nohash_*.wav"))
    assert len(clips) == manifest["total_clips"] == 2 * 3 * 5
    assert all(os.path.samefile(out / c, (a if (a / c).exists() else b) / c) for c in clips)  # hard links
    noise = sorted(p.name for p in (out / BACKGROUND_NOISE_DIR).iterdir())
    assert noise == sorted(f"{src.name}-{p.name}" for src in (a, b) for p in (src / BACKGROUND_NOISE_DIR).iterdir())
    sources = [json.loads((src / "corpus.json").read_text()) for src in (a, b)]
    assert manifest["voices"] == sources[0]["voices"] + sources[1]["voices"]
    assert manifest["engines"] == ["espeak"] and manifest["synthetic"] is True
    assert json.loads((out / "corpus.json").read_text()) == manifest
    assert manifest["split_clips"]["testing"] == len((out / "testing_list.txt").read_text().split())


def test_merge_refuses_clashes_and_reuse(corpora, tmp_path):
    a, b = corpora
    copy = tmp_path / "copy"
    shutil.copytree(a, copy)
    with pytest.raises(SpotterError, match=r"is in both .*distinct clip names"):
        merge_corpora(tmp_path / "x", [a, copy])
    with pytest.raises(SpotterError, match="named twice"):
        merge_corpora(tmp_path / "y", [a, a])
    with pytest.raises(SpotterError, match="at least two"):
        merge_corpora(tmp_path / "z", [a])
    with pytest.raises(SpotterError, match="not empty"):
        merge_corpora(copy, [a, b])


def test_cli_merge_prints_a_summary_and_one_line_errors(corpora, tmp_path):
    a, b = corpora
    run = [sys.executable, "-m", "spotter", "data", "merge", str(a), str(b), "--out"]
    ok = subprocess.run([*run, str(tmp_path / "m")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "30 clips" in ok.stdout and "from 2 corpora" in ok.stdout
    again = subprocess.run([*run, str(tmp_path / "m")], capture_output=True, text=True)
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and "not empty" in again.stderr


def test_writing_into_a_merged_corpus_never_changes_a_source(corpora, tmp_path):
    """Merged clips are hard links: tools that add clips to the merge must replace files, not write through."""
    import soundfile as sf

    from spotter.data.speech import SPEECH_WORD, add_speech_crops

    a, b = corpora
    probe = tmp_path / "probe"
    merge_corpora(tmp_path / "m0", [a, b])
    shutil.copytree(tmp_path / "m0", probe)
    names = sorted(p.name for p in add_speech_crops(probe, count=4, seed=0, progress=False).iterdir())
    source = tmp_path / "a"
    shutil.copytree(a, source)
    (source / SPEECH_WORD).mkdir()
    for name in names:  # the source holds clips of exactly the names the tool will write
        sf.write(source / SPEECH_WORD / name, [0.0] * 16000, 16000, subtype="PCM_16")
    before = {n: (source / SPEECH_WORD / n).read_bytes() for n in names}
    merged = tmp_path / "m1"
    merge_corpora(merged, [source, b])
    assert all(os.path.samefile(merged / SPEECH_WORD / n, source / SPEECH_WORD / n) for n in names)
    add_speech_crops(merged, count=4, seed=0, progress=False)
    assert {n: (source / SPEECH_WORD / n).read_bytes() for n in names} == before
    assert all((merged / SPEECH_WORD / n).read_bytes() != before[n] for n in names)
