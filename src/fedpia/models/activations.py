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
            pooled = output  # [B, repeat * w]
            if output.dim() == 3:
                mask = masker(mname, batch, output.shape[1]) if masker else None
                if mask is None:
                    pooled = output.mean(dim=1)
                else:
                    m = mask.to(output.dtype).unsqueeze(-1)
                    pooled = (output * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)
            b, repeat = pooled.shape[0], pooled.shape[-1] // width
            pooled = pooled.float().cpu()
            acts[gname] = pooled.reshape(b, repeat, width).reshape(b * repeat, width)

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
