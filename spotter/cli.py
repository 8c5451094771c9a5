"""The ``spotter`` command line: argument parsing and dispatch, nothing else.

Each subcommand is a small function that parses nothing itself and imports
its heavy modules lazily, so ``spotter --help`` is quick and commands that do
not touch audio work on a machine without PortAudio.  Errors meant for the
user (:class:`spotter.errors.SpotterError`) are printed as one line, with a
non-zero exit status, never as a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Sequence

from . import __version__
from .config import ARCHITECTURES, DETECTOR_SCORES, DEVICE_TYPES, RUNTIMES, SAMPLE_RATE, TUNE_OBJECTIVES
from .errors import Interrupted, SpotterError


def _cmd_models(args: argparse.Namespace) -> int:
    from .checkpoint import available_models
    from .model import MODELS, PAPER_PARAMS, build_model, count_parameters

    rows = []
    for name in MODELS:
        model = build_model(name)
        rows.append({
            "model": name,
            "params": count_parameters(model.net),
            "paper_params": PAPER_PARAMS.get(name),
            "frontend_trainable_params": count_parameters(build_model(name, True, True).frontend),
        })
    if args.json:
        print(json.dumps({"architectures": rows, "checkpoints": available_models()}))
        return 0
    print(f"{'architecture':<14}{'parameters':>12}{'paper':>10}{'+ trainable front end':>24}")
    for r in rows:
        paper = f"{r['paper_params']:,}" if r["paper_params"] else "-"
        print(f"{r['model']:<14}{r['params']:>12,}{paper:>10}{r['frontend_trainable_params']:>+24,}")
    print("\ncheckpoints: " + (", ".join(available_models()) or "none"))
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from .checkpoint import read_checkpoint, resolve, model_from_checkpoint
    from .model import count_parameters

    path = resolve(args.checkpoint)
    ckpt = read_checkpoint(path)
    model = model_from_checkpoint(ckpt, source=f"checkpoint {path}")
    info = {
        "file": str(path),
        "model": ckpt["model"],
        "labels": list(ckpt["labels"]),
        "frontend": ckpt["frontend"],
        "params": count_parameters(model),
        "meta": ckpt.get("meta", {}),
    }
    if isinstance(ckpt.get("base"), dict):  # an enrolled model's base model, kept beside it (spotter.guard)
        info["base"] = {"model": ckpt["base"].get("model"), "meta": ckpt["base"].get("meta", {})}
    guard = info["meta"].get("guard")
    if isinstance(guard, dict) and isinstance(guard.get("voice"), dict):  # the user's voice model: described
        voice = guard["voice"]
        info["meta"]["guard"] = {**guard, "voice": {"components": len(voice.get("weights") or []),
                                                    "threshold": voice.get("threshold")}}
    if args.json:
        print(json.dumps(info, default=str))
        return 0
    print(f"file:      {info['file']}")
    print(f"model:     {info['model']} ({info['params']:,} trainable parameters)")
    print(f"labels:    {', '.join(info['labels'])}")
    fe = info["frontend"]
    print(f"window:    {fe.get('window_samples', 16000) / fe['sample_rate']:g} s (what the model classifies, every hop)")
    print(f"front end: {fe['n_mels']} Mel bins, {fe['win_length']}-sample frames, {fe['hop_length']}-sample hop, "
          f"{fe['sample_rate']} Hz; trainable mel={fe['trainable_mel']}"
          + (f" ({fe.get('mel_param', 'matrix')})" if fe["trainable_mel"] else "") + f" stft={fe['trainable_stft']}"
          + (f" ({fe.get('stft_param', 'kernels')})" if fe["trainable_stft"] else "")
          + (f"; normalize={fe['normalize']}" if fe.get("normalize", "none") != "none" else ""))
    for key, value in info["meta"].items():
        if key == "enrollment" and isinstance(value, dict):
            from .enroll.run import describe

            print(f"{'enrolled:':<11}{describe(value)}")
            continue
        if key == "guard" and isinstance(value, dict) and "base" in info:
            base_meta = info["base"]["meta"]
            threshold = (base_meta.get("detector") or {}).get("threshold")
            print(f"{'beside:':<11}its base model ({info['base']['model']}"
                  + (f", threshold {threshold:.2f}" if isinstance(threshold, (int, float)) else "")
                  + f"): its detections stand too; it vetoes this model's when sure of another keyword "
                  f"(smoothed probability {value.get('veto')} in the last {value.get('hops')} hops)")
            if isinstance(value.get("voice"), dict):
                print(f"{'voice:':<11}the user's voice model ({value['voice']['components']} components, threshold "
                      f"{value['voice']['threshold']}): base-model detections in their voice are left to this model")
            continue
        if key == "members" and isinstance(value, list):
            print(f"members:   {len(value)} models, class probabilities averaged")
            for i, member in enumerate(value, 1):  # the facts that tell members apart (all of them: --json)
                shown = {k: member[k] for k in ("checkpoint", "model", "data", "epochs", "test_accuracy")
                         if k in member} if isinstance(member, dict) else {}
                facts = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items())
                print(f"  {i}. {facts or member}")
            continue
        print(f"{key + ':':<11}{value}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .checkpoint import load_model, resolve
    from .export import export_onnx
    from .exported import graph_beside

    path = resolve(args.checkpoint)
    if path.suffix == ".onnx":
        raise SpotterError(f"{path} is already an exported graph: give its checkpoint (.pt)")
    out = args.onnx or graph_beside(path)
    if not str(out).endswith(".onnx"):
        raise SpotterError(f"--onnx {out}: the graph's file name must end in .onnx")
    print(f"spotter: exporting {path} ...", file=sys.stderr, flush=True)
    whole, streaming = export_onnx(load_model(path, device="cpu"), out)
    from .exported import base_path, screen_paths

    pair = [p for p in screen_paths(whole) if p.is_file()]
    also = f", and the screening pair {pair[0].name}, {pair[1].name}" if pair else ""
    if base_path(whole).is_file():  # an enrolled model: its base model's graphs beside (spotter.guard)
        also += f", and the base model it keeps as {base_path(whole).name} (with its own forms)"
    print(f"spotter: wrote {whole} (the whole classifier: waveform -> probs) and {streaming} (the streaming form "
          f"that listen runs){also}; all match torch within 1e-4", file=sys.stderr)
    return 0


def _cmd_ensemble(args: argparse.Namespace) -> int:
    from .checkpoint import load_model, save_checkpoint
    from .model import count_parameters, ensemble

    models = [load_model(name, device="cpu") for name in args.checkpoints]
    try:
        combined = ensemble(models)
    except ValueError as err:
        raise SpotterError(f"spotter ensemble: {err}") from None
    members = []
    for m in models:  # what each member was, for `spotter info`; detector settings fit only their own model
        facts = {k: v for k, v in getattr(m, "meta", {}).items() if k not in ("detector", "members")}
        members.extend(getattr(m, "meta", {}).get("members") or [{"checkpoint": getattr(m, "source", "?"), **facts}])
    path = save_checkpoint(combined, args.out, meta={"members": members})
    print(f"wrote {path}: {combined.name}, {count_parameters(combined):,} parameters, averaging the class "
          f"probabilities of {len(members)} models. Its detector has the default settings until tuned: "
          f"spotter tune --model {path} --save STREAMS...")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from .training.run import parse_with_config, run_train

    # Re-parse with the train parser so a --config YAML can supply defaults under explicit flags.
    run_train(parse_with_config(args.parser, args.argv[1:]))
    return 0


def _eval_noise(root, split: str, snr_db: float | None, seed: int, clip_samples: int):
    """``eval --snr``: a transform mixing the split's region of the folder's noise into every clip."""
    if snr_db is None:
        return None
    import torch

    from .data.speech_commands import NOISE_REGIONS, load_noise
    from .training.augment import AddNoise

    lo, hi = NOISE_REGIONS[split]
    noises = [torch.from_numpy(n) for n in load_noise(root, split=split)]
    try:
        return AddNoise(noises, snr_db, seed=seed, clip_samples=clip_samples)
    except ValueError:
        raise SpotterError(f"--snr: {root}/_background_noise_ has no noise recording with {clip_samples / SAMPLE_RATE:g} s "
                           f"in its {split} "
                           f"region ({lo:.0%}-{hi:.0%} of each file): add noise files there or leave out --snr") from None


def _cmd_eval(args: argparse.Namespace) -> int:
    from .checkpoint import load_model
    from .config import keywords_of
    from .compute import select_device
    from .data.speech_commands import SpeechCommands
    from .evaluation.clips import evaluate, format_report, plot_confusion
    from .training.run import resolve_data

    device = select_device(args.device_type)
    model = load_model(args.checkpoint, device="cpu")
    root = resolve_data(args.data, args.data_dir, progress=not args.json)
    window = model.frontend.config.window_samples  # clips are cut to the model's window
    dataset = SpeechCommands(root, args.split, seed=args.seed, progress=not args.json, balance_all=args.protocol,
                             transform=_eval_noise(root, args.split, args.snr, args.seed, window),
                             keywords=keywords_of(model.labels), clip_samples=window)
    if len(dataset) == 0:
        raise SpotterError(f"--data {root} --split {args.split}: no clips in that split "
                           "(a folder without validation/testing lists needs --split all)")
    result = evaluate(model, dataset, device, batch_size=args.batch_size, progress=not args.json)
    result.update({"checkpoint": getattr(model, "source", str(args.checkpoint)), "data": str(root),
                   "split": args.split, "protocol": bool(args.protocol or args.split != "all"),
                   "snr_db": args.snr})
    if args.plot:
        plot_confusion(result, args.plot, title=f"{model.name} on {root.name} ({args.split}): "
                       f"accuracy {result['accuracy']:.2%}, macro F1 {result['f1_macro']:.3f}")
        result["plot"] = str(args.plot)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['checkpoint']} on {root} ({args.split})")
        print(format_report(result))
        if args.plot:
            print(f"\nconfusion matrix plot: {args.plot}")
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from .checkpoint import load_model
    from .plots import plot_checkpoint

    model = load_model(args.checkpoint, device="cpu")
    result = plot_checkpoint(model, args.out)
    for path in result["files"]:
        print(path)
    change = ", ".join(f"{k} {v:.2%}" for k, v in result["relative_change"].items())
    print(f"relative change from the initial bases: {change}")
    moves = result["mel_filter_moves"]
    largest = sorted(range(len(moves["centre_hz"])), key=lambda i: -abs(moves["centre_shift_hz"][i]))[:3]
    print("Mel filters moved most: " + ", ".join(
        f"{moves['centre_hz'][i]:.0f} Hz {moves['centre_shift_hz'][i]:+.1f} Hz (width x{moves['width_ratio'][i]:.3f})"
        for i in largest))
    window = result["stft_window"]
    if window:
        duration, leakage = window["rms_duration_ms"], window["far_leakage_db"]
        print(f"STFT window: gain {min(window['gain']):.3f} to {max(window['gain']):.3f}, rms duration "
              f"{duration['checkpoint']:.3f} ms (Hann {duration['hann']:.3f}), leakage beyond {window['far_bins']} "
              f"bins {leakage['checkpoint']:.1f} dB (Hann {leakage['hann']:.1f})")
    return 0


def _cmd_data_synth(args: argparse.Namespace) -> int:
    from .data.synth import synthesize_corpus

    engines = tuple(e.strip() for e in args.engines.split(",") if e.strip())
    festival_voices = tuple(v.strip() for v in args.festival_voices.split(",") if v.strip())
    try:
        manifest = synthesize_corpus(args.out, per_word=args.per_word, seed=args.seed, engines=engines,
                                     progress=not args.no_progress, holdout_fraction=args.holdout_fraction,
                                     festival_voices=festival_voices)
    except ValueError as err:  # a bad argument (unknown engine, per-word < 1, ...): one line, no traceback
        raise SpotterError(str(err)) from None
    voices = manifest.get("voices", [])
    print(f"{args.out}: {sum(manifest.get('counts', {}).values()) if isinstance(manifest.get('counts'), dict) else ''} "
          f"clips, {len(voices)} voices (synthetic speech)")
    return 0


def _cmd_data_merge(args: argparse.Namespace) -> int:
    from .data.merge import merge_corpora

    manifest = merge_corpora(args.out, args.sources)
    split = manifest["split_clips"]
    print(f"{args.out}: {manifest['total_clips']} clips ({split['training']} training, {split['validation']} "
          f"validation, {split['testing']} test) from {len(args.sources)} corpora, {len(manifest['voices'])} voices "
          f"listed")
    return 0


def _cmd_data_fetch(args: argparse.Namespace) -> int:
    from .data.download import fetch_speech_commands

    print(fetch_speech_commands(args.data_dir, progress=True))
    return 0


def _detector(args: argparse.Namespace) -> Callable:
    """The detector settings the flags ask for, as a function of the loaded model (its own settings under them)."""
    per_keyword = {}
    for item in args.keyword_threshold or []:
        keyword, _, value = item.partition("=")
        try:
            per_keyword[keyword.strip()] = float(value)
        except ValueError:
            raise SpotterError(f"--keyword-threshold {item!r}: write KEYWORD=PROBABILITY, e.g. off=0.8") from None

    def settings(model):
        from .detector import detector_settings

        return detector_settings(getattr(model, "meta", {}), labels=model.labels, source=model.name,
                                 threshold=args.threshold, keyword_thresholds=per_keyword,
                                 smoothing_hops=args.smoothing_hops, min_count=args.min_count, score=args.score)

    return settings


def _profile_model(args: argparse.Namespace) -> str | None:
    """``--profile NAME``: that profile's enrolled checkpoint (not with --model); else ``--model``."""
    if getattr(args, "profile", None) is None:
        return args.model
    if args.model is not None:
        raise SpotterError("--profile and --model exclude each other: a profile is an enrolled model")
    from .enroll.profile import profile_model

    return str(profile_model(args.profile))


def _cmd_listen(args: argparse.Namespace) -> int:
    from .listen import ListenOptions, listen

    options = ListenOptions(wav=args.wav, device=args.device, realtime=args.realtime, reconnect=args.reconnect,
                            model=_profile_model(args), device_type=args.device_type, threads=args.threads,
                            runtime=args.runtime, gate=not args.no_gate, screen=not args.no_screen,
                            base=not args.no_base, hop_ms=args.hop_ms, json=args.json, posteriors=args.posteriors, ui=not args.no_ui)
    return listen(options, _detector(args))


def _cmd_custom(args: argparse.Namespace) -> int:
    from .custom.build import ENGINES, MORE_ENGINES, build_custom, plan
    from .data.tts import available_engines

    todo = plan(args.keywords, args.out, voices=args.voices, epochs=args.epochs, model=args.model, seed=args.seed,
                base=args.base, world_voices=args.world_voices, accelerator=args.accelerator,
                progress=not args.no_progress)
    missing = [e for e in ENGINES if e not in available_engines()]
    if missing:
        raise SpotterError(f"spotter custom needs the speech engines {', '.join(missing)}: run scripts/install_tts.sh")
    if len(todo.engines) < len(ENGINES) + len(MORE_ENGINES):
        print(f"custom: voices of {', '.join(todo.engines)}; more voices (pico, mbrola, rhvoice) with "
              "scripts/install_tts.sh --more-voices")
    for keyword, similar in todo.confusables.items():
        print(f"custom: {keyword!r}: negatives that sound close: {', '.join(similar) or 'none found'}")
    facts = build_custom(todo)
    v = facts["validation"]
    print(f"wrote {todo.out}: {', '.join(todo.keywords)}; on held-out voices {v['recall']:.1%} of keywords found "
          f"(worst keyword {v['worst_keyword_recall']:.1%}), {v['fa_per_hour']:.1f} false alarms per hour, "
          f"{v['confusables_fired']} of {v['confusables_said']} confusables fired ({v['hours']:.2f} h); "
          f"{facts['seconds'] / 60:.0f} min")
    if v["worst_keyword_recall"] < 0.8 or not v["within_targets"]:
        print("custom: a weak model: more --voices and --epochs make a better one")
    return 0


def _cmd_enroll(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .checkpoint import load_model, resolve
    from .enroll.profile import profile_dir
    from .enroll.run import default_out, describe, enroll_from_dir, enroll_live, parse_keywords

    if args.from_dir and args.device is not None:
        raise SpotterError("--from-dir and --device exclude each other: enroll from recordings or from a microphone")
    if args.takes < 1:
        raise SpotterError(f"--takes {args.takes}: at least 1 take of each keyword (3-5 recommended)")
    if args.steps is not None and args.steps < 1:
        raise SpotterError(f"--steps {args.steps}: at least 1 fine-tuning step (default: 150)")
    profile = args.profile or (None if args.from_dir and args.out else "default")
    if profile is not None:
        profile_dir(profile)  # a bad name is refused before anything is recorded
    out = Path(args.out) if args.out else default_out(profile)
    base_path = resolve(args.model)
    base = load_model(base_path, device="cpu")
    keywords = parse_keywords(args.keywords, base.labels)
    if args.from_dir:
        facts = enroll_from_dir(args.from_dir, base, base_path.stem, out, profile, keywords, args.seed,
                                progress=not args.no_progress, steps=args.steps)
    else:
        from .audio import MicrophoneSource
        from .enroll.record import Session
        from .enroll.takes import max_word_s

        keywords = keywords or [k for k in base.labels if k not in ("unknown", "silence")]
        max_word = max_word_s(base.frontend.config.window_samples)  # a longer phrase for a longer window
        source = MicrophoneSource(args.device, block_ms=50)
        if args.no_ui or not (sys.stdout.isatty() and sys.stderr.isatty()):  # Textual draws on stderr
            session = Session(source, keywords, args.takes, speech_seconds=args.speech_seconds,
                              room_seconds=args.room_seconds, max_word=max_word)
        else:
            from .enroll.ui import ui_session

            session = ui_session(source, keywords, args.takes, args.speech_seconds, args.room_seconds, max_word)
        facts = enroll_live(session, base, base_path.stem, profile, out, args.seed, progress=not args.no_progress,
                            steps=args.steps)
    print(f"wrote {out}: {describe(facts)}")
    if profile:
        print(f"listen with it: spotter listen --profile {profile}")
    return 0


def _cmd_devices(args: argparse.Namespace) -> int:
    from .audio import list_input_devices

    devices = list_input_devices()
    if args.json:
        print(json.dumps(devices))
        return 0
    if not devices:
        print("no audio input devices (replay a file with `spotter listen --wav FILE`)")
        return 0
    print(f"{'index':>5}  {'name':<40}{'channels':>9}{'rate (Hz)':>11}  host API")
    for d in devices:
        mark = " *" if d.get("default") else ""
        print(f"{d['index']:>5}  {d['name'][:40]:<40}{d['channels']:>9}{d['default_samplerate']:>11.0f}  "
              f"{d['hostapi']}{mark}")
    print("(* default input; pass --device INDEX or part of a NAME to `spotter listen`)")
    return 0


def _cmd_eval_stream(args: argparse.Namespace) -> int:
    from .config import keywords_of
    from .data.labels import read_labels
    from .evaluation.streams import score_stream
    from .events import Detection
    from .listen import load_streaming_model
    from .pipeline import EngineConfig, replay_file

    labels = read_labels(args.labels)
    model = load_streaming_model(args.model, args.device_type, args.threads)
    config = EngineConfig(hop_ms=args.hop_ms, skip_stale=False, detector=_detector(args)(model))
    events, summary = replay_file(model, args.wav, config)
    detections = [e for e in events if isinstance(e, Detection)]
    score = score_stream(detections, labels, summary["seconds"], tolerance_s=args.tolerance,
                         keywords=keywords_of(model.labels))
    detector = config.detector
    result = {**score.to_dict(), "wav": str(args.wav), "model": model.name, "hop_ms": args.hop_ms,
              "threshold": detector.threshold, "thresholds": dict(detector.thresholds),
              "smoothing_hops": detector.smoothing_hops, "min_count": detector.min_count, "score": detector.score,
              "tolerance_s": args.tolerance}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.wav}: {summary['seconds'] / 60:.1f} min, {model.name}, hop {args.hop_ms:g} ms, "
              f"{detector.describe()}, tolerance {args.tolerance:g} s")
        print(score.format_table())
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:
    import torch

    from .checkpoint import load_model, read_checkpoint, resolve, save_checkpoint
    from .compute import select_device
    from .evaluation.tuning import cached_posteriors, checkpoint_key, format_header, format_row, tune

    torch.set_num_threads(1)
    path = resolve(args.model)
    model = load_model(path, device=select_device(args.device_type))
    key = checkpoint_key(path, model)
    streams = [cached_posteriors(model, wav, args.posteriors, key=key, batched=not args.engine) for wav in args.streams]
    found = tune(streams, model.labels, max_fa_per_hour=args.max_fa_per_hour, tolerance_s=args.tolerance,
                 max_latency_s=args.max_latency, per_keyword=args.per_keyword, margin_steps=args.margin_steps,
                 objective=args.objective)
    worst = args.objective == "worst-stream"
    print(f"{found.settings} settings on {', '.join(s.name for s in streams)} ({found.hours:.2f} h)")
    print(format_header(worst))
    for row in found.rows[: args.top]:
        print(format_row(row, worst))
    print("wrong: keywords detected as another keyword; "
          "latency: median/mean seconds from the end of the keyword to its detection")
    if args.per_keyword:
        print("per-keyword thresholds, each smoothing / min count:")
        for row in found.per_keyword_rows[: max(1, args.top // 3)]:
            print(format_row(row, worst))
    if args.save and found.best is not None:
        ckpt = read_checkpoint(path)
        save_checkpoint(model, path, meta={**ckpt.get("meta", {}), "detector": found.best.to_meta()})
        print(f"saved to {path}: {found.best.describe()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{**r, "config": vars(r["config"])} for r in found.per_keyword_rows + found.rows], f, indent=1)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench import format_report, run_bench

    result = run_bench(args.model, device_type=args.device_type, threads=args.threads, hop_ms=args.hop_ms,
                       iterations=args.iterations, runtime=args.runtime)
    print(json.dumps(result) if args.json else format_report(result))
    return 0


def _cmd_data_speech(args: argparse.Namespace) -> int:
    from .data.speech import add_speech_crops

    folder = add_speech_crops(args.corpus, count=args.count, seed=args.seed, progress=not args.no_progress)
    print(f"{folder}: {args.count} clips of continuous speech (label unknown, training split only)")
    return 0


def _cmd_data_hardneg(args: argparse.Namespace) -> int:
    from .data.hardneg import add_hard_negatives

    try:
        found = add_hard_negatives(args.corpus, args.model, count=args.count, seed=args.seed, min_prob=args.min_prob,
                                   per_sentence=args.per_sentence, workers=args.workers,
                                   progress=not args.no_progress)
    except ValueError as err:
        raise SpotterError(str(err)) from None
    taken = ", ".join(f"{k} {n}" for k, n in found.by_keyword.items()) or "none"
    print(f"{args.corpus}/hardneg: {found.written} windows the model took for a keyword, from {found.sentences} "
          f"keyword-free sentences of training voices (label unknown, training split only; taken for: {taken})")
    return 0


def _cmd_data_vocode(args: argparse.Namespace) -> int:
    from .data.vocode import make_world_corpus

    engines = tuple(e.strip() for e in args.engines.split(",") if e.strip())
    manifest = make_world_corpus(args.corpus, args.out, voices=args.voices, seed=args.seed, engines=engines,
                                 workers=args.workers, progress=not args.no_progress)
    print(f"{args.out}: {manifest['total_clips']} clips, {len(manifest['voices'])} WORLD voices made from training "
          f"voices of {args.corpus} (training split only); join them with `spotter data merge`")
    return 0


def _cmd_data_windows(args: argparse.Namespace) -> int:
    from .data.windows import add_stream_windows

    counts = add_stream_windows(args.corpus, minutes=args.minutes, per_keyword=args.per_keyword, seed=args.seed,
                                progress=not args.no_progress)
    print(f"{args.corpus}: {counts.keyword} keyword and {counts.unknown} unknown windows from {args.minutes:g} min "
          f"of training-voice streams (training split only; {counts.rejected} refused for ambiguous labels)")
    return 0


def _cmd_data_stream(args: argparse.Namespace) -> int:
    from .data.stream import make_stream

    info = make_stream(args.corpus, args.out, minutes=args.minutes, seed=args.seed, split=args.split,
                       speech_only=args.speech_only, progress=not args.no_progress)
    counts = ", ".join(f"{n} {label}" for label, n in sorted(info.counts.items()))
    print(f"{info.path}: {info.duration_s / 60:.1f} min ({counts}); labels: {info.csv_path}")
    return 0


def _cmd_data_reverb(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .data.rooms import direct_to_reverberant_db, reverberate_file

    src, out = Path(args.input), Path(args.out)
    if out.resolve() == src.resolve() or out.with_suffix(".csv").resolve() == src.with_suffix(".csv").resolve():
        raise SpotterError(f"{out} is the input or shares its labels file: give another --out "
                           "(the recording and its labels are never overwritten)")
    if out.suffix.lower() != ".wav":
        raise SpotterError(f"--out {out}: give a .wav file (the room's audio is written as float WAV)")
    try:
        made = reverberate_file(src, out, args.rt60, args.distance, args.kind, args.seed)
    except ValueError as e:
        raise SpotterError(str(e)) from None
    print(f"{out}: {src.name} through a simulated room ({args.kind}), reverberation {args.rt60:g} s, {args.distance:g} m away "
          f"(direct-to-reverberant {direct_to_reverberant_db(made.response):+.1f} dB"
          + (f", scaled {made.gain_db:+.1f} dB to stay below full scale" if made.gain_db else "") + ")"
          + (f"; labels: {made.labels}" if made.labels else ""))
    return 0


def _add_corpus_options(q: argparse.ArgumentParser) -> None:
    """--corpus, --seed and --no-progress: the options every `data` action on a synthetic corpus takes."""
    q.add_argument("--corpus", required=True, help="a corpus made by `spotter data synth`")
    q.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    q.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_model_options(p: argparse.ArgumentParser) -> None:
    """Which model runs how: shared by `listen`, `eval-stream` and `bench` (which times exactly that)."""
    p.add_argument("--model", default=None, help="checkpoint file or model name (default: the shipped model)")
    p.add_argument("--hop-ms", type=float, default=100.0,
                   help="score the newest 1 s window every M ms, a multiple of 10 (default: 100)")
    p.add_argument("--device-type", choices=DEVICE_TYPES, default="auto",
                   help="where the model runs (default: auto = CUDA when present)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for the runtime (default: 1, best for one window)")


def _add_runtime_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runtime", choices=RUNTIMES, default="auto",
                   help="what scores the windows: 'onnx', the model's exported graph in ONNX Runtime (no torch; "
                   "pip install 'spotter[onnx]'), or 'torch', its checkpoint (default: auto = onnx when onnxruntime "
                   "is installed and the checkpoint has its exported graph beside it, see `spotter export`)")


def _add_streaming_options(p: argparse.ArgumentParser) -> None:
    _add_model_options(p)
    p.add_argument("--threshold", type=float, default=None,
                   help="smoothed probability every keyword must reach (default: the model's own detector settings "
                        "in its checkpoint, see `spotter info` and checkpoints/README.md; 0.95 for a model without them)")
    p.add_argument("--keyword-threshold", action="append", metavar="KW=T",
                   help="one keyword's threshold, e.g. --keyword-threshold off=0.8 (repeatable; after --threshold)")
    p.add_argument("--smoothing-hops", type=int, default=None,
                   help="average the posteriors over this many hops (default: the model's own; 1, no averaging, "
                        "for a model without them)")
    p.add_argument("--min-count", type=int, default=None,
                   help="hops in a row above the threshold before a detection (default: the model's own, else 3); "
                   "more hops fire less often on speech, and later (README, \"Detector tuning\")")
    p.add_argument("--score", choices=DETECTOR_SCORES, default=None,
                   help="what must reach the threshold: 'class', the keyword's own smoothed probability, or "
                        "'any-keyword', the smoothed probability of any keyword (1 - unknown - silence), labelled "
                        "with the most probable one (default: the model's own, else 'class')")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spotter",
        description="Real-time keyword spotter: an nnAudio log-Mel front end and a BC-ResNet classifier "
        "for the 12 Speech Commands classes.",
    )
    parser.add_argument("--version", action="version", version=f"spotter {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("models", help="list the model architectures and the available checkpoints",
                       description="List the model architectures (with parameter counts beside the BC-ResNet "
                       "paper's) and the checkpoints that `--model NAME` can load.")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("info", help="describe a checkpoint (architecture, labels, front end, metrics)",
                       description="Describe a checkpoint: architecture, labels, front-end settings and the "
                       "training facts stored in it.")
    p.add_argument("checkpoint", nargs="?", default=None,
                   help="checkpoint file or shipped model name (default: the shipped model)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("export", help="export a checkpoint as ONNX graphs, for listening without torch",
                       description="Write a checkpoint as ONNX graphs with its labels, front-end and detector "
                       "settings in their metadata: OUT.onnx, the whole classifier (waveform -> probabilities), "
                       "and OUT.stream.onnx, the streaming form `spotter listen --runtime onnx` runs; for an ensemble "
                       "also OUT.screen.onnx and OUT.rest.onnx, its first member and the others, which listen runs "
                       "apart to skip the others where they cannot change a detection. All are checked against "
                       "torch. Needs pip install 'spotter[export]'.")
    p.add_argument("checkpoint", nargs="?", default=None,
                   help="checkpoint file or shipped model name (default: the shipped model)")
    p.add_argument("--onnx", metavar="OUT.onnx", default=None,
                   help="where to write the graph (default: beside the checkpoint, X.pt -> X.onnx, where "
                   "listen finds it)")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("ensemble", help="combine trained models into one that averages their probabilities",
                       description="Combine two or more trained checkpoints (same labels, same front-end "
                       "settings) into one checkpoint that runs them on one shared front end and averages "
                       "their class probabilities. Models trained apart make different mistakes; their "
                       "average makes fewer. The new checkpoint works wherever a checkpoint does "
                       "(listen, eval, eval-stream, bench); tune its detector before use.")
    p.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT", help="checkpoint files or shipped model names")
    p.add_argument("--out", required=True, metavar="FILE", help="where to write the combined checkpoint")
    p.set_defaults(func=_cmd_ensemble)

    from .training.options import add_arguments as add_train_arguments

    p = sub.add_parser("listen", help="spot keywords live from a microphone, or in a WAV replay",
                       description="Spot the 10 keywords in a live microphone stream (or a WAV file replayed "
                       "as a stream): every hop the newest 1 s window is scored and detections are printed, "
                       "as JSON lines with --json or when stdout is not a terminal. Ctrl-C stops with a summary.")
    p.add_argument("--device", default=None, metavar="N|NAME",
                   help="input device index, or part of its name (default: the system's default input; "
                   "see `spotter devices`)")
    p.add_argument("--wav", metavar="FILE", help="replay this audio file instead of a microphone")
    p.add_argument("--realtime", action="store_true",
                   help="with --wav: pace the replay like a live stream (default: as fast as possible)")
    _add_streaming_options(p)
    _add_runtime_option(p)
    p.add_argument("--no-gate", action="store_true",
                   help="score every hop with the network, even in silence (default: a silence gate scores hops "
                   "whose audio stays near the room's noise floor as silence without running it)")
    p.add_argument("--no-screen", action="store_true",
                   help="run every member of an ensemble on every hop (default: the others "
                   "run only when the first member's keyword probability could lead to a detection, and live, "
                   "a hop between two that could not is not scored; the same detections for a third of the "
                   "work in speech)")
    p.add_argument("--no-base", action="store_true",
                   help="an enrolled model alone (default: the base model it keeps runs beside it: its detections "
                   "stand too, and it vetoes the enrolled model's when sure of another keyword)")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per line for each detection, then a summary line")
    p.add_argument("--posteriors", action="store_true", help="with --json: also a line per hop with class probabilities")
    p.add_argument("--no-ui", action="store_true", help="plain text lines instead of the terminal UI")
    p.add_argument("--profile", default=None, metavar="NAME",
                   help="listen with the model enrolled for this profile (`spotter enroll --profile NAME`)")
    p.add_argument("--reconnect", nargs="?", type=int, const=0, default=None, metavar="N",
                   help="if the microphone is lost mid-stream, re-open it with back-off (0.5, 1, 2, 4 ... 10 s) "
                   "instead of exiting; N: give up after N retries (default: retry forever)")
    p.set_defaults(func=_cmd_listen)

    p = sub.add_parser("enroll", help="teach the spotter your voice: a few takes of each keyword, two minutes",
                       description="Record a few takes of each keyword through the microphone (with a level meter "
                       "and a redo key; plain prompts with --no-ui), a paragraph read aloud and the room, or take "
                       "recordings already made (--from-dir DIR: DIR/<keyword>/*.wav, optional DIR/_speech_/ and "
                       "DIR/_background_noise_/), then fine-tune the model on them and re-tune its detector. "
                       "Writes an enrolled checkpoint: `spotter listen --profile NAME` (or --model PATH) uses it.")
    p.add_argument("--device", default=None, metavar="N|NAME", help="input device to record from (spotter devices)")
    p.add_argument("--from-dir", metavar="DIR", help="enroll from recordings in DIR instead of the microphone")
    p.add_argument("--keywords", metavar="K1,K2,...", help="which keywords (default: all of the model's)")
    p.add_argument("--takes", type=int, default=5, help="takes of each keyword to record (default: 5; 3 at least "
                   "for a measured result)")
    p.add_argument("--profile", metavar="NAME", help="profile name: recordings and model in the user's data "
                   "folder (default: 'default'; with --from-dir and --out: none)")
    p.add_argument("--model", default=None, help="base checkpoint to adapt (default: the shipped model)")
    p.add_argument("--out", metavar="PATH", help="where to write the enrolled checkpoint (default: the profile's)")
    p.add_argument("--no-ui", action="store_true", help="plain prompts instead of the terminal UI")
    p.add_argument("--speech-seconds", type=float, default=30.0,
                   help="seconds of reading a paragraph aloud (default: 30; 0: none)")
    p.add_argument("--room-seconds", type=float, default=10.0, help="seconds of the quiet room (default: 10; 0: none)")
    p.add_argument("--steps", type=int, default=None, help="fine-tuning steps of 48 clips (default: 150; fewer: "
                   "quicker and less adapted)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the adaptation (default: 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_enroll)

    p = sub.add_parser("custom", help="a spotter of your own words, made offline from text (an hour on a CPU)",
                       description="Make a spotter of your own keywords from text alone: synthesise them, words that "
                       "sound nearly like them and keyword-free speech with every English voice there is, train a "
                       "model whose classes are your keywords, unknown and silence, tune its detector on held-out "
                       "voices and write the checkpoint (`spotter listen --model OUT`). Resumes where it stopped "
                       "when run again with the same arguments.")
    p.add_argument("keywords", nargs="+", metavar="KEYWORD", help='a word or a short phrase, e.g. "lights on"')
    p.add_argument("--out", default="custom.pt", help="the checkpoint to write (default: custom.pt); its work "
                   "folder (corpus, training run, streams) is OUT's name with -work")
    p.add_argument("--voices", type=int, default=200, help="clips of each word, each by another voice (default: 200; "
                   "fewer: quicker and weaker)")
    p.add_argument("--epochs", type=int, default=30, help="training epochs (default: 30; fewer: quicker and weaker)")
    p.add_argument("--model", default=None, choices=ARCHITECTURES,
                   help="architecture (default: custom.yaml's; a larger one is slower and may be better)")
    p.add_argument("--base", default="auto", metavar="CKPT|auto|none",
                   help="the trained model whose network the custom model starts from (default: auto: the shipped "
                   "model when --model is its architecture; none: random weights)")
    p.add_argument("--world-voices", type=int, default=None, metavar="N",
                   help="new training voices made from the synthetic ones with the WORLD vocoder (default: a fifth "
                   "of --voices when pyworld is installed; 0: none)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--accelerator", default="auto", help="auto, cpu, gpu (default: auto: a GPU when there is one)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_custom)

    p = sub.add_parser("devices", help="list audio input devices",
                       description="List audio input devices: index, name, channels, default sample rate.")
    p.add_argument("--json", action="store_true", help="print one JSON list")
    p.set_defaults(func=_cmd_devices)

    p = sub.add_parser("eval-stream", help="streaming accuracy on a long WAV with a labels file",
                       description="Replay a long WAV through the streaming engine and score its detections "
                       "against a labels CSV (label,start,end) the way TensorFlow's test_streaming_accuracy "
                       "does: matched / wrong / missed / false alarms, false alarms per hour, detection "
                       "latency. Make a test stream with `spotter data stream`.")
    p.add_argument("wav", help="the long audio file")
    p.add_argument("labels", help="its labels CSV (label,start,end in seconds)")
    _add_streaming_options(p)
    p.add_argument("--tolerance", type=float, default=0.75,
                   help="seconds after a keyword's end a detection still counts (default: 0.75)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_eval_stream)

    p = sub.add_parser("tune", help="choose the detector's settings on labelled streams (held-out voices)",
                       description="Tune the detector (score, threshold, smoothing, minimum count) on held-out "
                       "streams: the model runs once per stream, then 450 settings are replayed over its stored "
                       "posteriors and ranked by keyword recall within the false-alarm budget. Each WAV needs its "
                       "labels CSV beside it (`spotter data stream` writes both). --save writes the best setting "
                       "into the checkpoint, where listen and eval-stream find it.")
    p.add_argument("streams", nargs="+", metavar="STREAM", help="WAV files made by `spotter data stream`")
    p.add_argument("--model", default=None, help="checkpoint file or model name (default: the shipped model)")
    p.add_argument("--max-fa-per-hour", type=float, default=2.0, help="false-alarm budget (default: 2 per hour)")
    p.add_argument("--max-latency", type=float, default=None, metavar="S",
                   help="only settings whose median latency after the keyword's end is at most S seconds")
    p.add_argument("--tolerance", type=float, default=0.75,
                   help="seconds after a keyword's end a detection still counts (default: 0.75)")
    p.add_argument("--top", type=int, default=12, help="rows to print (default: 12)")
    p.add_argument("--json", metavar="FILE", help="also write every row to this JSON file")
    p.add_argument("--objective", choices=TUNE_OBJECTIVES, default="pooled",
                   help="rank settings by the recall over all keywords (pooled, the default) or by the lowest "
                        "recall of any one keyword stream (worst-stream: one stream per voice or engine)")
    p.add_argument("--per-keyword", action="store_true",
                   help="then give each keyword its own threshold (for every score, smoothing and count), the most "
                        "hits within the false-alarm budget")
    p.add_argument("--margin-steps", type=int, default=2,
                   help="with --per-keyword: a threshold is charged the false alarms of the one this many grid "
                        "steps lower (default: 2), so thresholds do not sit on the edge of the validation speech")
    p.add_argument("--save", action="store_true",
                   help="write the best setting into the model's checkpoint (meta 'detector')")
    p.add_argument("--engine", action="store_true",
                   help="score the streams through the streaming engine, as listen does, instead of in batches "
                        "(the same posteriors, several times slower)")
    p.add_argument("--posteriors", metavar="DIR",
                   help="keep each stream's posteriors in DIR and reuse them while newer than the stream, "
                        "for the same weights (a retrained checkpoint is scored again)")
    p.add_argument("--device-type", choices=DEVICE_TYPES, default="cpu",
                   help="where the batched scoring runs (default: cpu; cuda scores hours of audio in seconds)")
    p.set_defaults(func=_cmd_tune)

    p = sub.add_parser("bench", help="is this machine fast enough? time the model's per-window work here",
                       description="Time the per-window work of `spotter listen` on this machine: incremental "
                       "features for one hop + the model on the newest 1 s window (batch 1), on the device and with "
                       "the threads listen would use. Prints median and p99 ms per window, the CPU share of one "
                       "core at the hop, and a verdict.")
    _add_model_options(p)
    _add_runtime_option(p)
    p.add_argument("--iterations", type=int, default=300, help="windows to time (default: 300)")
    p.add_argument("--json", action="store_true", help="print one JSON object (window_ms_median, window_ms_p99, "
                   "cpu_percent, device, verdict, ...)")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("train", help="train a model (Lightning) on Speech Commands or a synthetic corpus",
                       description="Train a keyword-spotting model with PyTorch Lightning. Writes Lightning "
                       "checkpoints (best and last), per-epoch logs, and OUT/model.pt, a spotter checkpoint that "
                       "`spotter listen --model` and `spotter eval` take.")
    add_train_arguments(p)
    p.set_defaults(func=_cmd_train, parser=p)

    p = sub.add_parser("eval", help="test loss, accuracy, macro F1, per-class P/R and confusion matrix",
                       description="Evaluate a checkpoint on labelled clips in Speech Commands layout.")
    p.add_argument("checkpoint", nargs="?", default=None, help="checkpoint file or model name (default: the shipped model)")
    p.add_argument("--data", default="gsc", help="'gsc' or a folder in Speech Commands layout (default: gsc)")
    p.add_argument("--data-dir", default=None, help="cache folder of the downloaded dataset")
    p.add_argument("--split", choices=("test", "val", "all"), default="test",
                   help="which clips: the test or validation list, or every clip in the folder (default: test)")
    p.add_argument("--protocol", action="store_true",
                   help="with --split all: sample unknown words down to the 12-class proportions "
                   "(10%% unknown, 10%% silence) instead of scoring every clip")
    p.add_argument("--json", action="store_true", help="print one JSON object (accuracy, f1_macro, loss, labels, confusion, n, ...)")
    p.add_argument("--plot", metavar="PNG", help="also save the confusion matrix as a PNG")
    p.add_argument("--device-type", choices=DEVICE_TYPES, default="auto", help="where to run (default: auto)")
    p.add_argument("--batch-size", type=int, default=256, help="clips per batch (default: 256)")
    p.add_argument("--seed", type=int, default=0, help="seed of the unknown/silence sampling and of --snr's noise (default: 0)")
    p.add_argument("--snr", type=float, metavar="DB", default=None,
                   help="mix the folder's background noise (the split's own region of each file) into every clip at "
                   "DB dB SNR over its speech: accuracy in noise (default: clean)")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("plot", help="pictures of the Mel filters and Fourier kernels, initial vs trained",
                       description="Plot the checkpoint's 40 Mel filters and STFT Fourier kernels (2, 10, 20, 50; "
                       "sine and cosine) beside the initial fixed ones, and where each Mel filter moved (centre, width): "
                       "what trainable bases learned.")
    p.add_argument("checkpoint", nargs="?", default=None, help="checkpoint file or model name (default: the shipped model)")
    p.add_argument("--out", required=True, help="folder for the PNGs")
    p.set_defaults(func=_cmd_plot)

    p = sub.add_parser("data", help="make or fetch training data",
                       description="Make a synthetic Speech Commands corpus offline, or fetch the real one.")
    data_sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    q = data_sub.add_parser("synth", help="synthesise a Speech Commands-layout corpus with text-to-speech",
                            description="Synthesise all 35 Speech Commands words with espeak-ng voices (and "
                            "piper, if installed) with pitch/rate/voice variation, plus background-noise files, "
                            "in Speech Commands layout, with validation/test splits that hold out whole voices. "
                            "This is synthetic speech: see README for what it can and cannot stand in for.")
    q.add_argument("--out", required=True, help="output folder")
    q.add_argument("--per-word", type=int, default=100, help="clips per word (default: 100)")
    q.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same files (default: 0)")
    q.add_argument("--engines", default="espeak,piper",
                   help="comma-separated TTS engines among espeak, piper, festival, flite (kept for unseen-engine "
                        "test corpora), pico, mbrola and rhvoice (default: espeak,piper)")
    q.add_argument("--festival-voices", default="ked",
                   help="comma-separated festival voices, taking turns: ked (US male), rab and don (British men), "
                        "lp and pc (Italian female and male), dita (Czech female), krb (Czech boy), machac and ph "
                        "(Czech men); the Italian and Czech voices say the words respelled as a speaker of their "
                        "language would (default: ked)")
    q.add_argument("--holdout-fraction", type=float, default=0.2,
                   help="share of voices held out for validation, and the same for test (default: 0.2)")
    q.add_argument("--no-progress", action="store_true", help="no progress bar")
    q.set_defaults(func=_cmd_data_synth)
    q = data_sub.add_parser("merge", help="merge corpora (e.g. two synthetic ones, or Speech Commands + synthetic) into one",
                            description="Make OUT with the clips of every SOURCE corpus (hard links, so no audio "
                            "is copied when they share a file system), the split lists joined, the background "
                            "noise of each, and a corpus.json listing all their voices. Held-out voices stay held "
                            "out; a clip path present in two sources is an error.")
    q.add_argument("sources", nargs="+", metavar="SOURCE", help="corpus folders in Speech Commands layout (two or more)")
    q.add_argument("--out", required=True, help="the new folder")
    q.set_defaults(func=_cmd_data_merge)
    q = data_sub.add_parser("fetch", help="download and extract Google Speech Commands v2 (once)",
                            description="Download speech_commands_v0.02.tar.gz with a progress bar, verify its "
                            "checksum and extract it into the cache folder; does nothing if already there.")
    q.add_argument("--data-dir", default=None, help="cache folder (default: $SPOTTER_DATA_DIR, else $XDG_CACHE_HOME/spotter or ~/.cache/spotter)")
    q.set_defaults(func=_cmd_data_fetch)
    q = data_sub.add_parser("speech", help="add 1 s crops of keyword-free sentences (training voices) as 'unknown'",
                            description="Synthesise keyword-free sentences with a corpus' training voices and "
                            "write random 1 s crops into CORPUS/speech/ (label unknown, training split only): "
                            "what a live spotter hears between keywords, so it learns to stay quiet.")
    _add_corpus_options(q)
    q.add_argument("--count", type=int, default=3000, help="clips to write (default: 3000)")
    q.set_defaults(func=_cmd_data_speech)
    q = data_sub.add_parser("hardneg", help="add the windows of keyword-free speech a model takes for a keyword",
                            description="Synthesise keyword-free sentences (many near misses: 'yesterday', "
                            "'ago', 'top') with a corpus' training voices, score every 1 s window (50 ms "
                            "apart) with a model, and write the windows it takes for a keyword into "
                            "CORPUS/hardneg/ (label unknown, training split only): hard negatives for "
                            "fine-tuning (`spotter train --init`). Running it again replaces them.")
    _add_corpus_options(q)
    q.add_argument("--model", default=None, help="the model that searches (default: the shipped model)")
    q.add_argument("--count", type=int, default=2000, help="windows to write (default: 2000)")
    q.add_argument("--min-prob", type=float, default=0.3,
                   help="keyword probability a window needs to be kept (default: 0.3)")
    q.add_argument("--per-sentence", type=int, default=2, help="windows kept per sentence at most (default: 2)")
    q.add_argument("--workers", type=int, default=None, help="processes (default: one per CPU)")
    q.set_defaults(func=_cmd_data_hardneg)
    q = data_sub.add_parser("vocode", help="make new training voices from a corpus' own through the WORLD vocoder",
                            description="Convert training voices of CORPUS into new voices with the WORLD vocoder "
                            "(pyworld): new mean pitch (80-250 Hz) and intonation range, vocal tract warped to "
                            "match, smoothed envelopes, breathier or buzzier. Writes a new corpus OUT of training "
                            "clips only; join it to its source with `spotter data merge`.")
    _add_corpus_options(q)
    q.add_argument("--out", required=True, help="the new folder")
    q.add_argument("--voices", type=int, default=180, help="new voices, each from one source voice (default: 180)")
    q.add_argument("--engines", default="piper,festival,espeak",
                   help="engines whose training voices are converted (default: piper,festival,espeak)")
    q.add_argument("--workers", type=int, default=None, help="processes (default: one per CPU)")
    q.set_defaults(func=_cmd_data_vocode)
    q = data_sub.add_parser("windows", help="add 1 s windows cut from training-voice word streams (keywords off-centre)",
                            description="Build word streams from a corpus' training voices (training noise, "
                            "5-25 dB SNR) and cut 1 s windows from them: around each keyword at random positions "
                            "(into the keyword's folder) and around other words (into CORPUS/streamwin/, label "
                            "unknown). Training split only. Running it again replaces the windows.")
    _add_corpus_options(q)
    q.add_argument("--minutes", type=float, default=45.0, help="minutes of streams to cut from (default: 45)")
    q.add_argument("--per-keyword", type=int, default=2, help="windows per word (default: 2)")
    q.set_defaults(func=_cmd_data_windows)
    q = data_sub.add_parser("stream", help="a long WAV of keywords, other words and sentences over noise, with labels",
                            description="Build a long test stream from a synthetic corpus' held-out voices: "
                            "keywords, other words and whole sentences over background noise, plus OUT.csv "
                            "with every utterance's label, start and end (for `spotter eval-stream`).")
    _add_corpus_options(q)
    q.add_argument("--out", required=True, help="the WAV to write (labels go beside it as .csv)")
    q.add_argument("--minutes", type=float, default=10.0, help="length (default: 10)")
    q.add_argument("--split", default="test", help="which voices of the corpus (default: test)")
    q.add_argument("--speech-only", action="store_true",
                   help="only whole sentences without keywords (for false alarms per hour)")
    q.set_defaults(func=_cmd_data_stream)
    q = data_sub.add_parser("reverb", help="play a recording or stream through a simulated room (labels kept)",
                            description="Convolve INPUT with a generated room impulse response (docs/data.md: "
                            "rooms) and write OUT; the direct sound keeps its time, so the labels CSV beside "
                            "INPUT is copied beside OUT (for `spotter eval-stream` in a reverberant room).")
    q.add_argument("input", help="a WAV/FLAC file (e.g. one made by `spotter data stream`)")
    q.add_argument("--out", required=True, help="the WAV to write")
    q.add_argument("--rt60", type=float, default=0.5, help="reverberation time in seconds (default: 0.5)")
    q.add_argument("--distance", type=float, default=1.5, help="talker to microphone in metres (default: 1.5)")
    q.add_argument("--kind", choices=("diffuse", "image"), default="image",
                   help="diffuse tail only, or a box room's early reflections and tail (default: image)")
    q.add_argument("--seed", type=int, default=0, help="draws the room's size, shape and positions (default: 0)")
    q.set_defaults(func=_cmd_data_reverb)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    from .errors import one_line_warnings

    one_line_warnings()
    try:
        return int(args.func(args) or 0)
    except SpotterError as err:
        print(f"spotter: {'' if isinstance(err, Interrupted) else 'error: '}{err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("spotter: interrupted", file=sys.stderr)
        return 130
