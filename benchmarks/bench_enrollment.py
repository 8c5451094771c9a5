"""Enrollment, measured: does a user's own voice get found after `spotter enroll`, and nobody else's lost?

    python benchmarks/bench_enrollment.py [--quick] [--takes 1,3,5] [--voices slt,awb,rms,kal16]
                                          [--trainable head|all] [--speech-minutes 30] [--out DIR]

Users are voices that no shipped model was trained or tuned on: CMU Flite's speakers (slt, a US
woman; awb, a Scottish man; rms, a US man; kal16, a US man, diphone), each a "person" whose
takes vary as a person's do (tempo 0.9-1.12, mean pitch +-8%, vocal tract +-3%). Per person:

* enrollment recordings, as `spotter enroll --from-dir` reads them: 1, 3 or 5 takes of each of
  the 10 keywords (a word with 0.4-0.8 s of the person's room around it), ~30 s of the person
  reading keyword-free sentences, 10 s of their room (pink noise and hum);
* test streams never used in enrollment: other takes of the keywords (6 per keyword) in the person's
  quiet room, the same takes over noise of a kind the adaptation never mixes in (babble of other
  voices) at 5-25 dB SNR over the word; and `--speech-minutes` of the person's keyword-free speech
  (other sentences).

For each person and number of takes it enrolls the shipped model, or `--model`'s (spotter.enroll.adapt,
the same code as `spotter enroll`) and reports, against that base model in the same run: the person's keyword
recall in their quiet room and over babble, wrong names and false alarms per hour on their own speech, and
the recall on the *other* persons' streams and false alarms on their speech with the enrolled model (it must
not get worse for anyone else); each alone, with its base model beside it, and with the base model and the
user's voice model, as `spotter listen` runs an enrolled model (spotter.guard, spotter.voice). Writes
results/enrollment.json.
"""

from __future__ import annotations

import json
import re
import time
import zlib
from pathlib import Path

import numpy as np

from common import ROOT, machine, machine_line, parser, table, write_json

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
#: Readings other than the paragraph `spotter enroll` shows (spotter.enroll.record.PARAGRAPH, ``--reading
#: paragraph``), experiments (docs/experiments.md, "The reading"): words one sound away from each keyword.
#: ``--reading confusable``: dress, guest / snow, note / cup / town, brown / lift, felt / night, light / gone / of,
#: soft / shop, top, step / gold, goat, coat, several of them words of the test sentences too; ``--reading
#: near``: yeast, guess / note, dough / pup, tub / clown, brown / loft, theft / bright, rice / lawn, dawn / cough,
#: golf / mop, stepped / goat, code, none of them a word of the test sentences.
READINGS = {
    "confusable": (
        "The night was cold and bright, so I put a warm coat over my dress and walked to the little shop "
        "in town. The owner had gone to lift a sack of rice from the top step, and his old dog slept in the "
        "light by the window. I bought a cup of soft brown bread, a jar of gold honey and some goat cheese. "
        "We spoke about the snow that is due next week, then I wrote a note for my guest and felt glad of "
        "the calm evening."),
    "near": (
        "A clown in a brown gown flew a bright kite over the lawn at dawn. A pup in a tub chased a goat, "
        "and the yeast in the dough began to grow. I guess the chess set is in the loft, beside the mop "
        "and a sack of rice. There was a theft at the golf club, and a man with a cough saw the crown "
        "glow in the dark, then stepped aside to note the code of the gate."),
}
PERSONS = {"slt": 190.0, "awb": 120.0, "rms": None, "kal16": 110.0}  # flite voice -> mean pitch (None: fixed)
SR = 16000


def _seed(name: str) -> int:
    return zlib.crc32(name.encode())


def person_voice(name: str, rng: np.random.Generator) -> dict:
    """One occasion of a person: their voice with the variation of one take."""
    f0 = PERSONS[name]
    f0_mean = None if f0 is None else f0 * rng.uniform(0.92, 1.08)
    return {"engine": "flite", "params": {
        "voice": name, "duration_stretch": float(rng.uniform(0.9, 1.12)), "f0_mean": f0_mean,
        "f0_stddev": None if f0 is None else min(float(rng.uniform(8, 22)), f0_mean / 6),
        "tract": int(round(441 * rng.uniform(0.97, 1.03)))}}


def room_noise(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """The person's room: pink noise and mains hum, about -50 dBFS."""
    from spotter.data import noise

    n = int(round(seconds * SR)) + 1
    x = noise.unit_rms(noise.pink(n, rng)) + 0.3 * noise.unit_rms(noise.hum(n, SR, 50.0, rng))
    return (x / np.sqrt(np.mean(x**2)) * 10 ** (-50 / 20)).astype(np.float32)


def take(name: str, word: str, rng: np.random.Generator) -> np.ndarray:
    """A recorded take: the word at a speaking level with the person's room around it."""
    from spotter.data.tts.engines import say

    x = say(word, person_voice(name, rng))
    x = x / max(1e-6, np.abs(x).max()) * 10 ** (rng.uniform(-12, -3) / 20)
    lead, tail = (int(rng.uniform(0.4, 0.8) * SR) for _ in range(2))
    out = np.concatenate([np.zeros(lead), x, np.zeros(tail)]).astype(np.float32)
    return out + room_noise(len(out) / SR, rng)[: len(out)]


def speech(name: str, sentences, rng: np.random.Generator) -> np.ndarray:
    """The person reading ``sentences`` with short pauses, their room under it."""
    from spotter.data.tts.engines import say

    parts = []
    for s in sentences:
        x = say(s, person_voice(name, rng))
        parts += [x / max(1e-6, np.abs(x).max()) * 10 ** (rng.uniform(-10, -4) / 20),
                  np.zeros(int(rng.uniform(0.3, 0.9) * SR), np.float32)]
    out = np.concatenate(parts).astype(np.float32)
    return out + room_noise(len(out) / SR, rng)[: len(out)]


def test_noise(seconds: float, rng: np.random.Generator, babble_clips, kind: str = "babble") -> np.ndarray:
    """Noise of a kind the adaptation never mixes in: babble of other voices (espeak-ng); or, to tell what
    the babble costs, ``pink`` noise or ``none`` (silence), at unit RMS."""
    from spotter.data import noise

    n = int(round(seconds * SR)) + 1
    if kind == "none":
        return np.zeros(n, np.float32)
    x = noise.unit_rms(noise.pink(n, rng) if kind == "pink" else noise.babble(babble_clips, n, rng))
    return (x / np.sqrt(np.mean(x**2))).astype(np.float32)


def snr_path(stream: Path) -> Path:
    """Where a keyword stream's per-word SNRs are kept: ``X.wav`` -> ``X.snr.json`` (a list of dB, one per
    labelled word in time order; None for a stream with nothing over its words)."""
    return stream.with_suffix(".snr.json")


def keyword_stream(name: str, per_keyword: int, rng: np.random.Generator, babble_clips, folder: Path,
                   noise_kind: str = "babble", words=KEYWORDS, label: str | None = None, tag: str = "keywords",
                   clip=None) -> Path:
    """Other takes of the person's keywords (``words``) over test noise (``noise_kind``, see :func:`test_noise`)
    at 5-25 dB SNR, with its labels CSV: each row labelled by its word, or by ``label`` when given (``unknown``
    for words that are not keywords); written as ``<name>-<tag>.wav``, each word's SNR in :func:`snr_path`.
    ``clip(word)``: the audio of one take (default: the person ``name`` saying it, a new occasion each time)."""
    import soundfile as sf

    from spotter.data.labels import LabelEvent, write_labels
    from spotter.data.tts.engines import say
    from spotter.training.augment import speech_power

    import torch

    items = [w for w in words for _ in range(per_keyword)]
    rng.shuffle(items)
    pieces, events, t = [], [], 0
    for word in items:
        x = clip(word) if clip else say(word, person_voice(name, rng))
        x = x / max(1e-6, np.abs(x).max()) * 10 ** (rng.uniform(-12, -3) / 20)
        gap = int(rng.uniform(1.2, 2.5) * SR)
        t += gap
        events.append(LabelEvent(label or word, t / SR, (t + len(x)) / SR, word))
        pieces += [np.zeros(gap, np.float32), x.astype(np.float32)]
        t += len(x)
    pieces.append(np.zeros(SR, np.float32))
    clean = np.concatenate(pieces)
    bed = test_noise(len(clean) / SR, rng, babble_clips, noise_kind)[: len(clean)]
    out, snrs = clean.copy(), []
    for e in events:  # each word at its own SNR over its speech
        a, b = int(e.start * SR), int(e.end * SR)
        power = float(speech_power(torch.from_numpy(clean[a:b][None]))[0, 0])
        lo, hi = max(0, a - SR), min(len(out), b + SR)
        snr = rng.uniform(5, 25)
        snrs.append(None if noise_kind == "none" else round(float(snr), 2))
        out[lo:hi] += bed[lo:hi] * np.sqrt(power / 10 ** (snr / 10))
    quiet = np.sqrt(np.mean(clean[clean != 0] ** 2)) * 10 ** (-25 / 20)
    out += bed * quiet * (out == clean)  # between words: the bed at 25 dB below speech
    path = folder / f"{name}-{tag}.wav"
    sf.write(str(path), np.clip(out, -1, 1), SR, subtype="PCM_16")
    write_labels(path.with_suffix(".csv"), events)
    snr_path(path).write_text(json.dumps(snrs) + "\n")
    return path


def speech_stream(name: str, sentences, rng: np.random.Generator, folder: Path) -> Path:
    import soundfile as sf

    from spotter.data.labels import LabelEvent, write_labels

    x = speech(name, sentences, rng)
    path = folder / f"{name}-speech.wav"
    sf.write(str(path), np.clip(x, -1, 1), SR, subtype="PCM_16")
    write_labels(path.with_suffix(".csv"), [LabelEvent("speech", 0.0, len(x) / SR, "(keyword-free speech)")])
    return path


def enrollment(name: str, takes: int, sentences, rng: np.random.Generator):
    """The person's enrollment recordings, checked and trimmed exactly as `spotter enroll` does."""
    from spotter.enroll.profile import Enrollment, Take
    from spotter.enroll.takes import find_word, word_clip

    out = {}
    for word in KEYWORDS:
        out[word] = []
        for _ in range(takes):
            x = take(name, word, rng)
            w = find_word(x, what=f"{name} {word}")
            out[word].append(Take(f"{name}/{word}", word_clip(x, w), w.seconds, w.snr_db))
    return Enrollment(out, [speech(name, sentences, rng)], [room_noise(10.0, rng)])


def posteriors(model, wav: Path, cache: dict):
    from spotter.evaluation.tuning import stream_posteriors

    key = (id(model), str(wav))
    if key not in cache:  # the model is kept with its posteriors, so its id is never reused
        cache[key] = (model, stream_posteriors(model, wav, batched=True))
    return cache[key][1]


def _figures(detections, stream, labels) -> dict:
    from spotter.enroll.adapt import detections_score

    s = detections_score(detections, stream, labels)
    return {**s, "fa_per_hour": s["false_alarms"] / (stream.duration_s / 3600), "hours": stream.duration_s / 3600}


def score(model, detector, wav: Path, cache: dict) -> dict:
    from spotter.evaluation.tuning import detections_of

    stream = posteriors(model, wav, cache)
    return _figures(detections_of(stream, model.labels, detector), stream, model.labels)


def guarded_score(adapted, base, base_detector, wav: Path, cache: dict, voice: bool = True) -> dict:
    """:func:`score` of the enrolled model with its base model beside it, as `spotter listen` runs it
    (spotter.guard; the base model's stored posteriors); ``voice``: with the user's voice model deciding
    whose windows the base model's detections are in (else every base-model detection stands)."""
    import soundfile as sf

    from spotter.guard import guarded_offline, stream_user_voice

    mine, theirs = posteriors(adapted.model, wav, cache), posteriors(base, wav, cache)
    beside = adapted.model.guard
    said = None
    if voice and beside.voice is not None:  # hop i's window, as the engine hands it to the voice model
        if ("audio", str(wav)) not in cache:  # read once: every enrolled model asks of the same streams
            cache[("audio", str(wav))] = sf.read(str(wav), dtype="float32")[0]
        said = stream_user_voice(beside.voice, cache[("audio", str(wav))], mine.times)

    detections = guarded_offline(adapted.model.labels, adapted.detector, base_detector, beside.config,
                                 mine.times, mine.probs, theirs.probs, said, beside.voice_keywords)
    return _figures(detections, mine, adapted.model.labels)


def scores(model, detector, streams: dict, cache: dict) -> dict:
    """:func:`score` of each of a person's streams (``keywords``, ``speech``, ``quiet``), by name."""
    return {kind: score(model, detector, wav, cache) for kind, wav in streams.items()}


def threshold_sweep(adapted, own_streams, cache) -> list[dict]:
    """The enrolled model's recall on the person's keyword streams (over babble; ``quiet_recall`` in their
    room) and false alarms in their speech at every threshold 0.50-0.99 (its detector's other settings
    kept): the trade-off, whatever the re-tune chose."""
    import dataclasses

    out = []
    for threshold in np.round(np.arange(0.50, 0.995, 0.01), 2):
        detector = dataclasses.replace(adapted.detector, threshold=float(threshold))
        s = scores(adapted.model, detector, own_streams, cache)
        out.append({"threshold": float(threshold), "recall": s["keywords"]["recall"],
                    "quiet_recall": s["quiet"]["recall"],
                    "false_alarms": s["keywords"]["false_alarms"] + s["speech"]["false_alarms"]})
    return out


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--takes", default="1,3,5", help="takes per keyword to enroll with (default: 1,3,5)")
    p.add_argument("--voices", default=",".join(PERSONS), help=f"persons (default: {','.join(PERSONS)})")
    p.add_argument("--trainable", default="all", choices=("head", "all"))
    p.add_argument("--speech-minutes", type=float, default=30.0, help="keyword-free test speech per person")
    p.add_argument("--test-takes", type=int, default=6, help="test takes per keyword and person (default: 6)")
    p.add_argument("--reading", default="paragraph", choices=("paragraph", *READINGS, "sentences"),
                   help="what each person reads at enrollment: the paragraph `spotter enroll` shows (default), "
                        "one full of words close to the keywords (those of the test sentences among them, or "
                        "none of those), or eight of the stream sentences")
    p.add_argument("--model", default=None,
                   help="the base model to enroll, with its detector in the checkpoint (default: the shipped model)")
    args = p.parse_args()
    from spotter.checkpoint import load_model
    from spotter.data.stream import SENTENCES
    from spotter.detector import detector_from_meta
    from spotter.enroll.adapt import AdaptConfig, adapt
    from spotter.enroll.record import PARAGRAPH

    quick = args.quick
    names = args.voices.split(",")
    counts = [int(n) for n in args.takes.split(",")]
    speech_minutes = 2.0 if quick else args.speech_minutes
    folder = (args.out or ROOT / "data") / "enrollment-streams"  # audio: never into results/
    folder.mkdir(parents=True, exist_ok=True)
    base = load_model(args.model, device="cpu")
    base_detector = detector_from_meta(base.meta)
    test_sentences = SENTENCES[8:]
    enroll_sentences = (SENTENCES[:8] if args.reading == "sentences" else
                        re.split(r"(?<=[.!?])\s+", {"paragraph": PARAGRAPH, **READINGS}[args.reading]))
    from spotter.data.tts import espeak

    babble = espeak.babble(np.random.default_rng(3), test_sentences[:20], 20)  # other people talking
    started = time.perf_counter()
    streams = {}
    for name in names:  # test streams first: the same for every enrolled model
        kw = keyword_stream(name, 2 if quick else args.test_takes, np.random.default_rng(_seed(name)),
                            babble, folder)
        quiet = keyword_stream(name, 2 if quick else args.test_takes, np.random.default_rng(_seed(name)),
                               babble, folder, noise_kind="none", tag="quiet")  # the same takes, no babble
        n_sentences = max(1, int(speech_minutes * 60 / 3.0))
        sentences = [test_sentences[i % len(test_sentences)] for i in range(n_sentences)]
        sp = speech_stream(name, sentences, np.random.default_rng(_seed(name) + 1), folder)
        streams[name] = {"keywords": kw, "speech": sp, "quiet": quiet}
    cache: dict = {}
    baseline = {name: scores(base, base_detector, own, cache) for name, own in streams.items()}
    rows, results = [], {"baseline": baseline, "enrolled": []}
    for name in names:
        for n in counts:
            data = enrollment(name, n, enroll_sentences, np.random.default_rng(1000 + n + _seed(name) % 1000))
            t0 = time.perf_counter()  # what `spotter enroll` spends once the recordings are in (not the synthesis)
            adapted = adapt(base, data, AdaptConfig(trainable=args.trainable, seed=n))
            seconds = time.perf_counter() - t0
            mine = {**scores(adapted.model, adapted.detector, streams[name], cache),
                    "keywords_base_detector": score(adapted.model, base_detector, streams[name]["keywords"], cache),
                    "speech_base_detector": score(adapted.model, base_detector, streams[name]["speech"], cache)}
            others = {o: scores(adapted.model, adapted.detector, streams[o], cache) for o in names if o != name}
            guarded = {o: {kind: guarded_score(adapted, base, base_detector, wav, cache, voice=False)
                           for kind, wav in s.items()} for o, s in streams.items()}  # stored posteriors: replays
            voiced = {o: {kind: guarded_score(adapted, base, base_detector, wav, cache)
                          for kind, wav in s.items()} for o, s in streams.items()}  # and the user's voice model
            sweep = threshold_sweep(adapted, streams[name], cache)
            best = max((r for r in sweep if r["false_alarms"] <= 1), key=lambda r: r["recall"],
                       default={"recall": 0.0, "threshold": float("nan")})  # every threshold fires twice or more
            other_recall = np.mean([v["keywords"]["recall"] for v in others.values()]) if others else None
            other_base = np.mean([baseline[o]["keywords"]["recall"] for o in others]) if others else None
            other_quiet = np.mean([v["quiet"]["recall"] for v in others.values()]) if others else None
            other_quiet_base = np.mean([baseline[o]["quiet"]["recall"] for o in others]) if others else None
            results["enrolled"].append({"voice": name, "takes": n, "seconds": round(seconds, 1),
                                        "detector": adapted.detector.to_meta(), "report": adapted.report,
                                        "own": mine, "others": others, "sweep": sweep, "guarded": guarded,
                                        "guarded_voice": voiced})
            rows.append((name, n, baseline[name]["quiet"]["recall"], mine["quiet"]["recall"],
                         baseline[name]["keywords"]["recall"], mine["keywords"]["recall"],
                         mine["keywords_base_detector"]["recall"], mine["speech_base_detector"]["fa_per_hour"],
                         mine["keywords"]["wrong"], baseline[name]["speech"]["fa_per_hour"],
                         mine["speech"]["fa_per_hour"], other_quiet_base, other_quiet, other_base, other_recall,
                         np.mean([v["speech"]["fa_per_hour"] for v in others.values()]) if others else None,
                         round(seconds, 0), adapted.detector.threshold,
                         guarded[name]["quiet"]["recall"], guarded[name]["keywords"]["recall"],
                         guarded[name]["speech"]["fa_per_hour"],
                         np.mean([guarded[o]["quiet"]["recall"] for o in others]) if others else None,
                         np.mean([guarded[o]["keywords"]["recall"] for o in others]) if others else None,
                         voiced[name]["quiet"]["recall"], voiced[name]["keywords"]["recall"],
                         voiced[name]["speech"]["fa_per_hour"],
                         np.mean([voiced[o]["quiet"]["recall"] for o in others]) if others else None,
                         np.mean([voiced[o]["keywords"]["recall"] for o in others]) if others else None))
            print(f"  {name} {n} takes: recall in the quiet room {baseline[name]['quiet']['recall']:.3f} -> "
                  f"{mine['quiet']['recall']:.3f}, over babble {baseline[name]['keywords']['recall']:.3f} -> "
                  f"{mine['keywords']['recall']:.3f}, own FA/h {mine['speech']['fa_per_hour']:.1f}, others over babble "
                  f"{other_base if other_base is None else round(other_base, 3)} -> "
                  f"{other_recall if other_recall is None else round(other_recall, 3)} ({seconds:.0f} s); "
                  f"at most 1 false alarm in the speech: recall {best['recall']:.3f} at {best['threshold']:.2f}; "
                  f"with the base beside / and the voice model: own quiet {guarded[name]['quiet']['recall']:.3f} / "
                  f"{voiced[name]['quiet']['recall']:.3f}, babble {guarded[name]['keywords']['recall']:.3f} / "
                  f"{voiced[name]['keywords']['recall']:.3f}, own false alarms "
                  f"{guarded[name]['speech']['false_alarms']} / {voiced[name]['speech']['false_alarms']}", flush=True)
            write_json("enrollment" + ("-quick" if quick else ""), json.loads(json.dumps(results, default=float)),
                       args.out)  # so far (an interrupted run keeps its enrolled models' figures)
    info = machine()
    print(table(f"Enrollment ({machine_line(info)}; trainable {args.trainable})",
                ["voice", "takes", "quiet room: recall before", "after", "over babble: recall before", "after",
                 "after, base detector", "own FA/h, base detector", "wrong", "own FA/h before", "after",
                 "others' quiet recall before", "after", "others' babble recall before", "after", "others' FA/h after",
                 "enroll s", "threshold", "with the base beside: quiet", "babble", "own FA/h",
                 "others' quiet", "others' babble", "and the voice model: quiet", "babble", "own FA/h",
                 "others' quiet", "others' babble"], rows,
                notes=[f"test takes per keyword: {2 if quick else args.test_takes}; keyword-free speech per person: "
                       f"{speech_minutes:g} min; wall time {time.perf_counter() - started:.0f} s"]))
    results.update(machine=info, trainable=args.trainable, quick=quick, speech_minutes=speech_minutes)
    write_json("enrollment" + ("-quick" if quick else ""), json.loads(json.dumps(results, default=float)), args.out,
               announce=True)


if __name__ == "__main__":
    main()
