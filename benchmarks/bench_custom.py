"""A custom spotter (`spotter custom`) measured on voices of an engine it never heard.

    python benchmarks/bench_custom.py --model custom.pt [--quick] [--voices slt,awb,rms,kal16]
                                      [--per-keyword 10] [--speech-minutes 15] [--out DIR]

`spotter custom` trains and tunes on espeak-ng, piper and festival voices (and pico, mbrola and rhvoice
where installed); here the users are CMU
Flite's speakers (slt, a US woman; awb, a Scottish man; rms, a US man; kal16, a US man, diphone),
each a "person" whose takes vary in tempo, pitch and vocal tract (bench_enrollment.py's persons).
Per person, with the checkpoint's own detector:

* the keywords: ``--per-keyword`` takes of each over babble of other voices at 5-25 dB SNR over the
  word: recall, keywords named as another, false alarms between them;
* the confusables the checkpoint was trained against (``meta["custom"]["confusables"]``: "lights",
  "lights in", ...), two takes each, the same way: how many of them fire (target: at most 1 in 20);
* ``--speech-minutes`` of the person reading keyword-free sentences: false alarms per hour.

Reports each person and the worst; writes results/custom.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from bench_enrollment import _seed, keyword_stream, speech_stream
from common import ROOT, machine, machine_line, parser, table, write_json

PERSONS = ("slt", "awb", "rms", "kal16")


def score(model, wav: Path) -> dict:
    from spotter.config import keywords_of
    from spotter.detector import detector_from_meta
    from spotter.evaluation.streams import score_stream
    from spotter.evaluation.tuning import detections_of, stream_posteriors

    stream = stream_posteriors(model, wav, batched=True)
    found = detections_of(stream, model.labels, detector_from_meta(model.meta))
    s = score_stream(found, stream.labels, stream.duration_s, tolerance_s=0.75, keywords=keywords_of(model.labels))
    return {**s.to_dict(), "hours": stream.duration_s / 3600, "detections": len(found)}


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, required=True, help="a checkpoint made by `spotter custom`")
    p.add_argument("--voices", default=",".join(PERSONS), help=f"persons (default: {','.join(PERSONS)})")
    p.add_argument("--per-keyword", type=int, default=10, help="takes of each keyword per person (default: 10)")
    p.add_argument("--speech-minutes", type=float, default=15.0, help="keyword-free speech per person (default: 15)")
    args = p.parse_args()
    from spotter.checkpoint import load_model
    from spotter.config import keywords_of
    from spotter.data.stream import SENTENCES, mentions
    from spotter.data.tts import espeak

    model = load_model(args.model, device="cpu")
    custom = model.meta.get("custom")
    if not custom:
        raise SystemExit(f"{args.model}: not made by `spotter custom` (no meta['custom'])")
    keywords = keywords_of(model.labels)
    similar = sorted({c for cs in custom["confusables"].values() for c in cs})
    sentences = [s for s in SENTENCES if not mentions(s, [*keywords, *similar])]
    per_keyword = 2 if args.quick else args.per_keyword
    speech_minutes = 1.0 if args.quick else args.speech_minutes
    folder = (args.out or ROOT / "data") / "custom-streams" / args.model.stem  # audio: never into results/
    folder.mkdir(parents=True, exist_ok=True)
    babble = espeak.babble(np.random.default_rng(3), sentences[:20], 20)
    started, rows, results = time.perf_counter(), [], {"model": str(args.model), "keywords": list(keywords),
                                                      "confusables": similar, "persons": {}}
    for name in args.voices.split(","):
        kw = keyword_stream(name, per_keyword, np.random.default_rng(_seed(name)), babble, folder, words=keywords)
        near = keyword_stream(name, 2, np.random.default_rng(_seed(name) + 7), babble, folder, words=similar,
                              label="unknown", tag="confusables")
        n = max(1, int(speech_minutes * 60 / 3.0))
        sp = speech_stream(name, [sentences[i % len(sentences)] for i in range(n)],
                           np.random.default_rng(_seed(name) + 1), folder)
        r = {"keywords": score(model, kw), "confusables": score(model, near), "speech": score(model, sp)}
        results["persons"][name] = r
        k, c, s = r["keywords"], r["confusables"], r["speech"]
        rows.append((name, k["recall"], k["wrong"], k["false_alarms"], f"{c['detections']} / {2 * len(similar)}",
                     s["false_alarms"], s["false_alarms"] / s["hours"], round(s["hours"] * 60, 1)))
        print(f"  {name}: recall {k['recall']:.3f}, confusables fired {c['detections']}/{2 * len(similar)}, "
              f"speech FA {s['false_alarms']} in {s['hours'] * 60:.1f} min", flush=True)
    worst = min(rows, key=lambda row: row[1])
    speech_hours = sum(r["speech"]["hours"] for r in results["persons"].values())
    speech_fa = sum(r["speech"]["false_alarms"] for r in results["persons"].values())
    fired = sum(r["confusables"]["detections"] for r in results["persons"].values())
    results.update(worst_person=worst[0], worst_recall=worst[1], speech_hours=speech_hours,
                   speech_fa_per_hour=speech_fa / speech_hours, confusables_fired=fired,
                   confusables_said=2 * len(similar) * len(rows), machine=machine(), quick=args.quick)
    print(table(f"{args.model.name}: {', '.join(keywords)} on Flite persons ({machine_line(results['machine'])})",
                ["person", "recall", "wrong", "FA among keywords", "confusables fired", "FA in speech", "FA/h",
                 "speech min"], rows,
                notes=[f"{per_keyword} takes of each keyword per person over espeak-ng babble at 5-25 dB; worst "
                       f"person {worst[0]} {worst[1]:.1%}; all speech: {speech_fa} false alarms in "
                       f"{speech_hours:.2f} h; confusables fired {fired} of {results['confusables_said']}; "
                       f"wall time {time.perf_counter() - started:.0f} s"]))
    write_json("custom" + ("-quick" if args.quick else ""), json.loads(json.dumps(results, default=float)), args.out,
               announce=True)


if __name__ == "__main__":
    main()
