"""The vLLM worker extension (LLM(worker_extension_cls=...)): ES's fp32 masters beside the engine's weights, on its
device, and perturb, restore and the update done there, in place on the engine's parameters. The driver calls the
es_* methods through LLM.collective_rpc with seeds and scalars; tensors cross only for checkpoints."""
from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path

import torch

from ..core.noise import Region
from ..core.params import PerturbedParams, checksum
from . import vllm_layout, vllm_platform


def _model_files(path: str, names: set[str]) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors of these names (the model-format copies a packed layer no longer holds)."""
    from safetensors import safe_open

    found = {}
    for f in sorted(Path(path).glob("*.safetensors")):
        with safe_open(str(f), "pt") as h:
            found.update({n: h.get_tensor(n) for n in h.keys() if n in names})
    return found


class EngineState:
    """One worker's side of ES: where each HF tensor lives (vllm_layout.Piece), the model-format tensors ES writes
    (the live parameters, or copies for those the platform repacked), the selected masters and the platform step."""

    OPS = ("perturb", "restore", "update", "load", "masters", "checksum", "seconds", "noise_seconds")

    def __init__(self, model: torch.nn.Module, pieces: list[vllm_layout.Piece], twins: dict, path: str, cpu: bool):
        modules = dict(model.named_modules())
        self.model, self.pieces, self.cpu = model, pieces, cpu
        self.working, self.staged = {}, {}
        for key in dict.fromkeys((p.module, p.attr) for p in pieces):
            live, twin = modules[key[0]]._parameters[key[1]], twins[key]
            if (live.shape, live.stride(), live.dtype) == (twin.shape, twin.stride(), twin.dtype):
                self.working[key] = live.data
            else:  # emptied or converted by the post-load processing: ES writes a model-format copy
                self.working[key] = self.staged[key] = torch.empty_strided(
                    twin.size(), twin.stride(), dtype=twin.dtype, device=live.device).zero_()
        staged = [p for p in pieces if (p.module, p.attr) in self.staged]
        files = _model_files(path, {p.name for p in staged})
        for p in staged:
            self._place(p).copy_(p.src(files[p.name]))
        self.params, self.platform, self.chosen, self.owned = None, None, [], set()
        self.read, self.stale = [], False  # per selected piece: does the engine read what restore writes there
        self.selection, self.spent = 0, {"es": 0.0, "platform": 0.0}

    def _place(self, p: vllm_layout.Piece) -> torch.Tensor:
        return p.dst(self.working[p.module, p.attr])

    def select(self, indices: list[int], master_device: str, owned: list[int]) -> tuple[int, str]:
        """Masters (fp32) of the pieces of these HF tensors, from the engine's current weights; `owned`: the pieces
        this rank counts in the checksum (a tensor replicated over ranks counts once). Returns the selection's
        number and the noise in use."""
        self._refresh()
        wanted = set(indices)
        self.chosen = [j for j, p in enumerate(self.pieces) if p.index in wanted]
        pieces = [self.pieces[j] for j in self.chosen]
        self.params = PerturbedParams([(p.index, f"{p.name}#{j}", self._place(p)) for j, p in zip(self.chosen, pieces)],
                                      master_device, regions=[Region(p.src_offset, p.src_stride) for p in pieces])
        self.owned = set(owned)
        edited = {(p.module, p.attr) for p in pieces}
        self.platform = vllm_platform.for_model(self.model, {k: t for k, t in self.staged.items() if k in edited},
                                                edited, self.cpu)
        self.read = [(p.module, p.attr) not in self.staged or p.module not in self.platform.swapped for p in pieces]
        self.platform.rebased()
        self.selection += 1
        return self.selection, self.params.noise.implementation

    def _sync(self) -> None:
        """Wait for the device's queued work (our writes are done before the engine, on its own streams, reads)."""
        if self.params.working[0].device.type == "cuda":
            torch.cuda.synchronize()

    @contextlib.contextmanager
    def _timed(self, part: str):
        """Adds the block's seconds to `part`, device work included."""
        start = time.perf_counter()
        yield
        self._sync()
        self.spent[part] += time.perf_counter() - start

    def perturb(self, seed: int, scale: float) -> None:
        with self._timed("es"):
            self.params.perturb(seed, scale)
            self.stale = False
        with self._timed("platform"):
            self.platform.changed()

    def restore(self) -> None:
        """Writes the masters where the engine reads them; a packed layer gets its base packing back instead
        (Repack.restored), so its model-format copy is left perturbed until it is next read (_refresh)."""
        with self._timed("es"):
            for w, m, read in zip(self.params.working, self.params.masters, self.read):
                if read:
                    w.copy_(m)
            self.stale = not all(self.read)
        with self._timed("platform"):
            self.platform.restored()

    def _refresh(self) -> None:
        """The model-format copies a restore skipped, rewritten from the masters."""
        if self.stale:
            for w, m, read in zip(self.params.working, self.params.masters, self.read):
                if not read:
                    w.copy_(m)
            self.stale = False

    def update(self, seeds: list[int], coefficients: list[float]) -> None:
        with self._timed("es"):
            self.params.update(seeds, coefficients)
            self.stale = False
        with self._timed("platform"):
            self.platform.rebased()

    def load(self, tensors: dict[str, torch.Tensor]) -> None:
        """Masters (and the engine's weights) from HF-named full tensors."""
        with self._timed("es"):
            self.params.load_state_dict({n: self.pieces[j].src(tensors[self.pieces[j].name])
                                         for j, n in zip(self.chosen, self.params.names)})
            self.stale = False
        with self._timed("platform"):
            self.platform.rebased()

    def masters(self) -> list[tuple[int, torch.Tensor]]:
        return [(j, m.detach().to("cpu", copy=True)) for j, m in zip(self.chosen, self.params.masters)]

    def weights(self) -> list[tuple[int, torch.Tensor]]:
        """Every piece of the engine's weights as ES wrote them (model dtype), for a checkpoint."""
        self._refresh()
        return [(j, self._place(p).to("cpu", copy=True)) for j, p in enumerate(self.pieces)]

    def checksum(self) -> int:
        return checksum([m for j, m in zip(self.chosen, self.params.masters) if j in self.owned])

    def seconds(self) -> dict[str, float]:
        """Seconds spent so far by part: "es" (noise and writes) and "platform" (the repacking)."""
        return dict(self.spent)

    def noise_seconds(self, seeds: list[int]) -> float:
        """Seconds to draw every selected piece's noise for these members (the noise part of a perturb)."""
        p = self.params
        start = time.perf_counter()
        for seed in seeds:
            for i, m, r in zip(p.indices, p.masters, p.regions):
                p.noise.draw(seed, i, m.shape, r)
        self._sync()
        return time.perf_counter() - start


class ESWorker:
    """Mixed into vLLM's worker class; each method is one collective_rpc call (es_ names: no clash with vLLM's)."""

    def es_setup(self, tensors: list[tuple[str, tuple[int, ...]]]) -> tuple[int, list[tuple]]:
        """Trace where each HF tensor (name, shape, in model order) lives: (this rank, its pieces as tuples)."""
        from vllm.platforms import current_platform

        model = self.model_runner.get_model()
        twins = vllm_layout.model_format(model)
        pieces = vllm_layout.trace(model, tensors, self.vllm_config.model_config.dtype, twins)
        self._es = EngineState(model, pieces, twins, self.vllm_config.model_config.model, current_platform.is_cpu())
        return self.rank, [dataclasses.astuple(p) for p in pieces]

    def es_select(self, indices: list[int], master_device: str, owned: dict[int, list[int]]) -> tuple[int, str]:
        """A new selection (EngineState.select); returns its number, which every es_call of it names."""
        return self._es.select(indices, master_device, owned[self.rank])

    def es_weights(self) -> tuple[int, list[tuple[int, torch.Tensor]]]:
        return self.rank, self._es.weights()

    def es_reload_seconds(self, shapes: dict[str, tuple[int, ...]]) -> float:
        """Seconds of one push of the whole model through vLLM's reload_weights (load_weights onto the fused layers,
        the platform's post-load processing, a tied head's too): what every perturb and restore cost before ES
        worked in the workers, as a reference. From the weights as they stand, so the engine keeps its values; the
        reload may replace parameters EngineState writes, so it is the last thing a job does (tensor parallel
        size 1 only: only then does a worker hold whole tensors)."""
        from vllm.model_executor.layers.vocab_parallel_embedding import ParallelLMHead, VocabParallelEmbedding

        full = {}
        for p, (_, t) in zip(self._es.pieces, self._es.weights()):
            p.src(full.setdefault(p.name, torch.empty(shapes[p.name], dtype=t.dtype))).copy_(t)
        start = time.perf_counter()
        self.reload_weights(weights_iterator=iter(full.items()))
        modules = list(self.model_runner.get_model().modules())
        embeddings = {id(m.weight) for m in modules if type(m) is VocabParallelEmbedding}
        for m in modules:  # a tied head loads nothing itself: its packed copy is made again from the embedding
            if isinstance(m, ParallelLMHead) and id(m.weight) in embeddings:
                m.quant_method.process_weights_after_loading(m)
        self._es._sync()
        return time.perf_counter() - start

    def es_call(self, selection: int, op: str, *args):
        """EngineState's operation `op` on the selection numbered `selection`: an error if a newer selection
        replaced it, so a stale EngineParams cannot perturb another selection's tensors. Masters come rank-tagged."""
        if op not in EngineState.OPS:
            raise ValueError(f"es_call: no operation {op!r}")
        if selection != self._es.selection:
            raise RuntimeError(f"engine parameters of selection {selection} were replaced by selection "
                               f"{self._es.selection} (a later engine_params call)")
        result = getattr(self._es, op)(*args)
        return (self.rank, result) if op == "masters" else result
