"""The encoder-decoder Transformer (§3, Figure 1).

Shapes: B batch, S source length, T target length, D d_model, V target vocabulary, L layers,
H heads, Dh head dim.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .cache import DecoderState
from .config import Architecture, TransformerConfig
from .decoding import DecodeOptions, search
from .embeddings import PositionalEncoding, TokenEmbedding
from .layers import Ablations, DecoderLayer, EncoderLayer
from .masks import source_mask, target_mask
from .normalization import make_norm
from .ops.linear import PackedWeights, packed_weights
from .ops.linear import set_inference_precision as use_precision
from .ops.packing import Packing, encoder_layer_on_rows, keys_values_on_rows


@dataclass(frozen=True)
class AttentionMaps:
    """Attention weights of every layer, for visualization; each list has one entry per layer."""

    encoder: list[Tensor]  # (B, H, S, S) each
    decoder_self: list[Tensor]  # (B, H, T, T) each
    cross: list[Tensor]  # (B, H, T, S) each


def _layer_args(cfg: Architecture) -> dict:
    return dict(
        d_model=cfg.d_model,
        n_heads=cfg.n_heads,
        d_ff=cfg.d_ff,
        dropout=cfg.dropout,
        attention_dropout=cfg.attention_dropout,
        activation_dropout=cfg.activation_dropout,  # None: the layers use dropout
        activation=cfg.activation,
        norm_first=cfg.norm_first,
        eps=cfg.layer_norm_eps,
        ablations=Ablations(cfg.norm, cfg.scale_attention, cfg.residual, cfg.feed_forward),
    )


def _final_norm(cfg: Architecture) -> nn.Module | None:
    """Pre-norm's last normalisation (the last residual sum is unnormalised); post-norm needs none."""
    return make_norm(cfg.norm, cfg.d_model, cfg.layer_norm_eps) if cfg.norm_first else None


class Encoder(nn.Module):
    """N encoder layers; with pre-norm a final LayerNorm, since the last residual sum is unnormalised."""

    def __init__(self, cfg: Architecture) -> None:
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(**_layer_args(cfg)) for _ in range(cfg.n_encoder_layers))
        self.final_norm = _final_norm(cfg)
        self.recompute = False  # see Transformer.recompute_layers
        self.packable = cfg.norm != "batch"  # BatchNorm's statistics span the padding: no packing changes them

    def forward(self, x: Tensor, src_mask: Tensor, need_weights: bool = False) -> tuple[Tensor, list[Tensor]]:
        """x (B, S, D), src_mask (B, 1, 1, S) -> (B, S, D), [weights (B, H, S, S)] if asked.

        A speed-up, not part of the model: where the batch is mostly padding, the layers run on its real
        positions only (``transformer.ops.packing``), and the output is zero at padding positions.
        """
        packing = None if need_weights or not self.packable else Packing.of(src_mask[:, 0, 0, :])
        if packing is not None:
            rows = packing.pack(x)  # (N, D)
            for layer in self.layers:
                rows = _run(self.recompute, encoder_layer_on_rows, layer, rows, src_mask, packing)
            return packing.unpack(self._final_norm(rows)), []
        weights = []
        for layer in self.layers:
            x, w = _run(self.recompute and not need_weights, layer, x, src_mask, need_weights)
            if w is not None:
                weights.append(w)
        return self._final_norm(x), weights

    def _final_norm(self, x: Tensor) -> Tensor:
        return x if self.final_norm is None else self.final_norm(x)


class Decoder(nn.Module):
    """N decoder layers (and a final LayerNorm with pre-norm)."""

    def __init__(self, cfg: Architecture) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(**_layer_args(cfg)) for _ in range(cfg.n_decoder_layers))
        self.final_norm = _final_norm(cfg)
        self.recompute = False  # see Transformer.recompute_layers

    def forward(
        self, x: Tensor, memory: Tensor, tgt_mask: Tensor, src_mask: Tensor, need_weights: bool = False
    ) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """x (B, T, D), memory (B, S, D) -> (B, T, D), self weights [(B, H, T, T)], cross [(B, H, T, S)].

        Each layer's cross-attention keys and values are computed from the memory, once (``_decoder_layer``). A
        speed-up, not part of the model: where the sources are mostly padding, at their real positions only
        (``transformer.ops.packing``).
        """
        packing = Packing.of(src_mask[:, 0, 0, :])
        memory = memory if packing is None else packing.pack(memory)  # (B, S, D) or (N, D)
        self_weights, cross_weights = [], []
        for layer in self.layers:
            x, sw, cw = _run(self.recompute and not need_weights, _decoder_layer, layer, x, memory, packing, tgt_mask,
                             src_mask, need_weights)
            if sw is not None and cw is not None:
                self_weights.append(sw)
                cross_weights.append(cw)
        return self._final_norm(x), self_weights, cross_weights

    def step(self, x: Tensor, state: DecoderState) -> Tensor:
        """One position for every row: x (R, 1, D) -> (R, 1, D); writes the cache at ``state.step``."""
        slots = state.key_slots()  # (B, 1, g, step+1), the same for every layer; None when g = 1
        for i, layer in enumerate(self.layers):
            x = layer.step(
                x, state.self_k[i], state.self_v[i], state.step, state.cross_k[i], state.cross_v[i], state.src_mask,
                slots,
            )
        return self._final_norm(x)

    def _final_norm(self, x: Tensor) -> Tensor:
        return x if self.final_norm is None else self.final_norm(x)


def _decoder_layer(
    layer: DecoderLayer, x: Tensor, memory: Tensor, packing: Packing | None, tgt_mask: Tensor, src_mask: Tensor,
    need_weights: bool,
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """``layer`` over the memory (B, S, D), or over its real rows (N, D) with ``packing``: the layer's
    cross-attention keys and values, then the layer (one function, so activation checkpointing recomputes both)."""
    if packing is None:
        cross_k, cross_v = layer.cross_attn.project_kv(memory)  # (B, H, S, Dh) each
    else:
        cross_k, cross_v = keys_values_on_rows(layer.cross_attn, memory, packing)
    return layer(x, cross_k, cross_v, tgt_mask, src_mask, need_weights)


def _run(recompute: bool, layer: Callable[..., Any], *args: Any) -> Any:
    """``layer(*args)``; with ``recompute`` in training, by activation checkpointing (``recompute_layers``)."""
    if recompute and torch.is_grad_enabled():
        return checkpoint(layer, *args, use_reentrant=False)
    return layer(*args)


class Transformer(nn.Module):
    """Encoder-decoder Transformer. ``Transformer(TransformerConfig.preset("base", ...))``.

    Token tensors are int64, batch first, padded on the right with ``cfg.pad_id``. The decoder input
    starts with ``cfg.bos_id`` (the target shifted right).
    """

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.src_embed = TokenEmbedding(cfg.src_vocab_size, cfg.d_model, cfg.pad_id, cfg.scale_embeddings)
        # §3.4: "we share the same weight matrix between the two embedding layers and the pre-softmax
        # linear transformation"; both choices are switches here.
        self.tgt_embed = self.src_embed if cfg.share_embeddings else TokenEmbedding(
            cfg.tgt_vocab_size, cfg.d_model, cfg.pad_id, cfg.scale_embeddings)
        position = dict(kind=cfg.positional, dropout=cfg.dropout, layout=cfg.sinusoid_layout)
        self.src_pos = PositionalEncoding(cfg.d_model, cfg.max_positions, **position)
        self.tgt_pos = PositionalEncoding(cfg.d_model, cfg.max_positions, **position)
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.output_weight = (
            self.tgt_embed.weight if cfg.tie_output else nn.Parameter(torch.empty(cfg.tgt_vocab_size, cfg.d_model))
        )
        # A fixed bias on the logits (Marian's final_logits_bias: saved, loaded, not trained), or none.
        self.register_buffer("output_bias", torch.zeros(cfg.tgt_vocab_size) if cfg.output_bias else None)
        self.output_packed = PackedWeights()  # output_weight prepacked for CPU inference (ops.linear)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform matrices, zero biases (from the reference code, not the paper's text)."""
        for name, p in self.named_parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
            elif name.endswith("bias"):
                nn.init.zeros_(p)
        with torch.no_grad():
            self.src_embed.weight[self.cfg.pad_id].zero_()
            self.tgt_embed.weight[self.cfg.pad_id].zero_()

    def recompute_layers(self, enabled: bool = True) -> None:
        """Activation checkpointing: in training, keep only each layer's input for backward and run the layer
        again there (with the same dropout masks). Activation memory falls to about one (B, T, D) tensor a
        layer, for about a third more compute (a second forward of the layers)."""
        self.encoder.recompute = self.decoder.recompute = enabled

    def set_inference_precision(self, precision: str) -> Transformer:
        """The precision of inference on the CPU in every linear layer and the output projection
        (``transformer.ops.linear``): "float32" (the default), "int8" (dynamic quantization, W ~ s_n * q_n per
        output row, inputs quantized per call) or "bfloat16" (on CPUs with bf16 matrix units): faster decoding
        at a small cost in accuracy; embeddings, attention, softmax and LayerNorm stay float32. Float32 inference
        on the CPU only: training and autocast are unchanged.

        Raises:
            ValueError: not one of those precisions.
            RuntimeError: the model is not on the CPU, or this PyTorch build or CPU cannot run the precision.
        """
        use_precision(self, precision)
        return self

    def set_int8_inference(self, enabled: bool = True) -> Transformer:
        """``set_inference_precision("int8" if enabled else "float32")``."""
        return self.set_inference_precision("int8" if enabled else "float32")

    @property
    def inference_precision(self) -> str:
        """The precision ``set_inference_precision`` set ("float32" unless changed)."""
        return next((p.precision for p in packed_weights(self)), "float32")

    @property
    def int8_inference(self) -> bool:
        """Whether ``set_int8_inference`` is on."""
        return self.inference_precision == "int8"

    # -- the three parts of Figure 1 -------------------------------------------------------------

    def source_mask(self, src: Tensor) -> Tensor:
        """(B, S) -> (B, 1, 1, S) bool, True = real token."""
        return source_mask(src, self.cfg.pad_id)

    def target_mask(self, tgt_in: Tensor) -> Tensor:
        """(B, T) -> (B, 1, T, T) bool: causal AND real key (not causal: ``cfg.causal_mask`` off, an ablation)."""
        return target_mask(tgt_in, self.cfg.pad_id, self.cfg.causal_mask)

    def encode(self, src: Tensor) -> Tensor:
        """The encoder output ("memory"): src (B, S) int64 -> (B, S, D)."""
        _check_tokens("src", src)
        return self.encoder(self.src_pos(self.src_embed(src)), self.source_mask(src))[0]

    def decode(self, tgt_in: Tensor, memory: Tensor, src_mask: Tensor) -> Tensor:
        """Decoder hidden states, teacher-forced: tgt_in (B, T), memory (B, S, D), src_mask (B, 1, 1, S)
        -> (B, T, D). ``project`` turns them into logits."""
        _check_tokens("tgt_in", tgt_in)
        x = self.tgt_pos(self.tgt_embed(tgt_in))
        return self.decoder(x, memory, self.target_mask(tgt_in), src_mask)[0]

    def project(self, hidden: Tensor) -> Tensor:
        """Pre-softmax linear transformation: (..., D) -> (..., V)."""
        return self.output_packed.linear(hidden, self.output_weight, self.output_bias)

    def forward(self, src: Tensor, tgt_in: Tensor) -> Tensor:
        """Logits of every next token: src (B, S), tgt_in (B, T) int64 -> (B, T, V)."""
        memory = self.encode(src)
        return self.project(self.decode(tgt_in, memory, self.source_mask(src)))

    def forward_with_attention(self, src: Tensor, tgt_in: Tensor) -> tuple[Tensor, AttentionMaps]:
        """``forward`` by the explicit attention path, also returning every layer's weights."""
        _check_tokens("src", src)
        _check_tokens("tgt_in", tgt_in)
        src_mask = self.source_mask(src)
        memory, enc_w = self.encoder(self.src_pos(self.src_embed(src)), src_mask, need_weights=True)
        x = self.tgt_pos(self.tgt_embed(tgt_in))
        hidden, self_w, cross_w = self.decoder(x, memory, self.target_mask(tgt_in), src_mask, need_weights=True)
        return self.project(hidden), AttentionMaps(enc_w, self_w, cross_w)

    # -- incremental decoding ----------------------------------------------------------------------

    def start_state(self, memory: Tensor, src_mask: Tensor, capacity: int = 64) -> DecoderState:
        """An empty cache, with each layer's cross-attention keys/values computed once.

        Shapes: memory (B, S, D), src_mask (B, 1, 1, S); buffers (L, B, H, capacity, 1, Dh).

        Raises:
            ValueError: the model has no causal mask (``cfg.causal_mask`` off, an ablation): it learnt to read
                the whole target, and a decoder that writes one token at a time has only the past to give it.
        """
        if not self.cfg.causal_mask:
            raise ValueError("this model was built without the causal mask (causal_mask=False, an ablation for "
                             "training experiments): it cannot generate one token at a time")
        b = memory.size(0)
        cfg = self.cfg
        d_head = cfg.d_model // cfg.n_heads
        n = len(self.decoder.layers)
        cross = [layer.cross_attn.project_kv(memory) for layer in self.decoder.layers]
        empty = memory.new_empty(n, b, cfg.n_heads, max(capacity, 1), 1, d_head)
        stack = lambda ts: torch.stack(ts) if ts else memory.new_empty(0, b, cfg.n_heads, memory.size(1), d_head)  # noqa: E731
        return DecoderState(
            self_k=empty,
            self_v=torch.empty_like(empty),
            cross_k=stack([k for k, _ in cross]),
            cross_v=stack([v for _, v in cross]),
            src_mask=src_mask,
            step=0,
        )

    def decode_step(self, tokens: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        """Logits of the next token after ``tokens``, the token at position ``state.step``.

        Shapes: tokens (B,) int64 -> logits (B, V), and the state one step on. The cache buffers are
        written in place, so the old state must not be reused; run it under ``torch.no_grad``.
        """
        state = state.ensure_capacity(state.step + 1)
        x = self.tgt_pos(self.tgt_embed(tokens[:, None]), offset=state.step)  # (B, 1, D): PE(step)
        hidden = self.decoder.step(x, state)  # (B, 1, D)
        return self.project(hidden[:, 0]), state.advance()

    def generate(self, src: Tensor, options: DecodeOptions | None = None, **changes: Any) -> Tensor:
        """Translate a batch: the best hypothesis of each sentence, by ``transformer.decoding.search`` (greedy
        or beam search, as ``options`` say; ``search`` itself also returns the n-best lists and scores).

        ``model.generate(src)`` decodes with the paper's settings (``DecodeOptions()``); fields of
        ``DecodeOptions`` given by name change those of ``options``: ``model.generate(src, beam_size=1)``.

        Shapes: src (B, S) int64, padded with pad_id -> (B, <=L) int64 without BOS or EOS, padded with pad_id.
        """
        options = (options or DecodeOptions()).override(**changes)
        return search(self, src, options).tokens[:, 0]


def _check_tokens(name: str, tokens: Tensor) -> None:
    if tokens.dim() != 2:
        raise ValueError(f"{name} must be (batch, length) token ids, got shape {tuple(tokens.shape)}")
    if tokens.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"{name} must hold int64 token ids, got {tokens.dtype}")
