"""Merge corpora in Speech Commands layout into one, so one training run sees them all.

``spotter data merge --out DIR SRC...`` makes ``DIR`` with every word folder's
clips of every source (hard links where the file system allows, copies
otherwise: no audio is duplicated on disk), the split lists concatenated, and
each source's background-noise files under a prefixed name. Clips keep their
names, and with them their speaker ids, so a voice held out in a source stays
held out in the merge. Two sources holding the same ``word/file.wav`` is an
error (the same clip would be counted twice, or a training clip would shadow a
test clip).

``corpus.json``: when the sources have one (the synthetic corpora), the merged
manifest lists the union of their engines and voices, so the tools that read
voices from it (``data speech``, ``data windows``, ``data stream``) work on the
merge as on a single corpus; ``merged_from`` names the sources.

Because clips are hard links, the tools that add clips to a corpus (``data speech``, ``data windows``)
replace a file (unlink, then write) rather than write into it, so adding to a merge never changes a source.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Sequence

from ..config import BACKGROUND_NOISE_DIR
from ..errors import SpotterError
from .speech_commands import TESTING_LIST, VALIDATION_LIST, list_clips, read_split_list

MANIFEST = "corpus.json"


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def merge_corpora(out_dir: str | os.PathLike, sources: Sequence[str | os.PathLike]) -> dict:
    """Merge ``sources`` into the new folder ``out_dir``; return the merged manifest.

    Raises :class:`SpotterError` when ``out_dir`` exists and is not empty, when a source is not a
    corpus, or when two sources share a clip path."""
    out = Path(out_dir)
    roots = [Path(s) for s in sources]
    if len(roots) < 2:
        raise SpotterError("data merge: give at least two source corpora")
    if out.exists() and any(out.iterdir()):
        raise SpotterError(f"data merge: {out} exists and is not empty; choose a new --out")
    if len({r.resolve() for r in roots}) < len(roots):
        raise SpotterError("data merge: a source is named twice")
    clips_of = {}
    for root in roots:
        clips = list_clips(root)
        if not clips:
            raise SpotterError(f"data merge: {root} holds no word folders with WAV clips")
        clips_of[root] = clips
    owner: dict[str, Path] = {}
    for root, clips in clips_of.items():
        for rel, _ in clips:
            if rel in owner:
                raise SpotterError(f"data merge: {rel} is in both {owner[rel]} and {root}; "
                                   "merge corpora with distinct clip names")
            owner[rel] = root

    out.mkdir(parents=True, exist_ok=True)
    validation: list[str] = []
    testing: list[str] = []
    noise_files: list[str] = []
    manifests = []
    for root, clips in clips_of.items():
        for rel, word in clips:
            (out / word).mkdir(exist_ok=True)
            _link(root / rel, out / rel)
        validation += sorted(read_split_list(root / VALIDATION_LIST))
        testing += sorted(read_split_list(root / TESTING_LIST))
        noise_dir = root / BACKGROUND_NOISE_DIR
        if noise_dir.is_dir():
            (out / BACKGROUND_NOISE_DIR).mkdir(exist_ok=True)
            for path in sorted(noise_dir.glob("*.wav")):
                name = f"{root.name}-{path.name}"
                _link(path, out / BACKGROUND_NOISE_DIR / name)
                noise_files.append(name)
        if (root / MANIFEST).is_file():
            try:
                manifests.append(json.loads((root / MANIFEST).read_text(encoding="utf-8")))
            except (OSError, ValueError) as err:
                raise SpotterError(f"data merge: {root / MANIFEST} is unreadable ({err})") from None
    (out / VALIDATION_LIST).write_text("".join(f"{p}\n" for p in validation), encoding="utf-8")
    (out / TESTING_LIST).write_text("".join(f"{p}\n" for p in testing), encoding="utf-8")

    engines = list(dict.fromkeys(e for m in manifests for e in m.get("engines", [])))
    versions: dict = {}
    for m in manifests:
        versions.update(m.get("engine_versions", {}))
    manifest = {
        "format": "google-speech-commands-v2",
        "synthetic": bool(manifests) and len(manifests) == len(roots) and all(m.get("synthetic") for m in manifests),
        "complete": True,
        "merged_from": [str(r) for r in roots],
        "note": " | ".join(dict.fromkeys(m["note"] for m in manifests if m.get("note"))),
        "engines": engines,
        "engine_versions": versions,
        "total_clips": len(owner),
        "split_clips": {"validation": len(validation), "testing": len(testing),
                        "training": len(owner) - len(validation) - len(testing)},
        "background_noise": {"dir": BACKGROUND_NOISE_DIR, "files": noise_files},
        "voices": [v for m in manifests for v in m.get("voices", [])],
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest
