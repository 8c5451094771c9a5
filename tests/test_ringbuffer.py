"""RingBuffer: exact wraparound, overrun accounting, and a real producer/consumer race."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from spotter.ringbuffer import RingBuffer


def ramp(start: int, n: int, channels: int = 1) -> np.ndarray:
    """Frames whose value is their absolute index (channel c holds -index - c for c > 0)."""
    idx = np.arange(start, start + n, dtype=np.float64)
    return np.stack([idx if c == 0 else -idx - c for c in range(channels)], axis=1)


def test_wraparound_matches_concatenation():
    rng = np.random.default_rng(0)
    ring = RingBuffer(100, dtype=np.float64)
    written, read = [], []
    for _ in range(200):
        block = rng.standard_normal(int(rng.integers(0, 40)))
        ring.write(block)
        written.append(block)
        if rng.random() < 0.5 or ring.available > 60:  # never let it overrun
            frames, first = ring.read_new()
            assert first == sum(len(r) for r in read)
            read.append(frames[:, 0])
            assert np.array_equal(ring.read_latest(30)[:, 0],
                                  np.concatenate([np.zeros(30)] + written)[-30:])
    frames, _ = ring.read_new()
    read.append(frames[:, 0])
    assert ring.overruns == 0
    assert np.array_equal(np.concatenate(read), np.concatenate(written))
    assert ring.written == sum(len(w) for w in written)


def test_read_latest_pads_with_zeros_and_keeps_read_position():
    ring = RingBuffer(8)
    ring.write(np.array([1.0, 2.0, 3.0], dtype=np.float32))
    assert ring.read_latest(5)[:, 0].tolist() == [0, 0, 1, 2, 3]
    assert ring.available == 3
    frames, first = ring.read_new()
    assert first == 0 and frames[:, 0].tolist() == [1, 2, 3]
    assert ring.available == 0 and len(ring.read_new()[0]) == 0
    with pytest.raises(ValueError):
        ring.read_latest(9)


def test_max_frames_reads_oldest_first():
    ring = RingBuffer(16, dtype=np.float64)
    ring.write(ramp(0, 10))
    frames, first = ring.read_new(max_frames=4)
    assert first == 0 and frames[:, 0].tolist() == [0, 1, 2, 3]
    frames, first = ring.read_new()
    assert first == 4 and frames[:, 0].tolist() == list(range(4, 10))


def test_overrun_skips_to_oldest_held_frame_and_counts_the_loss():
    ring = RingBuffer(10, dtype=np.float64)
    ring.write(ramp(0, 7))
    ring.read_new(max_frames=3)  # frames 0..2 read
    ring.write(ramp(7, 9))  # 16 written, frames 6..15 held: 3..5 lost
    assert ring.available == 10
    frames, first = ring.read_new()
    assert first == 6 and frames[:, 0].tolist() == list(range(6, 16))
    assert (ring.overruns, ring.overrun_frames) == (1, 3)
    ring.write(ramp(16, 25))  # larger than the ring: only its newest 10 frames are kept
    frames, first = ring.read_new()
    assert first == 31 and frames[:, 0].tolist() == list(range(31, 41))
    assert (ring.overruns, ring.overrun_frames) == (2, 3 + 15)
    assert ring.written == 41


def test_two_channel_frames_are_stored_as_they_come():
    ring = RingBuffer(5, channels=2, dtype=np.float64)
    for start, n in [(0, 3), (3, 4), (7, 2)]:
        ring.write(ramp(start, n, channels=2))
    frames, first = ring.read_new()
    assert first == 4 and np.array_equal(frames, ramp(4, 5, channels=2))
    assert np.array_equal(ring.read_latest(2), ramp(7, 2, channels=2))


class GatedBlock(np.ndarray):
    """Frames that cannot be read until ``gate`` is set: freezes a ``write()`` mid-copy."""

    def __getitem__(self, key):
        self.entered.set()
        assert self.gate.wait(10)
        return np.asarray(self)[key]


def test_frames_a_write_in_progress_will_overwrite_are_not_returned():
    ring = RingBuffer(10, dtype=np.float64)
    ring.write(ramp(0, 8))
    ring.read_new(max_frames=2)  # frames 0, 1 read; 2..7 unread
    block = ramp(8, 5).view(GatedBlock)  # frames 8..12 go to slots 8, 9, 0, 1, 2
    block.entered, block.gate = threading.Event(), threading.Event()
    producer = threading.Thread(target=ring.write, args=(block,))
    producer.start()
    assert block.entered.wait(10)  # the producer has claimed the slots but not copied yet
    frames, first = ring.read_new()
    block.gate.set()
    producer.join()
    assert first == 3 and frames[:, 0].tolist() == [3, 4, 5, 6, 7]  # frame 2's slot is being rewritten
    assert (ring.overruns, ring.overrun_frames) == (1, 1)
    frames, first = ring.read_new()
    assert first == 8 and frames[:, 0].tolist() == [8, 9, 10, 11, 12]


def test_concurrent_producer_and_consumer_lose_nothing_silently():
    """A producer thread writes a counting ramp in random block sizes at full speed while the
    consumer reads (and now and then stalls, so the producer laps it): every frame read carries
    its own index, and exactly the frames skipped are counted as lost.

    Both threads yield the GIL after each call (``sleep(0)``), as a real audio callback thread
    does between callbacks; otherwise CPython runs each thread for whole 5 ms slices and reads
    and writes would hardly interleave.
    """
    capacity, total = 4096, 2_000_000
    ring = RingBuffer(capacity, channels=2, dtype=np.float64)
    done = threading.Event()

    def produce():
        rng = np.random.default_rng(1)
        position = 0
        while position < total:
            n = min(int(rng.integers(1, 600)), total - position)
            ring.write(ramp(position, n, channels=2))
            position += n
            time.sleep(0)
        done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    got_frames = lost = reads = 0
    expected_next = 0
    while True:
        finished = done.is_set()
        frames, first = ring.read_new()
        reads += 1
        assert first >= expected_next
        lost += first - expected_next
        assert np.array_equal(frames, ramp(first, len(frames), channels=2)), "torn or misplaced frames"
        got_frames += len(frames)
        expected_next = first + len(frames)
        if finished and expected_next == total:
            break
        time.sleep(0.002 if reads % 16 == 0 else 0)
    producer.join()
    assert got_frames + lost == total
    assert lost == ring.overrun_frames
    assert ring.overruns >= 3 and got_frames > total // 4  # both paths really ran
