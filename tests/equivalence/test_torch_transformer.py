"""Equivalence with torch.nn.Transformer, an implementation we did not write, weights copied across by
``transformer.interop.torch_nn`` (its table of our names and theirs).

Both stacks get the same embedded inputs (ours: token embedding x sqrt(D) + PE) and the same masks in
each library's convention; the decoder outputs must agree to 1e-5 in float32.

Post-norm: nn.Transformer puts one more LayerNorm after each stack (pytorch #24930, #50086), which the
paper's post-norm model does not have, so ``torch_transformer`` builds theirs without that norm. Pre-norm:
the extra final norm is right (the last residual sum is unnormalised) and corresponds to our
encoder.final_norm / decoder.final_norm.

Shapes: B batch, S source length, T target length, D d_model.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from transformer import Architecture, Transformer, TransformerConfig
from transformer.interop.torch_nn import load_from_torch, to_torch, torch_transformer, weight_map

PAD, BOS = 0, 1
D_MODEL, HEADS, D_FF, LAYERS, VOCAB = 32, 4, 64, 2, 17


def config(**overrides) -> TransformerConfig:
    return TransformerConfig(src_vocab_size=VOCAB, tgt_vocab_size=VOCAB, d_model=D_MODEL, n_heads=HEADS, d_ff=D_FF,
                             n_encoder_layers=LAYERS, n_decoder_layers=LAYERS, dropout=0.0, **overrides)


@torch.no_grad()
def randomise(module: nn.Module) -> None:
    """Non-trivial biases and LayerNorm gains, so that a bias or norm copied wrongly shows."""
    for name, p in module.named_parameters():
        if p.dim() == 1:
            p.copy_(torch.randn_like(p) * 0.2 + (1.0 if "norm" in name and name.endswith("weight") else 0.0))


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


def their_outputs(ours: Transformer, theirs: nn.Transformer, src: torch.Tensor, tgt_in: torch.Tensor):
    """Their encoder output and decoder output on our embedded inputs, with their mask convention."""
    t = tgt_in.size(1)
    src_x = ours.src_pos(ours.src_embed(src))  # (B, S, D): the same embedded inputs for both
    tgt_x = ours.tgt_pos(ours.tgt_embed(tgt_in))  # (B, T, D)
    # nn.Transformer's masks: True = blocked (the opposite of ours).
    memory = theirs.encoder(src_x, src_key_padding_mask=src == PAD)
    hidden = theirs(
        src_x,
        tgt_x,
        tgt_mask=torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1),
        src_key_padding_mask=src == PAD,
        tgt_key_padding_mask=tgt_in == PAD,
        memory_key_padding_mask=src == PAD,
    )
    return memory, hidden


@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")
@pytest.mark.parametrize("activation", ["relu", "gelu", "silu"])
@pytest.mark.parametrize("norm_first", [False, True], ids=["post_norm", "pre_norm"])
def test_matches_nn_transformer(norm_first: bool, activation: str) -> None:
    cfg = config(norm_first=norm_first, activation=activation)
    theirs = torch_transformer(cfg)
    assert (theirs.encoder.norm is None) == (theirs.decoder.norm is None) == (not norm_first)
    randomise(theirs)
    theirs.eval()
    ours = Transformer(cfg).eval()
    load_from_torch(ours, theirs)
    src, tgt_in = padded_batch()
    with torch.no_grad():
        memory = ours.encode(src)
        hidden = ours.decode(tgt_in, memory, ours.source_mask(src))
        their_memory, their_hidden = their_outputs(ours, theirs, src, tgt_in)
    # Encoder outputs only where the source is real: a pad position's output is never read (every
    # attention masks it as a key), and PyTorch's encoder fast path may write zeros there.
    real = src != PAD
    torch.testing.assert_close(memory[real], their_memory[real], atol=1e-5, rtol=1e-5)
    # Decoder outputs everywhere, target pad positions included: their queries still see BOS, in both.
    assert hidden.shape == their_hidden.shape == (3, tgt_in.size(1), D_MODEL)
    torch.testing.assert_close(hidden, their_hidden, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(ours(src, tgt_in), ours.project(their_hidden), atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("norm_first", [False, True], ids=["post_norm", "pre_norm"])
def test_to_torch_carries_our_weights_there(norm_first: bool) -> None:
    ours = Transformer(config(norm_first=norm_first)).eval()
    randomise(ours)
    theirs = to_torch(ours)
    assert not theirs.training
    their_state, our_state = theirs.state_dict(), ours.state_dict()
    mapping = weight_map(ours.cfg)
    assert set(mapping.values()) == set(their_state)  # every weight of theirs comes from one of ours
    for mine, name in mapping.items():
        assert torch.equal(their_state[name], our_state[mine]), name
    src, tgt_in = padded_batch()
    with torch.no_grad():
        _, their_hidden = their_outputs(ours, theirs, src, tgt_in)
        torch.testing.assert_close(ours.decode(tgt_in, ours.encode(src), ours.source_mask(src)), their_hidden,
                                   atol=1e-5, rtol=1e-5)


def test_loading_refuses_weights_that_do_not_fit() -> None:
    ours = Transformer(config())
    default = nn.Transformer(d_model=D_MODEL, nhead=HEADS, num_encoder_layers=LAYERS, num_decoder_layers=LAYERS,
                             dim_feedforward=D_FF, dropout=0.0, batch_first=True)  # with final norms
    with pytest.raises(ValueError, match=r"extra \['decoder.norm.bias'"):
        load_from_torch(ours, default)
    wider = torch_transformer(Architecture(d_model=D_MODEL, n_heads=HEADS, d_ff=2 * D_FF, n_encoder_layers=LAYERS,
                                           n_decoder_layers=LAYERS))
    with pytest.raises(ValueError, match="linear1.weight: shape"):
        load_from_torch(ours, wider)


def test_post_norm_differs_from_nn_transformer_default_by_the_extra_norm() -> None:
    """Guard on the reasoning above: nn.Transformer's default post-norm stack is not the paper's."""
    theirs = nn.Transformer(d_model=D_MODEL, nhead=HEADS, num_encoder_layers=LAYERS, num_decoder_layers=LAYERS,
                            dim_feedforward=D_FF, dropout=0.0, batch_first=True)
    randomise(theirs)
    theirs.eval()
    ours = Transformer(config()).eval()
    load_from_torch(ours, theirs, strict=False)  # every layer; their two final LayerNorms have no counterpart
    src = torch.randint(3, VOCAB, (2, 5))
    tgt_in = torch.randint(3, VOCAB, (2, 4))
    tgt_in[:, 0] = BOS
    with torch.no_grad():
        hidden = ours.decode(tgt_in, ours.encode(src), ours.source_mask(src))
        their_hidden = theirs(ours.src_pos(ours.src_embed(src)), ours.tgt_pos(ours.tgt_embed(tgt_in)),
                              tgt_mask=torch.triu(torch.ones(4, 4, dtype=torch.bool), diagonal=1))
    assert (hidden - their_hidden).abs().max().item() > 1e-2
