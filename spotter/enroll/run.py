"""What ``spotter enroll`` does: recordings in, an enrolled checkpoint out.

Recordings come from a folder (:func:`enroll_from_dir`) or a guided microphone session
(:func:`enroll_live`, which first saves the takes in the profile's folder and then reads them
back exactly as a folder is read). The enrolled model is written atomically, with
``meta["enrollment"]`` (profile, keywords, takes, base model, date, before/after figures):
an interrupted enrollment leaves the previous model intact.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import replace
from pathlib import Path

from ..config import keywords_of
from .profile import PROFILE_MODEL, Enrollment, EnrollmentError, profile_dir, read_enrollment, write_recordings


def parse_keywords(text: str | None, labels) -> list[str] | None:
    """``--keywords yes,no``: the model's keywords named, in the model's order; ``None``: all of them."""
    if not text:
        return None
    wanted = [k.strip() for k in text.split(",") if k.strip()]
    keywords = keywords_of(labels)
    unknown = [k for k in wanted if k not in keywords]
    if unknown or not wanted:
        raise EnrollmentError(f"--keywords {text}: {', '.join(unknown) or 'none given'} is not a keyword of the "
                              f"model ({', '.join(keywords)})")
    return [k for k in keywords if k in wanted]


def enroll(base, enrollment: Enrollment, out: Path, profile: str | None, base_name: str, seed: int = 0,
           progress: bool = True, trainable: str = "all", steps: int | None = None) -> dict:
    """Adapt ``base`` to ``enrollment`` and write the enrolled checkpoint to ``out``; its enrollment facts."""
    from ..checkpoint import save_checkpoint
    from .adapt import AdaptConfig, adapt

    config = AdaptConfig(seed=seed, trainable=trainable)
    config = config if steps is None else replace(config, steps=steps)
    result = adapt(base, enrollment, config, progress=progress)
    facts = {"profile": profile, "keywords": enrollment.keywords, "takes": enrollment.counts(),
             "base_model": base_name, "date": dt.date.today().isoformat(), **result.report}
    meta = {**getattr(result.model, "meta", {}), "enrollment": facts}
    save_checkpoint(result.model, out, meta=meta)  # a temporary file renamed over the old one: atomic
    return facts


def enroll_from_dir(folder, base, base_name: str, out: Path, profile: str | None = None,
                    keywords: list[str] | None = None, seed: int = 0, progress: bool = True,
                    steps: int | None = None) -> dict:
    """``spotter enroll --from-dir``: every file checked first, so bad input writes nothing."""
    enrollment = read_enrollment(folder, keywords or list(keywords_of(base.labels)),
                                 base.frontend.config.window_samples)
    missing = [k for k in (keywords or []) if k not in enrollment.takes]
    if missing:
        raise EnrollmentError(f"--keywords: no takes of {', '.join(missing)} in {folder} (expected "
                              f"{folder}/{missing[0]}/*.wav)")
    return enroll(base, enrollment, out, profile, base_name, seed, progress, steps=steps)


def enroll_live(session, base, base_name: str, profile: str, out: Path, seed: int = 0,
                progress: bool = True, steps: int | None = None) -> dict:
    """``spotter enroll --device``: record, save the takes in the profile's folder, enroll from there."""
    recordings = session.run()
    folder = profile_dir(profile) / "recordings"
    staging = folder.with_name(folder.name + ".new")
    write_recordings(staging, recordings.takes, recordings.speech, recordings.noise)
    if folder.exists():  # the new takes replace the old ones only once all are written
        import shutil

        shutil.rmtree(folder)
    os.replace(staging, folder)
    return enroll_from_dir(folder, base, base_name, out, profile, list(recordings.takes), seed, progress, steps)


def default_out(profile: str) -> Path:
    return profile_dir(profile) / PROFILE_MODEL


def describe(facts: dict) -> str:
    """`spotter info`'s lines for ``meta["enrollment"]``."""
    takes = facts.get("takes", {})
    lines = [f"profile {facts.get('profile') or '-'}, {sum(takes.values())} takes of {len(takes)} keywords "
             f"({', '.join(f'{k} {n}' for k, n in takes.items())}), base {facts.get('base_model')}, "
             f"{facts.get('date')}"]
    if "before" in facts and "after" in facts:
        b, a = facts["before"], facts["after"]
        lines.append(f"held-back takes found: {b['matched']}/{b['keywords']} before, {a['matched']}/{a['keywords']} "
                     f"after; false alarms on the user's speech: {b['false_alarms']} before, {a['false_alarms']} after")
    else:
        lines.append("no held-back takes (one take per keyword): not scored")
    return "\n           ".join(lines)
