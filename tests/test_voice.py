"""The user's voice model (spotter.voice) on real speech: flite voices reading sentences, a shared microphone."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import scipy.signal as ss

from spotter.config import SAMPLE_RATE as SR
from spotter.data.stream import SENTENCES
from spotter.data.tts.engines import say
from spotter.voice import THRESHOLD, VoiceModel, VoiceModelError, background

USER = "rms"
OTHERS = ("slt", "awb", "kal16")
MIC = ss.butter(2, [250, 4000], "bandpass", fs=SR, output="sos")  # one microphone for every voice in the room


@functools.lru_cache(maxsize=None)
def reading(voice: str, first: int, count: int) -> np.ndarray:
    """``voice`` (flite) reading ``count`` sentences from ``first``, tempo and pitch varied per sentence, with
    short pauses of a quiet room."""
    rng = np.random.default_rng(first)
    parts = []
    for s in SENTENCES[first: first + count]:
        x = say(s, {"engine": "flite", "params": {"voice": voice, "duration_stretch": float(rng.uniform(0.9, 1.1)),
                                                  "f0_mean": None, "f0_stddev": None, "tract": 441}})
        parts += [x / np.abs(x).max() * 0.3, np.zeros(int(0.4 * SR), np.float32)]
    x = np.concatenate(parts)
    return (x + 1e-3 * np.random.default_rng(7).standard_normal(len(x))).astype(np.float32)


def windows(x: np.ndarray) -> list[np.ndarray]:
    return [x[a: a + SR] for a in range(0, len(x) - SR, SR // 2)]


def user_model(mic=lambda x: x) -> VoiceModel:
    return background().adapted([mic(reading(USER, 0, 10))])  # about 30 s, as `spotter enroll` records


@pytest.mark.parametrize("mic", [lambda x: x, lambda x: ss.sosfilt(MIC, x).astype(np.float32)],
                         ids=["dry", "shared-microphone"])
def test_the_users_other_sentences_score_as_theirs_and_other_voices_never_do(mic):
    model = user_model(mic)
    own = np.array([model.score(mic(w)) for w in windows(reading(USER, 20, 6))])
    assert np.mean(own >= THRESHOLD) > 0.5, own  # measured: 0.82 of the windows, dry and shared
    for other in OTHERS:
        theirs = np.array([model.score(mic(w)) for w in windows(reading(other, 20, 6))])
        assert np.nanmax(theirs) < THRESHOLD, (other, theirs.max())  # measured: at most 0.51
        assert np.nanmedian(theirs) < np.nanmedian(own) - 0.5


def test_audio_without_speech_is_nobodys():
    model = user_model()
    assert np.isnan(model.score(np.zeros(100, np.float32)))  # shorter than a frame
    assert not model.is_user(np.zeros(SR, np.float32))  # silence: every frame alike, nothing of a voice
    with pytest.raises(VoiceModelError, match="no speech"):
        background().adapted([np.zeros(100, np.float32)])
    with pytest.raises(VoiceModelError, match="no user"):
        background().score(reading(USER, 0, 1))


def test_the_model_travels_as_plain_values_and_scores_the_same():
    model = user_model()
    again = VoiceModel.from_meta(json.loads(json.dumps(model.to_meta())))
    x = reading(USER, 20, 2)[:SR]
    assert again.score(x) == model.score(x) and again.threshold == THRESHOLD
    assert np.array_equal(again.mel, model.mel)


@pytest.mark.parametrize("damage", [
    lambda m: m.pop("means"),
    lambda m: m.__setitem__("variances", [[1.0] * 19]),  # one component where there are 64
    lambda m: m.__setitem__("mel", "broken"),
])
def test_damaged_parameters_are_one_line(damage):
    meta = user_model().to_meta()
    damage(meta)
    with pytest.raises(VoiceModelError) as err:
        VoiceModel.from_meta(meta)
    assert "\n" not in str(err.value)
