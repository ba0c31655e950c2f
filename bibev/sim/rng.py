"""Randomness of the simulator: seeded streams and counter-based hashes.

Two kinds, both deterministic for a seed:

- ``stream(seed, vehicle, purpose, day)`` is a ``numpy.random.Generator(PCG64)`` keyed by the
  vehicle's index (and the day), so adding vehicles or days never changes the others;
- ``uniform(seed, purpose, *keys)`` hashes integer arrays (vehicle, second, field, …) into
  uniforms in [0, 1). It draws one number per record without any per-record state, so the
  mess applied to a record does not depend on how the fleet was cut into batches.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)


class Purpose(IntEnum):
    """What a random stream or hash is used for (part of its key)."""

    FLEET = 1
    PLAN = 2
    PHYSICS = 3
    NOISE = 10
    REPEAT = 11
    LATENCY = 12
    RESEND = 13
    SKEW = 14
    STRING = 15
    INVALID = 16
    GARBAGE = 17
    PHASE = 18
    JITTER = 19


def stream(seed: int, vehicle: int, purpose: Purpose, day: int = 0) -> np.random.Generator:
    """A PCG64 generator for one vehicle (and one day, as days since 1970-01-01)."""
    key = (int(vehicle), int(purpose), int(day) + 2**20)
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed), spawn_key=key)))


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection of uint64 with good avalanche."""
    x = x ^ (x >> np.uint64(30))
    x = x * _MUL1
    x = x ^ (x >> np.uint64(27))
    x = x * _MUL2
    return x ^ (x >> np.uint64(31))


def hash64(seed: int, purpose: Purpose, *keys: np.ndarray | int) -> np.ndarray:
    """A uint64 hash of the seed, the purpose and integer keys (broadcast together)."""
    with np.errstate(over="ignore"):
        start = np.uint64((int(seed) * 0x2545F4914F6CDD1D + int(purpose)) % 2**64)
        h = _mix(np.asarray(start + _GOLDEN, dtype=np.uint64))
        for key in keys:
            k = np.asarray(key).astype(np.int64).view(np.uint64)
            h = _mix(h ^ (k * _GOLDEN + _MUL1))
    return h


def uniform(seed: int, purpose: Purpose, *keys: np.ndarray | int) -> np.ndarray:
    """Uniform floats in [0, 1), one per broadcast element of ``keys``."""
    return (hash64(seed, purpose, *keys) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def normal(seed: int, purpose: Purpose, *keys: np.ndarray | int) -> np.ndarray:
    """Standard normal floats, one per broadcast element of ``keys`` (Box–Muller)."""
    u1 = uniform(seed, purpose, *keys, 1)
    u2 = uniform(seed, purpose, *keys, 2)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)
