"""Write spotter/enroll/babble.flac, the babble of other voices that enrollment mixes under the user's takes.

    python scripts/make_enroll_babble.py [--seconds 60] [--seed 0]

Six overlapped talkers made by piper (joe, varied per sentence) and festival (ked variants) saying the
keyword-free babble sentences, peak -3 dBFS, 16 kHz 16-bit FLAC. espeak-ng is left out on purpose:
benchmarks/bench_enrollment.py scores enrolled models in espeak-ng babble, which must stay a kind of
noise the adaptation never heard. Needs those engines (scripts/install_tts.sh).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import soundfile as sf

from spotter.config import SAMPLE_RATE
from spotter.data import noise
from spotter.data.synth_noise import engines_babble

OUT = Path(__file__).resolve().parents[1] / "spotter" / "enroll" / "babble.flac"
ENGINES = ("piper", "festival")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    x = noise.to_peak(engines_babble(ENGINES, args.seconds, args.seed), -3.0)
    sf.write(str(args.out), x, SAMPLE_RATE, subtype="PCM_16")
    print(f"{args.out}: {len(x) / SAMPLE_RATE:.0f} s of {', '.join(ENGINES)} babble")


if __name__ == "__main__":
    main()
