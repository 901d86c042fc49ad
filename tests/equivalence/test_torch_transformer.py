"""Equivalence with torch.nn.Transformer, an implementation we did not write, weights copied across.

Both stacks get the same embedded inputs (ours: token embedding x sqrt(D) + PE) and the same masks in
each library's convention; the decoder outputs must agree to 1e-5 in float32.

Post-norm: nn.Transformer puts one more LayerNorm after each stack (pytorch #24930, #50086), which the
paper's post-norm model does not have, so we build theirs with custom_encoder/custom_decoder without
that norm. Pre-norm: the extra final norm is right (the last residual sum is unnormalised) and
corresponds to our encoder.final_norm / decoder.final_norm.

Shapes: B batch, S source length, T target length, D d_model.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from transformer import Transformer, TransformerConfig
from transformer.attention import MultiHeadAttention
from transformer.feed_forward import PositionwiseFeedForward

PAD, BOS = 0, 1
D_MODEL, HEADS, D_FF, LAYERS, VOCAB = 32, 4, 64, 2, 17


def build_theirs(norm_first: bool, activation: str) -> nn.Transformer:
    kw = dict(d_model=D_MODEL, nhead=HEADS, dim_feedforward=D_FF, dropout=0.0, activation=activation,
              batch_first=True, norm_first=norm_first)
    if norm_first:
        return nn.Transformer(num_encoder_layers=LAYERS, num_decoder_layers=LAYERS, **kw)
    encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(**kw), LAYERS, norm=None, enable_nested_tensor=False)
    decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(**kw), LAYERS, norm=None)
    return nn.Transformer(custom_encoder=encoder, custom_decoder=decoder, **kw)


@torch.no_grad()
def randomise(module: nn.Module) -> None:
    """Non-trivial biases and LayerNorm gains, so that a bias or norm copied wrongly shows."""
    for name, p in module.named_parameters():
        if p.dim() == 1:
            p.copy_(torch.randn_like(p) * 0.2 + (1.0 if "norm" in name and name.endswith("weight") else 0.0))


@torch.no_grad()
def copy_attention(ours: MultiHeadAttention, theirs: nn.MultiheadAttention) -> None:
    ours.w_qkv.weight.copy_(theirs.in_proj_weight)
    ours.w_qkv.bias.copy_(theirs.in_proj_bias)
    ours.w_o.weight.copy_(theirs.out_proj.weight)
    ours.w_o.bias.copy_(theirs.out_proj.bias)


@torch.no_grad()
def copy_linear_pair(ours: PositionwiseFeedForward, linear1: nn.Linear, linear2: nn.Linear) -> None:
    ours.w_1.load_state_dict(linear1.state_dict())
    ours.w_2.load_state_dict(linear2.state_dict())


@torch.no_grad()
def copy_weights(ours: Transformer, theirs: nn.Transformer) -> None:
    for mine, layer in zip(ours.encoder.layers, theirs.encoder.layers, strict=True):
        copy_attention(mine.self_attn, layer.self_attn)
        copy_linear_pair(mine.feed_forward, layer.linear1, layer.linear2)
        mine.attn_block.norm.load_state_dict(layer.norm1.state_dict())
        mine.ff_block.norm.load_state_dict(layer.norm2.state_dict())
    for mine, layer in zip(ours.decoder.layers, theirs.decoder.layers, strict=True):
        copy_attention(mine.self_attn, layer.self_attn)
        copy_attention(mine.cross_attn, layer.multihead_attn)
        copy_linear_pair(mine.feed_forward, layer.linear1, layer.linear2)
        mine.self_block.norm.load_state_dict(layer.norm1.state_dict())
        mine.cross_block.norm.load_state_dict(layer.norm2.state_dict())
        mine.ff_block.norm.load_state_dict(layer.norm3.state_dict())
    if ours.cfg.norm_first:
        ours.encoder.final_norm.load_state_dict(theirs.encoder.norm.state_dict())
        ours.decoder.final_norm.load_state_dict(theirs.decoder.norm.state_dict())


def padded_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Sources of lengths 7, 4, 1 and targets (BOS first) of lengths 5, 6, 2, right-padded."""
    src = torch.randint(3, VOCAB, (3, 7))
    src[1, 4:] = PAD
    src[2, 1:] = PAD
    tgt_in = torch.randint(3, VOCAB, (3, 6))
    tgt_in[:, 0] = BOS
    tgt_in[0, 5:] = PAD
    tgt_in[2, 2:] = PAD
    return src, tgt_in


@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("norm_first", [False, True], ids=["post_norm", "pre_norm"])
def test_matches_nn_transformer(norm_first: bool, activation: str) -> None:
    theirs = build_theirs(norm_first, activation)
    assert (theirs.encoder.norm is None) == (theirs.decoder.norm is None) == (not norm_first)
    randomise(theirs)
    theirs.eval()
    cfg = TransformerConfig(src_vocab_size=VOCAB, tgt_vocab_size=VOCAB, d_model=D_MODEL, n_heads=HEADS, d_ff=D_FF,
                            n_encoder_layers=LAYERS, n_decoder_layers=LAYERS, dropout=0.0, norm_first=norm_first,
                            activation=activation)
    ours = Transformer(cfg).eval()
    copy_weights(ours, theirs)
    src, tgt_in = padded_batch()
    t = tgt_in.size(1)
    with torch.no_grad():
        memory = ours.encode(src)
        hidden = ours.decode(tgt_in, memory, ours.source_mask(src))
        src_x = ours.src_pos(ours.src_embed(src))  # (B, S, D): the same embedded inputs for both
        tgt_x = ours.tgt_pos(ours.tgt_embed(tgt_in))  # (B, T, D)
        # nn.Transformer's masks: True = blocked (the opposite of ours).
        their_memory = theirs.encoder(src_x, src_key_padding_mask=src == PAD)
        their_hidden = theirs(
            src_x,
            tgt_x,
            tgt_mask=torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1),
            src_key_padding_mask=src == PAD,
            tgt_key_padding_mask=tgt_in == PAD,
            memory_key_padding_mask=src == PAD,
        )
    # Encoder outputs only where the source is real: a pad position's output is never read (every
    # attention masks it as a key), and PyTorch's encoder fast path may write zeros there.
    real = src != PAD
    torch.testing.assert_close(memory[real], their_memory[real], atol=1e-5, rtol=1e-5)
    # Decoder outputs everywhere, target pad positions included: their queries still see BOS, in both.
    assert hidden.shape == their_hidden.shape == (3, t, D_MODEL)
    torch.testing.assert_close(hidden, their_hidden, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(ours(src, tgt_in), ours.project(their_hidden), atol=1e-4, rtol=1e-5)


def test_post_norm_differs_from_nn_transformer_default_by_the_extra_norm() -> None:
    """Guard on the reasoning above: nn.Transformer's default post-norm stack is not the paper's."""
    theirs = nn.Transformer(d_model=D_MODEL, nhead=HEADS, num_encoder_layers=LAYERS, num_decoder_layers=LAYERS,
                            dim_feedforward=D_FF, dropout=0.0, batch_first=True)
    randomise(theirs)
    theirs.eval()
    cfg = TransformerConfig(src_vocab_size=VOCAB, tgt_vocab_size=VOCAB, d_model=D_MODEL, n_heads=HEADS, d_ff=D_FF,
                            n_encoder_layers=LAYERS, n_decoder_layers=LAYERS, dropout=0.0)
    ours = Transformer(cfg).eval()
    copy_weights(ours, theirs)  # every layer; their two final LayerNorms have no counterpart in ours
    src = torch.randint(3, VOCAB, (2, 5))
    tgt_in = torch.randint(3, VOCAB, (2, 4))
    tgt_in[:, 0] = BOS
    with torch.no_grad():
        hidden = ours.decode(tgt_in, ours.encode(src), ours.source_mask(src))
        their_hidden = theirs(ours.src_pos(ours.src_embed(src)), ours.tgt_pos(ours.tgt_embed(tgt_in)),
                              tgt_mask=torch.triu(torch.ones(4, 4, dtype=torch.bool), diagonal=1))
    assert (hidden - their_hidden).abs().max().item() > 1e-2
