"""The random streams: Philox2x64-10 known answers and the per-trajectory xoroshiro128++ stream."""

from __future__ import annotations

import numpy as np
import pytest

from pgfast import _core

M64 = 2**64 - 1

# Known-answer vectors of Philox2x64-10 from Random123 (counter c0 c1, key -> out0 out1).
PHILOX_KAT = [
    ((0x0, 0x0, 0x0), (0xCA00A0459843D731, 0x66C24222C9A845B5)),
    ((M64, M64, M64), (0x65B021D60CD8310F, 0x4D02F3222F86DF20)),
    ((0x243F6A8885A308D3, 0x13198A2E03707344, 0xA4093822299F31D0), (0x0A5E742C2997341C, 0xB0F883D38000DE5D)),
]


@pytest.mark.parametrize(("inputs", "expected"), PHILOX_KAT)
def test_philox_known_answers(inputs: tuple[int, int, int], expected: tuple[int, int]) -> None:
    assert _core.sampling.philox2x64(*inputs) == expected


def _rotl(x: int, k: int) -> int:
    return ((x << k) | (x >> (64 - k))) & M64


def _xoroshiro128pp(s0: int, s1: int, count: int) -> list[int]:
    """Transcription of xoroshiro128++ (Blackman & Vigna), on Python ints."""
    if s0 == 0 and s1 == 0:
        s1 = 1
    out = []
    for _ in range(count):
        out.append((_rotl((s0 + s1) & M64, 17) + s0) & M64)
        s1 ^= s0
        s0 = _rotl(s0, 49) ^ s1 ^ ((s1 << 21) & M64)
        s1 = _rotl(s1, 28)
    return out


@pytest.mark.parametrize("seed", [0, 1, 12345, M64])
@pytest.mark.parametrize("item", [0, 1, 7, 2**40 + 3])
def test_stream_is_xoroshiro_seeded_by_philox(seed: int, item: int) -> None:
    key = _core.sampling.stream_key(seed, "rollout")
    s0, s1 = _core.sampling.philox2x64(0, item, key)
    assert _core.sampling.stream_words(seed, "rollout", item, 12) == _xoroshiro128pp(s0, s1, 12)


def test_streams_differ_across_items_seeds_and_domains() -> None:
    words = {
        tuple(_core.sampling.stream_words(seed, domain, item, 4))
        for seed in range(3)
        for item in range(50)
        for domain in ("rollout", "policy_sample")
    }
    assert len(words) == 3 * 50 * 2


def test_stream_uniforms_look_uniform() -> None:
    # 64 bins of the top 6 bits over 64k words from 256 streams; chi-square with 63 dof.
    # At alpha = 1e-6 the critical value is about 130.
    words = np.array([w for i in range(256) for w in _core.sampling.stream_words(99, "rollout", i, 256)], dtype=np.uint64)
    counts = np.bincount((words >> np.uint64(58)).astype(np.int64), minlength=64)
    expected = words.size / 64
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 130.0


def test_bad_domain() -> None:
    with pytest.raises(ValueError, match="domain"):
        _core.sampling.stream_words(0, "nope", 0, 1)
