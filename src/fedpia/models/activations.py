"""Token-pooled activations of adapter hidden units (FedPIA's client-side alignment support).

For every unit group g of ``model.trainable_state()`` (``fedpia.align.unit_groups``), the module
producing the units is found from the group's ``role="in"`` weight key (``<prefix>.down.weight``
-> ``<prefix>.down``, ``<prefix>.lora_A.default.weight`` -> ``<prefix>.lora_A.default``,
``<prefix>.down.phm_w`` -> ``<prefix>.down``). Its output h (before the nonlinearity), shape
[B, T, repeat * w], is mean-pooled over the sample's real tokens (padding excluded, via the
model's ``token_mask``; a model without one pools over all T tokens):

    a_g = Σ_t m[:, t] h[:, t, :] / Σ_t m[:, t]      -> [B, repeat * w]

so a sample's activations do not depend on how far its batch is padded.

and reshaped to ``Tensor[n_samples, width]`` as align's activation cost expects:
- repeat = 1 (bottleneck, LoRA): [B, w].
- repeat = n (Compacter, w = m/n): [B, n, w] -> [B * n, w]; the n Kronecker blocks count as
  extra samples of the same unit, because a unit permutation acts identically in every block.
So unit i of group g is described by column i across samples, and permuting the units permutes
the columns of a_g.
"""

from __future__ import annotations

import torch


def producer_modules(state: dict[str, torch.Tensor]) -> dict[str, tuple[str, int]]:
    """{group name: (module name producing the units, group width w)} for a trainable state."""
    from fedpia.align import unit_groups

    out = {}
    for group in unit_groups(state):
        ins = [m for m in group.members if m.role == "in" and not m.key.endswith(".bias")]
        if len(ins) != 1:
            raise ValueError(f"unit group {group.name!r}: expected one producing weight, got {ins}")
        out[group.name] = (ins[0].key.rsplit(".", 1)[0], int(group.width))
    return out


def adapter_activations(model, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """{group name: Tensor[n_samples, width]} token-pooled unit activations on ``batch``
    (float32, CPU: alignment is device-agnostic).

    Runs one forward pass of ``model`` (its current mode; call ``model.eval()`` for
    deterministic values) on the model's device and autocast precision, with forward hooks on
    the unit-producing modules.
    """
    from fedpia.device import autocast, model_device, model_precision

    producers = producer_modules(model.trainable_state())
    dev = model_device(model)
    batch = {k: v.to(dev) for k, v in batch.items()}
    acts: dict[str, torch.Tensor] = {}
    handles = []

    masker = getattr(model, "token_mask", None)

    def make_hook(gname: str, mname: str, width: int):
        def hook(module, inputs, output):
            mask = masker(mname, batch, output.shape[1]) if masker and output.dim() == 3 else None
            acts[gname] = _unit_rows(_pool(output.float(), mask).cpu(), width)  # fp32 pooling

        return hook

    try:
        for gname, (mname, width) in producers.items():
            handles.append(model.get_submodule(mname).register_forward_hook(make_hook(gname, mname, width)))
        with autocast(dev, model_precision(model)):
            model(batch)
    finally:
        for h in handles:
            h.remove()
    missing = sorted(set(producers) - set(acts))
    if missing:
        raise ValueError(f"adapter_activations: groups {missing[:5]} produced no activation")
    return acts


# ---------------------------------------------------------------- recorded adapter inputs
# The token-pooled activation is an affine map of the token-pooled *input* of the producing
# module (pooling is a masked mean over tokens, the producer is a token-wise affine map: a
# Linear, LoRA's A, a PHM layer), so
#
#     a_g(S) = producer_S(x̄_g),   x̄_g = Σ_t m[:, t] x[:, t, :] / Σ_t m[:, t]
#
# for any adapter state S given the pooled inputs x̄_g the producer saw. Recording x̄_g once
# (during local training, or in one forward) gives the activations of both the local and the
# global adapter on the same adapter inputs without running the model again.


def _unit_rows(pooled: torch.Tensor, width: int) -> torch.Tensor:
    """[B, repeat * w] -> [B * repeat, w]: Compacter's n Kronecker blocks become extra samples."""
    b, repeat = pooled.shape[0], pooled.shape[-1] // width
    return pooled.reshape(b, repeat, width).reshape(b * repeat, width)


def _pool(t: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Masked mean over tokens of ``t`` [B, T, D] -> [B, D] (a 2-D ``t`` is returned as is)."""
    if t.dim() != 3:
        return t
    if mask is None:
        return t.mean(dim=1)
    m = mask.to(t.dtype).unsqueeze(-1)
    return (t * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


class InputRecorder:
    """Records the token-pooled inputs of every unit-producing module while ``model`` runs.

    The hooks sit on the producing modules of the model *as loaded when entering*: load the
    adapter to record first (``load_trainable_state`` with other widths replaces the modules).
    Use as a context manager around forward passes (e.g. local training): a forward pre-hook on
    ``model`` sees each batch (for the padding mask), forward hooks on the producers pool their
    inputs (detached, float32, kept on the model's device). :meth:`inputs` returns the last
    ``keep`` samples' pooled inputs per unit group on the CPU, ``{group: Tensor[n, d_in]}``,
    n = min(keep, samples seen).
    """

    def __init__(self, model, keep: int) -> None:
        if keep < 1:
            raise ValueError(f"InputRecorder keep must be >= 1, got {keep}")
        self.model = model
        self.keep = int(keep)
        self._producers = producer_modules(model.trainable_state())
        self._chunks: dict[str, list[torch.Tensor]] = {g: [] for g in self._producers}
        self._counts: dict[str, int] = dict.fromkeys(self._producers, 0)
        self._batch: dict[str, torch.Tensor] | None = None
        self._handles: list = []

    def __enter__(self) -> InputRecorder:
        masker = getattr(self.model, "token_mask", None)

        def see_batch(module, args):
            self._batch = args[0] if args and isinstance(args[0], dict) else None

        def make_hook(gname: str, mname: str):
            def hook(module, inputs, output):
                x = inputs[0].detach()
                mask = None
                if x.dim() == 3 and masker is not None and self._batch is not None:
                    mask = masker(mname, self._batch, x.shape[1])
                with torch.no_grad():  # stays on the model's device until inputs() (no sync)
                    pooled = _pool(x.float(), mask)  # pool in fp32 (bf16/fp16 autocast)
                chunks = self._chunks[gname]
                chunks.append(pooled)
                self._counts[gname] += pooled.shape[0]
                while chunks and self._counts[gname] - chunks[0].shape[0] >= self.keep:
                    self._counts[gname] -= chunks.pop(0).shape[0]

            return hook

        try:
            self._handles.append(self.model.register_forward_pre_hook(see_batch))
            for gname, (mname, _) in self._producers.items():
                sub = self.model.get_submodule(mname)
                self._handles.append(sub.register_forward_hook(make_hook(gname, mname)))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._batch = None

    def inputs(self) -> dict[str, torch.Tensor]:
        """``{group: Tensor[n, d_in]}``: the pooled inputs of the last n = min(keep, seen) samples
        (empty when nothing ran)."""
        out = {}
        for g, chunks in self._chunks.items():
            if chunks:
                out[g] = torch.cat(chunks)[-self.keep:].cpu().clone()
        return out


def adapter_inputs(model, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``{group: Tensor[n_samples, d_in]}`` token-pooled producer inputs on ``batch`` from one
    forward pass of ``model`` as it is loaded (eval mode, no gradients, its device/precision)."""
    from fedpia.device import autocast, model_device, model_precision

    dev = model_device(model)
    batch = {k: v.to(dev) for k, v in batch.items()}
    model.eval()
    with InputRecorder(model, keep=max(1, _batch_size(batch))) as rec, torch.no_grad():
        with autocast(dev, model_precision(model)):
            model(batch)
    return rec.inputs()


def _batch_size(batch: dict[str, torch.Tensor]) -> int:
    return max((int(v.shape[0]) for v in batch.values() if v.dim() > 0), default=1)


def activations_from_inputs(
    model, inputs: dict[str, torch.Tensor], adapter: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """``{group: Tensor[n_samples, width]}`` activations of ``adapter``'s units on recorded pooled
    inputs (:class:`InputRecorder`, :func:`adapter_inputs`), laid out as
    :func:`adapter_activations`: equal to it when ``inputs`` were recorded with the same adapter
    on the same batch (the producers are token-wise affine maps). Loads ``adapter`` into
    ``model``; runs only the producing modules (float32, on the model's device)."""
    from fedpia.device import model_device

    producers = producer_modules(adapter)
    missing = sorted(set(producers) - set(inputs))
    if missing:
        raise ValueError(f"activations_from_inputs: no recorded inputs for groups {missing[:5]}")
    dev = model_device(model)
    model.load_trainable_state(adapter)
    out = {}
    with torch.no_grad():
        for gname, (mname, width) in producers.items():
            h = model.get_submodule(mname)(inputs[gname].to(dev, torch.float32))
            out[gname] = _unit_rows(h.float().cpu(), width)
    return out
