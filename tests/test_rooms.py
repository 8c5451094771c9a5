"""Simulated rooms: generated impulse responses have the asked reverberation, and audio keeps its timing."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from spotter.cli import main
from spotter.config import SAMPLE_RATE as SR
from spotter.data.rooms import KINDS, direct_to_reverberant_db, impulse_response, reverberate, rt60_of


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("rt60", [0.3, 0.5, 0.8])
def test_the_response_decays_in_the_asked_reverberation_time(kind, rt60):
    for seed in range(3):
        h = impulse_response(rt60, 1.5, np.random.default_rng(seed), kind)
        assert h.dtype == np.float32 and len(h) == int(1.2 * rt60 * SR)
        assert h[0] == 1.0 and np.argmax(np.abs(h)) == 0  # the direct sound first and loudest
        assert abs(rt60_of(h) - rt60) < 0.25 * rt60  # Schroeder T20 (measured on 20 rooms: -11..+25%)


@pytest.mark.parametrize("kind", KINDS)
def test_a_farther_talker_hears_more_room_than_direct_sound(kind):
    def drr(distance):
        return np.mean([direct_to_reverberant_db(impulse_response(0.5, distance, np.random.default_rng(s), kind))
                        for s in range(8)])

    near, mid, far = drr(0.5), drr(1.5), drr(3.0)
    assert near > 0 > far and near - mid > 5 and mid - far > 3  # 6 dB per doubling beyond the critical distance


def test_the_image_room_has_discrete_early_reflections_the_diffuse_one_has_not():
    def peakiness(h):  # kurtosis of the first 50 ms after the direct sound
        early = h[1:int(0.05 * SR)].astype(np.float64)
        return float(np.mean(early**4) / np.mean(early**2) ** 2)

    image = [peakiness(impulse_response(0.5, 1.5, np.random.default_rng(s), "image")) for s in range(4)]
    diffuse = [peakiness(impulse_response(0.5, 1.5, np.random.default_rng(s), "diffuse")) for s in range(4)]
    assert min(image) > 10 > 5 > max(diffuse)  # noise: about 3


def test_the_same_seed_makes_the_same_room_and_another_seed_another():
    a, b, c = (impulse_response(0.5, 2.0, np.random.default_rng(s), "image") for s in (1, 1, 2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("rt60, distance", [(0.01, 1.0), (5.0, 1.0), (0.5, 0.0), (0.5, 50.0)])
def test_a_room_out_of_range_is_refused_with_the_range(rt60, distance):
    with pytest.raises(ValueError, match="give"):
        impulse_response(rt60, distance, np.random.default_rng(0))


def test_reverberation_keeps_the_onset_and_rings_after_the_sound_stops():
    t = np.arange(SR) / SR
    burst = np.where((t >= 0.3) & (t < 0.4), np.sin(2 * np.pi * 440 * t), 0.0).astype(np.float32)
    h = impulse_response(0.5, 2.0, np.random.default_rng(0), "image")
    wet = reverberate(burst, h)
    assert wet.shape == burst.shape and wet.dtype == np.float32
    assert np.max(np.abs(wet[: int(0.3 * SR)])) < 1e-5 < abs(wet[int(0.3 * SR) + 10])  # starts with the sound (FFT: 1e-7)
    dry_tail = np.sqrt(np.mean(burst[int(0.45 * SR):int(0.55 * SR)] ** 2))
    wet_tail = np.sqrt(np.mean(wet[int(0.45 * SR):int(0.55 * SR)] ** 2))
    assert dry_tail == 0 and wet_tail > 0.01  # the room rings on after the burst


def test_spotter_data_reverb_writes_the_recording_through_a_room_with_its_labels(tmp_path, capsys):
    t = np.arange(2 * SR) / SR
    x = (0.5 * np.sin(2 * np.pi * 300 * t) * ((t > 0.5) & (t < 0.7))).astype(np.float32)
    src = tmp_path / "stream.wav"
    sf.write(src, np.stack([x, 0.5 * x], axis=1), SR, subtype="PCM_16")  # stereo: each channel reverberated
    (tmp_path / "stream.csv").write_text("label,start,end\nyes,0.5,0.7\n")
    out = tmp_path / "rooms" / "wet.wav"
    assert main(["data", "reverb", str(src), "--out", str(out), "--rt60", "0.6", "--distance", "2"]) == 0
    wet, rate = sf.read(out, always_2d=True)
    assert rate == SR and wet.shape == (2 * SR, 2) and np.max(np.abs(wet)) <= 10 ** (-1 / 20) + 1e-6
    assert np.sqrt(np.mean(wet[int(0.8 * SR):int(1.0 * SR), 0] ** 2)) > 0.005  # the room after the tone
    assert abs(np.argmax(np.abs(wet[:, 0]) > 0.01) / SR - 0.5) < 0.01  # and the tone where it was
    assert (tmp_path / "rooms" / "wet.csv").read_text() == (tmp_path / "stream.csv").read_text()
    assert "direct-to-reverberant" in capsys.readouterr().out


@pytest.mark.parametrize("out, args, says", [("out.wav", ["--rt60", "9"], "0.05-3 s"),
                                             ("out.wav", ["--distance", "0"], "0.1-20 m"),
                                             ("in.wav", [], "is the input"),
                                             ("in.flac", [], "shares its labels"), ("out.flac", [], "a .wav file")])
def test_spotter_data_reverb_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, out, args, says):
    src = tmp_path / "in.wav"
    sf.write(src, np.zeros(SR, np.float32), SR)
    (tmp_path / "in.csv").write_text("label,start,end\n")
    before = src.read_bytes()
    code = main(["data", "reverb", str(src), "--out", str(tmp_path / out), *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and says in err and "\n" not in err and "Traceback" not in err
    assert src.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "in.wav"]


def test_a_quiet_recording_keeps_its_level_and_the_same_seed_makes_the_same_room(tmp_path):
    from spotter.data.rooms import reverberate_file, through_room

    t = np.arange(SR) / SR
    x = (0.05 * np.sin(2 * np.pi * 440 * t) * (t < 0.3)).astype(np.float32)
    h = impulse_response(0.4, 1.0, np.random.default_rng(1), "image")
    wet, gain_db = through_room(x, h)
    assert gain_db == 0.0 and np.array_equal(wet, reverberate(x, h))  # nothing near full scale: untouched
    loud, loud_gain = through_room(np.stack([20 * x, x], axis=1), h)
    assert loud_gain < 0 and abs(np.max(np.abs(loud)) - 10 ** (-1 / 20)) < 1e-4  # scaled, both channels alike
    assert np.allclose(loud[:, 1] * 20, loud[:, 0], atol=1e-5)
    src = tmp_path / "kw.wav"
    sf.write(src, x, SR, subtype="FLOAT")
    a = reverberate_file(src, tmp_path / "a.wav", 0.5, 1.5, "image", seed=1)
    reverberate_file(src, tmp_path / "b.wav", 0.5, 1.5, "image", seed=1)
    assert a.labels is None and not (tmp_path / "a.csv").exists()
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "b.wav", "kw.wav"]  # no .part left
