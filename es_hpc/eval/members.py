"""A population's members evaluated over ranks: rank r perturbs, generates and scores members k with
k % W == r, and only their rewards (plus a few counters) are all-reduced (Algorithm 1, steps 2-3)."""
from __future__ import annotations

from contextlib import ExitStack, contextmanager

import numpy as np

from . import population


@contextmanager
def perturbed_members(job, seeds, scales, timer, batched: bool):
    """The members (seed, scale) in the model for the block: one member perturbed in place, or several in a batched
    population call (population.members); restored afterwards, timed as perturb and restore."""
    with ExitStack() as undo:
        with timer("perturb"):
            if batched:
                undo.enter_context(population.members(job.backend.model, job.perturbed, seeds, scales))
            else:
                job.perturbed.perturb(int(seeds[0]), float(scales[0]))
                undo.callback(job.perturbed.restore)
        try:
            yield
        finally:
            with timer("restore"):
                undo.close()


def evaluate_members(job, seeds, signs, sigma: float, batch, rows, timer):
    """This rank's members (k % W == rank), job.batch_members(P) per call: perturb, generate, score, restore.
    Returns the length-N reward vector (zeros for other ranks' members), their packed per-prompt bits, and the
    tokens generated."""
    n, p = len(seeds), len(rows)
    rewards, tokens = np.zeros(n), 0
    bits = np.zeros((n, (p + 7) // 8), dtype=np.uint8)  # per-prompt 0/1 rewards, packed
    owned = list(job.comm.owned(n))
    per_call, batched = job.batch_members(p), job.batched(p)
    for s in range(0, len(owned), per_call):
        chunk = owned[s:s + per_call]
        chunk_rows = rows * len(chunk)  # member-major, as population.members expects
        with perturbed_members(job, seeds[chunk], signs[chunk].astype(np.float64) * sigma, timer, batched):
            with timer("generate"):
                big = batch.repeat(len(chunk)) if batched else batch
                texts, n_tok = job.evaluator.completions(big, chunk_rows, len(chunk_rows) if batched else 0)
        with timer("score"):
            per_prompt = job.evaluator.score(texts, chunk_rows).reshape(len(chunk), p)
            rewards[chunk] = per_prompt.mean(1)
            bits[chunk] = np.packbits(per_prompt >= 0.5, axis=1)
        tokens += n_tok
    return rewards, bits, tokens


def evaluate_over_ranks(job, seeds, signs, sigma: float, batch, rows, timer, scalars=lambda: (),
                        tokens_by_rank: bool = False):
    """Every member's reward on `rows` at theta + sigma s_k eps_k, members dealt over ranks: one all-reduce of the
    N rewards, the tokens and scalars() (this rank's values, read once its members are done, summed), and the packed
    per-prompt bits to rank 0. Returns (rewards, tokens, summed scalars, bits on rank 0 else None); tokens is the
    total, or with tokens_by_rank the count of every rank (for one member per rank, each member's)."""
    rewards, bits, tokens = evaluate_members(job, seeds, signs, sigma, batch, rows, timer)
    comm = job.comm
    slots = np.zeros(comm.world_size) if tokens_by_rank else np.zeros(1)
    slots[comm.rank if tokens_by_rank else 0] = tokens
    n, k = len(seeds), len(slots)
    with timer("exchange"):
        summed = comm.allreduce_sum(np.concatenate([rewards, slots, np.asarray(scalars(), dtype=np.float64)]))
        bits = comm.reduce_sum_root(bits)  # each member's row is non-zero on one rank only
    tokens = summed[n:n + k].astype(np.int64)
    return summed[:n], tokens if tokens_by_rank else int(tokens[0]), summed[n + k:], bits
