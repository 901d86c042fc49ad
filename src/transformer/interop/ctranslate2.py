"""Export a trained model to CTranslate2, the C++ inference engine (int8 / float16 weights, fast CPU decoding).

Our model maps one to one onto CTranslate2's ``TransformerSpec``, so the export is a renaming of tensors:

- embeddings: ``src_embed`` / ``tgt_embed`` (CTranslate2 also multiplies them by sqrt(d_model), §3.4, unless
  ``scale_embeddings`` is off); the pre-softmax projection is ``output_weight`` (the target embedding when
  tied), with ``output_bias`` as its bias when the model has one;
- positions: CTranslate2 takes the table itself, so we hand it ours (the paper's interleaved sines and
  cosines, or Marian's halves, as the model's ``sinusoid_layout``) or the learned one, ``max_positions``
  rows: longer inputs or outputs fail in CTranslate2;
- self-attention ``w_qkv`` (3D, D) is CTranslate2's fused ``linear[0]``; cross-attention's ``w_qkv`` is
  split into the query part ``linear[0]`` and the fused key/value part ``linear[1]``; ``w_o`` is the last;
- each sublayer's LayerNorm is the sublayer's ``layer_norm`` (after the residual in post-norm, before the
  sublayer in pre-norm, where the stacks' ``final_norm`` are the encoder's and decoder's ``layer_norm``),
  with our epsilon in the model's config;
- tokens are the SentencePiece pieces in id order; the source gets ``</s>`` appended
  (``add_source_eos``) and the decoder starts from ``<s>``, as ours do. The SentencePiece models are
  copied into the output directory so that a user can tokenize with them.

The result is checked against our own model (tests/equivalence/test_ctranslate2_export.py): the same
log-probabilities for given targets (``score_batch``) and the same greedy translations.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import Tensor

from ..embeddings import sinusoidal_encoding
from ..model import Transformer

if TYPE_CHECKING:
    from ..data.vocab import Vocab

# Weight formats CTranslate2 can store; None keeps float32.
QUANTIZATIONS = ("int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16", "bfloat16", "float32")

# Our activations -> the names of CTranslate2's ``common_spec.Activation`` members.
_ACTIVATIONS = {"relu": "RELU", "gelu": "GELU", "silu": "SWISH", "swish": "SWISH"}


def _ctranslate2() -> Any:
    try:
        import ctranslate2
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "exporting to CTranslate2 needs the ctranslate2 package: pip install 'transformer[export]'"
        ) from e
    return ctranslate2


def _array(t: Tensor) -> np.ndarray:
    return t.detach().to("cpu").float().numpy().copy()


def _position_table(model: Transformer, which: str, max_positions: int) -> np.ndarray:
    """(max_positions, D) float32: the encodings the model adds at positions 0 .. max_positions - 1."""
    pos = model.src_pos if which == "src" else model.tgt_pos
    if pos.kind == "learned":
        if max_positions > pos.table.size(0):
            raise ValueError(
                f"max_positions={max_positions} is past the model's learned table of {pos.table.size(0)} positions"
            )
        return _array(pos.table[:max_positions])
    return _array(sinusoidal_encoding(max_positions, model.cfg.d_model, model.cfg.sinusoid_layout))


def _set_linear(spec: Any, layer: Any, rows: slice = slice(None)) -> None:
    spec.weight = _array(layer.weight[rows])
    if layer.bias is not None:
        spec.bias = _array(layer.bias[rows])


def _set_norm(spec: Any, norm: Any) -> None:
    spec.gamma = _array(norm.weight)
    spec.beta = _array(norm.bias)


def ctranslate2_spec(
    model: Transformer, src_tokens: list[str], tgt_tokens: list[str], max_positions: int = 1024
) -> Any:
    """The CTranslate2 ``TransformerSpec`` holding ``model``'s weights and vocabularies (not yet validated).

    Args:
        model: the model to export (any device; its weights are copied as float32).
        src_tokens, tgt_tokens: the subword string of every id, in id order; specials included.
        max_positions: rows of the position tables, the longest source or target CTranslate2 accepts.
    """
    _ctranslate2()
    from ctranslate2.specs import common_spec, transformer_spec

    cfg = model.cfg
    cfg.check_exportable("CTranslate2")
    if len(src_tokens) != cfg.src_vocab_size or len(tgt_tokens) != cfg.tgt_vocab_size:
        raise ValueError(
            f"vocabulary sizes {len(src_tokens)}/{len(tgt_tokens)} do not match the model's "
            f"{cfg.src_vocab_size}/{cfg.tgt_vocab_size}"
        )
    if max_positions < 1:
        raise ValueError(f"max_positions={max_positions} must be >= 1")
    spec = transformer_spec.TransformerSpec.from_config(
        (cfg.n_encoder_layers, cfg.n_decoder_layers),
        cfg.n_heads,
        pre_norm=cfg.norm_first,
        activation=getattr(common_spec.Activation, _ACTIVATIONS[cfg.activation]),
    )
    enc, dec = spec.encoder, spec.decoder
    enc.embeddings[0].weight = _array(model.src_embed.weight)
    dec.embeddings.weight = _array(model.tgt_embed.weight)
    dec.projection.weight = _array(model.output_weight)
    if model.output_bias is not None:
        dec.projection.bias = _array(model.output_bias)
    enc.scale_embeddings = dec.scale_embeddings = cfg.scale_embeddings
    enc.position_encodings.encodings = _position_table(model, "src", max_positions)
    dec.position_encodings.encodings = _position_table(model, "tgt", max_positions)
    if cfg.norm_first:
        _set_norm(enc.layer_norm, model.encoder.final_norm)
        _set_norm(dec.layer_norm, model.decoder.final_norm)

    d = cfg.d_model
    for layer_spec, layer in zip(enc.layer, model.encoder.layers, strict=True):
        _set_linear(layer_spec.self_attention.linear[0], layer.self_attn.w_qkv)
        _set_linear(layer_spec.self_attention.linear[1], layer.self_attn.w_o)
        _set_norm(layer_spec.self_attention.layer_norm, layer.attn_block.norm)
        _set_linear(layer_spec.ffn.linear_0, layer.feed_forward.w_1)
        _set_linear(layer_spec.ffn.linear_1, layer.feed_forward.w_2)
        _set_norm(layer_spec.ffn.layer_norm, layer.ff_block.norm)
    for layer_spec, layer in zip(dec.layer, model.decoder.layers, strict=True):
        _set_linear(layer_spec.self_attention.linear[0], layer.self_attn.w_qkv)
        _set_linear(layer_spec.self_attention.linear[1], layer.self_attn.w_o)
        _set_norm(layer_spec.self_attention.layer_norm, layer.self_block.norm)
        _set_linear(layer_spec.attention.linear[0], layer.cross_attn.w_qkv, slice(0, d))
        _set_linear(layer_spec.attention.linear[1], layer.cross_attn.w_qkv, slice(d, 3 * d))
        _set_linear(layer_spec.attention.linear[2], layer.cross_attn.w_o)
        _set_norm(layer_spec.attention.layer_norm, layer.cross_block.norm)
        _set_linear(layer_spec.ffn.linear_0, layer.feed_forward.w_1)
        _set_linear(layer_spec.ffn.linear_1, layer.feed_forward.w_2)
        _set_norm(layer_spec.ffn.layer_norm, layer.ff_block.norm)

    spec.register_source_vocabulary(list(src_tokens))
    spec.register_target_vocabulary(list(tgt_tokens))
    config = spec.config
    config.add_source_eos = True
    config.add_source_bos = False
    config.bos_token = tgt_tokens[cfg.bos_id]
    config.decoder_start_token = tgt_tokens[cfg.bos_id]
    config.eos_token = tgt_tokens[cfg.eos_id]
    config.layer_norm_epsilon = cfg.layer_norm_eps
    if src_tokens[cfg.eos_id] != tgt_tokens[cfg.eos_id]:
        raise ValueError(
            f"CTranslate2 uses one end-of-sentence token: the source's {src_tokens[cfg.eos_id]!r} "
            f"differs from the target's {tgt_tokens[cfg.eos_id]!r}"
        )
    return spec


def vocab_tokens(vocab: Vocab) -> list[str]:
    """Every piece of a SentencePiece vocabulary, in id order."""
    return [vocab.id_to_piece(i) for i in range(len(vocab))]


def export_ctranslate2(
    model: Transformer,
    src_vocab: Vocab,
    tgt_vocab: Vocab,
    output_dir: str | os.PathLike[str],
    quantization: str | None = None,
    max_positions: int = 1024,
    force: bool = False,
) -> Path:
    """Write ``model`` as a CTranslate2 model directory, with the SentencePiece models beside it.

    The directory is built under a temporary name beside ``output_dir`` and renamed into place, so a
    failed export leaves nothing half-written. An existing ``output_dir`` is replaced only with ``force``.

    Returns:
        ``output_dir``.
    """
    ct2 = _ctranslate2()
    model.cfg.check_exportable("CTranslate2")
    output_dir = Path(output_dir)
    if quantization is not None and quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization={quantization!r}: choose one of {', '.join(QUANTIZATIONS)}")
    if output_dir.exists() and not force:
        raise FileExistsError(f"{output_dir} already exists (use --force to replace it)")
    spec = ctranslate2_spec(model, vocab_tokens(src_vocab), vocab_tokens(tgt_vocab), max_positions)
    if src_vocab.path == tgt_vocab.path:
        spec.register_file(str(src_vocab.path), "joint.model")
    else:
        spec.register_file(str(src_vocab.path), "src.model")
        spec.register_file(str(tgt_vocab.path), "tgt.model")

    class _Converter(ct2.converters.Converter):
        def _load(self) -> Any:
            return spec

    output_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", suffix=".tmp", dir=output_dir.parent))
    try:
        _Converter().convert(str(work / "model"), quantization=quantization)
        if output_dir.exists():  # --force: the old directory goes into the work folder, removed below
            os.replace(output_dir, work / "old")
        os.replace(work / "model", output_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return output_dir
