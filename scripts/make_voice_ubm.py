"""Write spotter/enroll/voice_ubm.npz, the background voice model that enrollment adapts to its user.

    python scripts/make_voice_ubm.py [--voices 12] [--sentences 8] [--components 64] [--seed 0]

A Gaussian mixture (diagonal covariances, scikit-learn's EM) of the cepstra of :mod:`spotter.voice`
over keyword-free sentences said by voices of training engines (piper, pico, mbrola, rhvoice; each
voice's tempo, pitch and vocal tract drawn as the corpus does), with the Mel filterbank the cepstra
are made with (the front end's). espeak-ng is left out on purpose, as in make_enroll_babble.py:
benchmarks/bench_enrollment.py scores in espeak-ng babble; flite and festival are the unseen-voice
engines of docs/evaluation.md. Needs those engines (scripts/install_tts.sh) and scikit-learn.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "spotter" / "enroll" / "voice_ubm.npz"
ENGINES = ("piper", "pico", "mbrola", "rhvoice")


def main() -> None:
    from sklearn.mixture import GaussianMixture
    from tqdm import tqdm

    from spotter.data.stream import SENTENCES
    from spotter.data.tts.engines import engine_module, say
    from spotter.features import LogMel
    from spotter.voice import FRAME, N_CEPSTRA, VoiceModel

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--voices", type=int, default=12, help="voices per engine")
    p.add_argument("--sentences", type=int, default=8, help="sentences per voice")
    p.add_argument("--components", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    mel = LogMel(n_fft=FRAME, win_length=FRAME).mel.mel_basis.detach().numpy().astype(np.float32).astype(np.float64)
    rng = np.random.default_rng(args.seed)
    d = N_CEPSTRA - 1
    dummy = VoiceModel(mel, np.ones(1), np.zeros((1, d)), np.ones((1, d)))  # for its features
    jobs = [(v, SENTENCES[int(i)]) for e in ENGINES for v in engine_module(e).draw_voices(rng, args.voices, set())
            for i in rng.choice(len(SENTENCES), args.sentences, replace=False)]
    frames = [dummy.features(say(text, voice)) for voice, text in tqdm(jobs, desc="voices", unit="sentence")]
    x = np.concatenate(frames)
    gm = GaussianMixture(args.components, covariance_type="diag", reg_covar=1e-3, max_iter=200,
                         random_state=args.seed).fit(x)
    VoiceModel(mel, gm.weights_, gm.means_, gm.covariances_)  # checks the shapes
    np.savez_compressed(args.out, mel=mel.astype(np.float32), weights=gm.weights_, means=gm.means_,
                        variances=gm.covariances_)
    print(f"{args.out}: {args.components} components over {len(x)} frames of {len(ENGINES) * args.voices} voices")


if __name__ == "__main__":
    main()
