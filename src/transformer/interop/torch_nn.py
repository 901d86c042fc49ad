"""``torch.nn.Transformer`` and ours: the same encoder and decoder stacks, weight for weight.

``nn.Transformer`` holds only the two stacks (no embeddings, positions or output projection), so those are
what maps, by a table from our parameter names to theirs (``weight_map``); every tensor is the same matrix,
in the same layout (their ``in_proj`` is our fused ``w_qkv``). Build one of our shape with
``torch_transformer(cfg)``, copy weights with ``load_from_torch`` or ``to_torch``.

Post-norm: ``nn.Transformer`` puts one more LayerNorm after each stack (pytorch #24930, #50086), which the
paper's post-norm model does not have; ``torch_transformer`` builds theirs without it. Pre-norm: the extra
norm is right (the last residual sum is unnormalised) and is our ``final_norm``.

Masks: theirs are True = blocked, ours True = may attend (``transformer.masks``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Architecture
from ..model import Transformer

# Within one layer: our name -> theirs.
_ATTENTION = {"w_qkv.weight": "in_proj_weight", "w_qkv.bias": "in_proj_bias", "w_o.weight": "out_proj.weight",
              "w_o.bias": "out_proj.bias"}
_FEED_FORWARD = {"feed_forward.w_1.weight": "linear1.weight", "feed_forward.w_1.bias": "linear1.bias",
                 "feed_forward.w_2.weight": "linear2.weight", "feed_forward.w_2.bias": "linear2.bias"}
ENCODER_LAYER = {
    **{f"self_attn.{ours}": f"self_attn.{theirs}" for ours, theirs in _ATTENTION.items()},
    **_FEED_FORWARD,
    "attn_block.norm.weight": "norm1.weight", "attn_block.norm.bias": "norm1.bias",
    "ff_block.norm.weight": "norm2.weight", "ff_block.norm.bias": "norm2.bias",
}
DECODER_LAYER = {
    **{f"self_attn.{ours}": f"self_attn.{theirs}" for ours, theirs in _ATTENTION.items()},
    **{f"cross_attn.{ours}": f"multihead_attn.{theirs}" for ours, theirs in _ATTENTION.items()},
    **_FEED_FORWARD,
    "self_block.norm.weight": "norm1.weight", "self_block.norm.bias": "norm1.bias",
    "cross_block.norm.weight": "norm2.weight", "cross_block.norm.bias": "norm2.bias",
    "ff_block.norm.weight": "norm3.weight", "ff_block.norm.bias": "norm3.bias",
}
FINAL_NORMS = {f"{stack}.final_norm.{p}": f"{stack}.norm.{p}" for stack in ("encoder", "decoder")
               for p in ("weight", "bias")}
_ACTIVATIONS = {"relu": "relu", "gelu": "gelu", "silu": F.silu, "swish": F.silu}


def weight_map(cfg: Architecture) -> dict[str, str]:
    """Our state-dict name -> ``nn.Transformer``'s, for every weight of the stacks of ``cfg``'s shape (ValueError
    for an ablation, which ``nn.Transformer`` has no switch for)."""
    cfg.check_exportable("torch.nn.Transformer")
    names = {}
    for stack, n_layers, table in (("encoder", cfg.n_encoder_layers, ENCODER_LAYER),
                                   ("decoder", cfg.n_decoder_layers, DECODER_LAYER)):
        for i in range(n_layers):
            prefix = f"{stack}.layers.{i}."
            names.update({prefix + ours: prefix + theirs for ours, theirs in table.items()})
    if cfg.norm_first:
        names.update(FINAL_NORMS)
    return names


def torch_transformer(cfg: Architecture) -> nn.Transformer:
    """An ``nn.Transformer`` of ``cfg``'s shape, batch first, in training mode as built.

    One difference in dropout only: ``nn.Transformer`` has one rate for the sublayers and inside the FFN
    (``cfg.dropout``); the attention weights get ``cfg.attention_dropout`` as ours.
    """
    kw = dict(d_model=cfg.d_model, nhead=cfg.n_heads, dim_feedforward=cfg.d_ff, dropout=cfg.dropout,
              activation=_ACTIVATIONS[cfg.activation], layer_norm_eps=cfg.layer_norm_eps, batch_first=True,
              norm_first=cfg.norm_first)
    final_norm = (lambda: nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)) if cfg.norm_first else (lambda: None)
    encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(**kw), cfg.n_encoder_layers, norm=final_norm(),
                                    enable_nested_tensor=False)
    decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(**kw), cfg.n_decoder_layers, norm=final_norm())
    theirs = nn.Transformer(custom_encoder=encoder, custom_decoder=decoder, **kw)
    for module in theirs.modules():
        if isinstance(module, nn.MultiheadAttention):
            module.dropout = cfg.attention_dropout
    return theirs


@torch.no_grad()
def load_from_torch(ours: Transformer, theirs: nn.Transformer, strict: bool = True) -> None:
    """Copy the stacks' weights of ``theirs`` into ``ours`` (embeddings and output projection untouched).

    Raises:
        ValueError: shapes differ, or (``strict``) ``theirs`` has weights with no place in ours (e.g. the
            final LayerNorms of a default post-norm ``nn.Transformer``), named.
    """
    mapping, their_state = weight_map(ours.cfg), theirs.state_dict()
    missing = sorted(set(mapping.values()) - set(their_state))
    extra = sorted(set(their_state) - set(mapping.values()))
    if missing or (strict and extra):
        raise ValueError(f"nn.Transformer weights do not fit this model: missing {missing[:4]}, extra {extra[:4]}")
    our_state = ours.state_dict()
    for mine, name in mapping.items():
        if our_state[mine].shape != their_state[name].shape:
            raise ValueError(f"{name}: shape {tuple(their_state[name].shape)}, ours ({mine}) "
                             f"{tuple(our_state[mine].shape)}")
        our_state[mine].copy_(their_state[name])


@torch.no_grad()
def to_torch(ours: Transformer) -> nn.Transformer:
    """An ``nn.Transformer`` holding the stacks' weights of ``ours``, in ``ours``' train/eval mode."""
    theirs = torch_transformer(ours.cfg)
    our_state, their_state = ours.state_dict(), theirs.state_dict()
    for mine, name in weight_map(ours.cfg).items():
        their_state[name].copy_(our_state[mine])
    return theirs.train(ours.training)
