"""Shards of a tensor's noise, as a tensor-parallel vLLM worker draws them, against the unsharded tensors: a Region
draw is bit for bit that part of the full draw (native and torch), and masters kept as shards (the pieces vLLM's
loader makes: row blocks of a column-parallel layer, column blocks of a row-parallel one, a replicated norm, a
vocabulary split with padding) perturb, update, put back together and checksum exactly as the whole tensors do."""
import numpy as np
import pytest
import torch

from es_hpc.backends.vllm_layout import LayoutError, Piece
from es_hpc.backends.vllm_params import EngineLayout
from es_hpc.core import native
from es_hpc.core.noise import NoiseSource, Region
from es_hpc.core.params import PerturbedParams, checksum

IMPLEMENTATIONS = ["torch"] + ([] if native.why_missing() else ["native"])


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("shape, offset, stride, block", [
    ((37,), 5, (1,), lambda f: f.view(-1)[5:42]),  # a range starting inside a counter
    ((7, 130), 3 * 130, (130, 1), lambda f: f[3:10]),  # rows
    ((99, 65), 65, (130, 1), lambda f: f[:, 65:]),  # columns
    ((99, 33), 2, (130, 1), lambda f: f[:, 2:35]),  # columns, unaligned
    ((64, 130), 0, (130, 1), lambda f: f[:64]),  # a prefix: the native kernel draws it
])
def test_region_is_that_part_of_the_full_draw(implementation, shape, offset, stride, block):
    noise = NoiseSource("cpu", implementation)
    full = noise.draw(1234, 5, (99, 130))
    assert torch.equal(noise.draw(1234, 5, shape, Region(offset, stride)), block(full))
    base = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    out = torch.empty(shape)
    noise.axpy(out, base, 1234, 5, 0.37, Region(offset, stride))
    whole = torch.empty(99, 130)
    base_full = torch.zeros(99, 130)
    block(base_full).copy_(base)
    noise.axpy(whole, base_full, 1234, 5, 0.37)
    assert torch.equal(out, block(whole))


SHAPES = {"embed": (99, 16), "q": (32, 16), "o": (16, 32), "norm": (16,)}


def tp2_pieces() -> list[tuple[int, list[tuple]]]:
    """Both ranks' pieces of a two-way tensor-parallel model, as vllm_layout.trace reports them: the embedding
    split by rows over a padded vocabulary of 128, q row-split into a fused parameter, o column-split, the norm
    replicated."""
    per_rank = []
    for r in range(2):
        rows = 64 if r == 0 else 35
        pieces = [Piece("embed", 0, "embed", "weight", (rows, 16), 0, (16, 1), r * 64 * 16, (16, 1)),
                  Piece("q", 1, "qkv", "weight", (16, 16), 0, (16, 1), r * 16 * 16, (16, 1)),
                  Piece("o", 2, "o", "weight", (16, 16), 0, (16, 1), r * 16, (32, 1)),
                  Piece("norm", 3, "norm", "weight", (16,), 0, (1,), 0, (1,))]
        per_rank.append((r, [tuple(vars(p).values()) for p in pieces]))
    return per_rank


def test_shard_masters_behave_as_the_whole_tensors():
    layout = EngineLayout(SHAPES, tp2_pieces())
    full = {n: torch.randn(s, generator=torch.Generator().manual_seed(i)) for i, (n, s) in enumerate(SHAPES.items())}
    whole = PerturbedParams([(i, n, full[n].clone()) for i, n in enumerate(SHAPES)])
    ranks = {r: PerturbedParams([(p.index, p.name, p.src(full[p.name]).clone()) for p in pieces],
                                regions=[Region(p.src_offset, p.src_stride) for p in pieces])
             for r, pieces in layout.pieces.items()}
    seeds, coefficients = np.array([3, 4, 5]), np.array([0.1, -0.2, 0.05])
    for p in [whole, *ranks.values()]:
        p.update(seeds, coefficients)
        p.perturb(9, 0.02)

    def gathered(kind):
        return layout.assemble([(r, list(enumerate(getattr(p, kind)))) for r, p in ranks.items()], list(SHAPES))
    for kind in ("masters", "working"):
        assert all(torch.equal(gathered(kind)[n], t) for n, t in zip(SHAPES, getattr(whole, kind))), kind
    owned = [m for r, p in ranks.items() for j, m in enumerate(p.masters) if j in layout.owned[r]]
    assert checksum(owned) == whole.checksum()
    assert layout.owned == {0: [0, 1, 2, 3], 1: [0, 1, 2]}  # the replicated norm counts once


def test_a_missing_shard_is_an_error():
    per_rank = tp2_pieces()
    per_rank[1][1].pop(2)
    with pytest.raises(LayoutError, match="pieces of o cover 256 of its 512 elements"):
        EngineLayout(SHAPES, per_rank)
