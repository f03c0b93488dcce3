"""PEFT methods: one function per method, registered in ``PEFT_METHODS``.

Each ``apply(model, cfg, generator)`` receives a :class:`fedpia.models.model.FedModel` whose
backbone is already fully frozen, inserts its modules and marks exactly its trainable
parameters (``requires_grad=True``). The trainable state is then
``{name: param for name, param in model.named_parameters() if param.requires_grad}``.

| method | trainable | source |
|---|---|---|
| houlsby / parallel | ``*.adapter.down|up.*`` | in-house (adapters.py) |
| compacter | ``*.adapter.down|up.phm_w|bias`` + ``phm_rules.down|up.phm_rule`` | in-house |
| lora | ``*.lora_A|lora_B.default.weight`` (query/value Linears) | peft ``inject_adapter_in_model`` |
| layernorm | ``*.ln_tuning_layers.default.weight|bias`` (a copy of every LayerNorm) | peft ``LNTuningConfig`` |
| bias | every ``*.bias`` of the backbone | in-house (BitFit) |
| classifier | nothing (only the client head, outside the model) | — |
| full | every backbone parameter | — |
| prompt | ``prompt.embeddings`` (P x d_text), PromptFL/CoOp context tokens | in-house |
"""

from __future__ import annotations

import torch
from torch import nn

from .adapters import BottleneckAdapter, CompacterAdapter, PHMRules, insert_adapters


def adapter_width(cfg, d: int) -> int:
    """m = cfg.adapter_width, else max(1, d // reduction_factor) (compacter: multiple of n)."""
    if cfg.adapter_width is not None:
        return cfg.adapter_width
    m = max(1, d // cfg.reduction_factor)
    if cfg.peft == "compacter":
        m = max(cfg.phm_dim, (m // cfg.phm_dim) * cfg.phm_dim)
    return m


def _mark(model, predicate) -> None:
    for name, p in model.backbone.named_parameters():
        if predicate(name):
            p.requires_grad_(True)


def _bottleneck(placement: str):
    def apply(model, cfg, generator: torch.Generator) -> None:
        insert_adapters(
            model.backbone,
            placement=placement,
            make=lambda d: BottleneckAdapter(d, adapter_width(cfg, d), generator=generator),
        )
        _mark(model, lambda n: ".adapter." in n)

    return apply


def apply_compacter(model, cfg, generator: torch.Generator) -> None:
    model.phm_rules = PHMRules(cfg.phm_dim, generator=generator)
    insert_adapters(
        model.backbone,
        placement="houlsby",
        make=lambda d: CompacterAdapter(
            d, adapter_width(cfg, d), cfg.phm_dim, rules=model.phm_rules, generator=generator
        ),
    )
    _mark(model, lambda n: ".adapter." in n)


def apply_lora(model, cfg, generator: torch.Generator) -> None:
    """peft LoRA on each layer family's ``lora`` Linears: W x + (α/r) B A x, B = 0 at init."""
    from peft import LoraConfig, inject_adapter_in_model

    targets = [f"{ln}.{t}" for ln, _, fam in model.backbone.layers() for t in fam.lora]
    conf = LoraConfig(
        r=cfg.lora_rank,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
    )
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):  # peft draws lora_A from the global RNG
        torch.manual_seed(seed)
        inject_adapter_in_model(conf, model.backbone.hf)
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    _mark(model, lambda n: ".lora_A." in n or ".lora_B." in n)


def apply_layernorm(model, cfg, generator: torch.Generator) -> None:
    """peft LN tuning: every LayerNorm gets a trainable copy ``<ln>.ln_tuning_layers.default``.

    (peft warns "Unsupported layer type" for plain nn.LayerNorm on the injection path; the
    layer works: tests check that only these copies train and that outputs change.)
    """
    import warnings

    from peft import LNTuningConfig, inject_adapter_in_model

    names = [n for n, m in model.backbone.hf.named_modules() if isinstance(m, nn.LayerNorm)]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Unsupported layer type")
        inject_adapter_in_model(LNTuningConfig(target_modules=names), model.backbone.hf)
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    _mark(model, lambda n: ".ln_tuning_layers." in n)


def apply_bias(model, cfg, generator: torch.Generator) -> None:
    _mark(model, lambda n: n.endswith(".bias"))


def apply_classifier(model, cfg, generator: torch.Generator) -> None:
    """Nothing in the model is trainable: only the (client-local) head is trained."""


def apply_full(model, cfg, generator: torch.Generator) -> None:
    _mark(model, lambda n: True)


class PromptEmbeddings(nn.Module):
    """P learnable token embeddings (PromptFL, Guo et al. 2023, arXiv:2208.11625; CoOp).

    FedModel inserts P placeholder ids after the first token ([CLS]); a forward hook on the
    word-embedding table replaces their embeddings by ``embeddings`` [P, d_text] (before position
    embeddings are added), so the backbone sees [CLS] p_1 .. p_P text... .
    """

    def __init__(self, n: int, dim: int, *, init: torch.Tensor) -> None:
        super().__init__()
        self.embeddings = nn.Parameter(init.reshape(n, dim).clone())

    def hook(self, module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
        n = self.embeddings.shape[0]
        prompt = self.embeddings.to(output.dtype).unsqueeze(0).expand(output.shape[0], -1, -1)
        return torch.cat([output[:, :1], prompt, output[:, 1 + n :]], dim=1)


def apply_prompt(model, cfg, generator: torch.Generator) -> None:
    emb = model.backbone.word_embeddings()
    rows = torch.randint(1000, emb.num_embeddings, (cfg.n_prompts,), generator=generator)
    model.prompt = PromptEmbeddings(cfg.n_prompts, emb.embedding_dim, init=emb.weight[rows])
    emb.register_forward_hook(model.prompt.hook)


PEFT_METHODS = {
    "houlsby": _bottleneck("houlsby"),
    "parallel": _bottleneck("parallel"),
    "compacter": apply_compacter,
    "lora": apply_lora,
    "layernorm": apply_layernorm,
    "bias": apply_bias,
    "classifier": apply_classifier,
    "full": apply_full,
    "prompt": apply_prompt,
}
ALIGNABLE = ("houlsby", "parallel", "compacter", "lora")
BOTTLENECK = ("houlsby", "parallel", "compacter")
