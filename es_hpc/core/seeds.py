"""Seeds derived from (base seed, iteration, member), so no seed ever crosses the network."""
from __future__ import annotations

import numpy as np

MASK64 = (1 << 64) - 1


def member_seeds(base: int, iteration: int, population: int, antithetic: bool) -> tuple[np.ndarray, np.ndarray]:
    """Seeds (N,) uint64 and signs (N,) int8 of iteration's members; antithetic pairs share a seed."""
    draws = population // 2 if antithetic else population
    seeds = np.array(
        [np.random.SeedSequence([base, iteration, k]).generate_state(1, dtype=np.uint64)[0] for k in range(draws)],
        dtype=np.uint64,
    )
    if not antithetic:
        return seeds, np.ones(population, dtype=np.int8)
    return np.repeat(seeds, 2), np.tile(np.array([1, -1], dtype=np.int8), draws)


def splitmix64(x: int) -> int:
    """One round of SplitMix64: a cheap bijective mix that decorrelates nearby integers."""
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def tensor_seed(member_seed: int, tensor_index: int) -> int:
    """Seed of one parameter tensor's noise: layers get independent streams from one member seed."""
    return splitmix64(int(member_seed) ^ splitmix64(tensor_index))


def prompt_rng(base: int, iteration: int) -> np.random.Generator:
    """The generator that picks iteration's prompt batch; the same on every rank."""
    return np.random.default_rng(np.random.SeedSequence([base, iteration, 1 << 32]))
