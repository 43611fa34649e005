"""Where each Hugging Face tensor lives inside a vLLM model (runs in the engine's worker): traced once from vLLM's
own weight loaders, run on meta tensors, so fused (qkv, gate/up), tensor-parallel, tied and padded layouts come out
of the loader that built them, not from name rules kept here."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode


class LayoutError(RuntimeError):
    """vLLM's loader does something to a tensor that is not a strided copy (so ES cannot edit it in place)."""


@dataclass(frozen=True)
class Piece:
    """One strided copy the loader made: elements of HF tensor `name` (index `index` among the model's parameters)
    at src_offset + sum k_d src_stride_d land at dst_offset + sum k_d dst_stride_d of parameter `attr` of module
    `module`, for every multi-index k of `size` (the same for both)."""

    name: str
    index: int
    module: str
    attr: str
    size: tuple[int, ...]
    dst_offset: int
    dst_stride: tuple[int, ...]
    src_offset: int
    src_stride: tuple[int, ...]

    @property
    def numel(self) -> int:
        return int(torch.Size(self.size).numel())

    def src(self, full: torch.Tensor) -> torch.Tensor:
        """This piece's elements of the full HF tensor, as a view."""
        return full.as_strided(self.size, self.src_stride, full.storage_offset() + self.src_offset)

    def dst(self, param: torch.Tensor) -> torch.Tensor:
        """This piece's place in the (model-format) parameter, as a view."""
        return param.as_strided(self.size, self.dst_stride, param.storage_offset() + self.dst_offset)


def _key(t: torch.Tensor) -> int:
    return t.untyped_storage()._cdata


class _CopyRecorder(TorchDispatchMode):
    """Records every aten copy_ into a twin parameter; tensors computed from an HF tensor other than by a view are
    marked, so a copy of one (a transformed weight) is an error instead of a silently wrong map."""

    def __init__(self, twins: dict[int, tuple[str, str, torch.Tensor]], sources: dict[int, str]):
        super().__init__()
        self.twins, self.sources, self.derived, self.copies = twins, sources, {}, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        if func is torch.ops.aten.copy_.default and _key(args[0]) in self.twins:
            dst, src = args[0], args[1]
            if _key(src) in self.derived:
                module, attr, _ = self.twins[_key(dst)]
                raise LayoutError(f"vLLM's loader transforms {self.derived[_key(src)]} before copying it into "
                                  f"{module}.{attr}: not an in-place strided layout")
            if _key(src) in self.sources:
                self.copies.append((dst, src))
            return out
        origin = next((self.sources.get(_key(a)) or self.derived.get(_key(a)) for a in tensors
                       if _key(a) in self.sources or _key(a) in self.derived), None)
        if origin is not None:
            inputs = {_key(a) for a in tensors}
            for o in (out if isinstance(out, (tuple, list)) else [out]):
                if isinstance(o, torch.Tensor) and _key(o) not in inputs:
                    self.derived[_key(o)] = origin
        return out


def _twin(live: torch.Tensor, recorded: torch.Tensor | None, module: torch.nn.Module) -> torch.Tensor:
    """A meta parameter in model format (as created, before the platform's post-load processing), with the
    attributes its weight loader reads; from vLLM's recorded reload metadata where it has one."""
    from vllm.model_executor.model_loader.reload.sanitize import restore_layer_refs

    like = recorded if recorded is not None else live
    twin = torch.empty_strided(like.size(), like.stride(), dtype=like.dtype, device="meta")
    twin.__class__ = like.__class__
    twin.__dict__ = dict(like.__dict__)
    return restore_layer_refs(twin, module)


def model_format(model: torch.nn.Module) -> dict[tuple[str, str], torch.Tensor]:
    """(module name, parameter name) -> meta twin of every parameter, in the layout the loader writes."""
    from vllm.model_executor.model_loader.reload.layerwise import LAYERWISE_INFO

    twins = {}
    for mname, module in model.named_modules():
        info = LAYERWISE_INFO.get(module)
        recorded = info.restore_metadata[0] if info is not None else {}
        for attr, live in module._parameters.items():
            if live is not None:
                twins[mname, attr] = _twin(live, recorded.get(attr), module)
    return twins


@torch.no_grad()
def trace(model: torch.nn.Module, tensors: list[tuple[str, tuple[int, ...]]], dtype: torch.dtype,
          twins: dict[tuple[str, str], torch.Tensor]) -> list[Piece]:
    """Run model.load_weights on meta stand-ins of the HF tensors (name, shape), in order, with the meta `twins`
    swapped in for the model's parameters, and return every strided copy it made, as Pieces."""
    modules = dict(model.named_modules())
    saved = {m: dict(modules[m]._parameters) for m, _ in twins}
    for (m, attr), twin in twins.items():
        modules[m]._parameters[attr] = twin
    sources = {n: torch.empty(shape, dtype=dtype, device="meta") for n, shape in tensors}
    recorder = _CopyRecorder({_key(t): (m, a, t) for (m, a), t in twins.items()},
                             {_key(t): n for n, t in sources.items()})
    try:
        with recorder:
            model.load_weights(iter(sources.items()))
    finally:
        for m, params in saved.items():
            modules[m]._parameters.update(params)
    index = {n: i for i, (n, _) in enumerate(tensors)}
    pieces = []
    for dst, src in recorder.copies:
        module, attr, twin = recorder.twins[_key(dst)]
        name = recorder.sources[_key(src)]
        if dst.shape != src.shape:
            raise LayoutError(f"vLLM's loader copies {name} {tuple(src.shape)} into {module}.{attr} region "
                              f"{tuple(dst.shape)}: a broadcast, not a strided layout")
        pieces.append(Piece(name, index[name], module, attr, tuple(dst.shape), dst.storage_offset()
                            - twin.storage_offset(), tuple(dst.stride()), src.storage_offset(), tuple(src.stride())))
    return pieces
