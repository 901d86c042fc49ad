"""The implementations we compare against, built at our sizes with random weights (no download).

- ``TorchTransformerPeer``: ``torch.nn.Transformer`` (batch_first, post-norm) with what it lacks to be a
  translation model: a shared embedding scaled by sqrt(D), the paper's sinusoidal positions, dropout,
  and the output projection tied to the embedding. It has no key/value cache, so decoding re-runs the
  whole prefix (pytorch #107573).
- ``build_marian``: Hugging Face ``MarianMTModel`` from a ``MarianConfig`` (static sinusoidal positions,
  scaled, shared and tied embeddings, ReLU, the same dropouts as ours).
- ``convert_to_ctranslate2``: that same Marian model converted by CTranslate2's own
  ``TransformersConverter``; the one thing it would fetch, a tokenizer, is replaced by a stand-in
  that only lists the vocabulary (the converter reads nothing else of it for Marian).

Token ids: ours and the nn.Transformer peer use pad 0, bos 1, eos 2. Marian keeps its own convention
(eos 0, unk 1, pad = the last id, and the decoder starts from pad), so ``to_marian`` maps batches.

Shapes: B batch, S source length, T target length, D d_model, V vocabulary.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workload import BOS, EOS, PAD


class TorchTransformerPeer(nn.Module):
    """``nn.Transformer`` made into a translation model of the paper's shape."""

    def __init__(self, vocab: int, d_model: int, n_heads: int, d_ff: int, n_layers: int, dropout: float = 0.1):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model, padding_idx=PAD)
        self.scale = math.sqrt(d_model)
        pos = torch.arange(4096, dtype=torch.float64)[:, None]
        angle = pos / torch.pow(10000.0, torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
        pe = torch.zeros(4096, d_model, dtype=torch.float64)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(angle), torch.cos(angle)
        self.register_buffer("pe", pe.float(), persistent=False)
        self.dropout = nn.Dropout(dropout)
        self.transformer = nn.Transformer(
            d_model, n_heads, n_layers, n_layers, d_ff, dropout, batch_first=True, norm_first=False
        )
        # Like ours (and the paper): dropout on sublayer outputs and inside the FFN, none on attention weights.
        for module in self.transformer.modules():
            if isinstance(module, nn.MultiheadAttention):
                module.dropout = 0.0
        nn.init.xavier_uniform_(self.embed.weight)

    def embed_tokens(self, tokens: Tensor) -> Tensor:
        """(B, T) -> (B, T, D): E[x] * sqrt(D) + PE, dropout."""
        return self.dropout(self.embed(tokens) * self.scale + self.pe[: tokens.size(1)])

    def encode(self, src: Tensor) -> Tensor:
        """(B, S) -> memory (B, S, D)."""
        return self.transformer.encoder(self.embed_tokens(src), src_key_padding_mask=src == PAD)

    def decode(self, tgt_in: Tensor, memory: Tensor, src: Tensor) -> Tensor:
        """(B, T), memory (B, S, D) -> hidden (B, T, D); nn masks are True = blocked."""
        t = tgt_in.size(1)
        causal = torch.triu(torch.ones(t, t, dtype=torch.bool, device=tgt_in.device), diagonal=1)
        return self.transformer.decoder(
            self.embed_tokens(tgt_in), memory, tgt_mask=causal, tgt_is_causal=True,
            tgt_key_padding_mask=tgt_in == PAD, memory_key_padding_mask=src == PAD,
        )

    def project(self, hidden: Tensor) -> Tensor:
        """(..., D) -> (..., V), tied to the embedding."""
        return F.linear(hidden, self.embed.weight)

    def forward(self, src: Tensor, tgt_in: Tensor) -> Tensor:
        """(B, S), (B, T) -> logits (B, T, V)."""
        return self.project(self.decode(tgt_in, self.encode(src), src))

    @torch.inference_mode()
    def greedy_no_cache(self, src: Tensor, length: int) -> Tensor:
        """Greedy decoding of exactly ``length`` tokens, re-running the decoder over the whole prefix
        at every step (nn.TransformerDecoder has no cache). (B, S) -> (B, length)."""
        memory = self.encode(src)
        ys = torch.full((src.size(0), 1), BOS, dtype=torch.long, device=src.device)
        for _ in range(length):
            logits = self.project(self.decode(ys, memory, src)[:, -1])  # (B, V)
            logits[:, [PAD, BOS, EOS]] = -torch.inf  # as ours with min_len = max_len: no EOS
            ys = torch.cat([ys, logits.argmax(-1, keepdim=True)], dim=1)
        return ys[:, 1:]


# -- Hugging Face Marian ------------------------------------------------------------------------------

MARIAN_EOS, MARIAN_UNK = 0, 1


def marian_pad(vocab: int) -> int:
    return vocab - 1


def build_marian(vocab: int, d_model: int, n_heads: int, d_ff: int, n_layers: int, dropout: float = 0.1):
    """A random-weight ``MarianMTModel`` of our size: ReLU, dropout on sublayers and in the FFN (like ours)."""
    from transformers import MarianConfig, MarianMTModel

    config = MarianConfig(
        vocab_size=vocab,
        d_model=d_model,
        encoder_layers=n_layers,
        decoder_layers=n_layers,
        encoder_attention_heads=n_heads,
        decoder_attention_heads=n_heads,
        encoder_ffn_dim=d_ff,
        decoder_ffn_dim=d_ff,
        activation_function="relu",
        dropout=dropout,
        attention_dropout=0.0,
        activation_dropout=dropout,
        scale_embedding=True,
        share_encoder_decoder_embeddings=True,
        tie_word_embeddings=True,
        max_position_embeddings=512,
        pad_token_id=marian_pad(vocab),
        eos_token_id=MARIAN_EOS,
        decoder_start_token_id=marian_pad(vocab),
        forced_eos_token_id=None,
    )
    return MarianMTModel(config)


def to_marian(tokens: Tensor, vocab: int) -> Tensor:
    """Our ids -> Marian's: pad and bos -> pad (Marian starts decoding from pad), eos -> 0; words
    (3 .. V-2) stay."""
    out = tokens.clone()
    out[(tokens == PAD) | (tokens == BOS)] = marian_pad(vocab)
    out[tokens == EOS] = MARIAN_EOS
    return out


# -- CTranslate2 --------------------------------------------------------------------------------------


class _VocabularyOnlyTokenizer:
    """What ``MarianMTLoader`` reads of a tokenizer: the vocabulary in id order, eos and unk tokens."""

    eos_token, unk_token, bos_token, pad_token = "</s>", "<unk>", None, "<pad>"

    def __init__(self, vocab: int):
        self.tokens = ["</s>", "<unk>"] + [f"w{i}" for i in range(2, vocab - 1)] + ["<pad>"]

    def get_vocab(self) -> dict[str, int]:
        return {token: i for i, token in enumerate(self.tokens)}


def ctranslate2_tokens(src: Tensor) -> list[list[str]]:
    """Our source ids (B, S) -> CTranslate2 token strings of the converted Marian vocabulary."""
    return [["</s>" if int(i) == EOS else f"w{int(i)}" for i in row if int(i) != PAD] for row in src]


def our_tokens(vocab: int) -> list[str]:
    """Token strings for our benchmark model's ids: the specials by name, ``w{i}`` for the rest."""
    specials = {PAD: "<pad>", BOS: "<s>", EOS: "</s>", 3: "<unk>"}
    return [specials.get(i, f"w{i}") for i in range(vocab)]


def our_ctranslate2_tokens(src: Tensor) -> list[list[str]]:
    """Our source ids (B, S) -> token strings for our exported model, which appends EOS itself."""
    return [[f"w{int(i)}" for i in row if int(i) not in (PAD, EOS)] for row in src]


def export_ours_to_ctranslate2(model, directory: str | os.PathLike) -> Path:
    """Our model through our own exporter (``transformer.interop.ctranslate2``, what ``transformer export``
    runs)."""
    import ctranslate2

    from transformer.interop.ctranslate2 import ctranslate2_spec

    spec = ctranslate2_spec(model, our_tokens(model.cfg.src_vocab_size), our_tokens(model.cfg.tgt_vocab_size))

    class OursConverter(ctranslate2.converters.Converter):
        def _load(self):
            return spec

    out = Path(directory) / "ours_ctranslate2"
    OursConverter().convert(str(out), quantization="float32", force=True)
    return out


def convert_to_ctranslate2(marian, directory: str | os.PathLike) -> Path:
    """Save ``marian`` with ``save_pretrained`` and convert it with CTranslate2's TransformersConverter.

    Offline: the converter loads the model from the saved directory, and its tokenizer is replaced by
    ``_VocabularyOnlyTokenizer`` (a Marian tokenizer needs SentencePiece models that a random model
    does not have; the converter only reads the token list, eos and unk). Returns the model directory;
    load it with any ``compute_type`` (float32, int8: CTranslate2 quantizes on load).
    """
    from ctranslate2.converters import TransformersConverter

    vocab = marian.config.vocab_size

    class OfflineConverter(TransformersConverter):
        def load_tokenizer(self, tokenizer_class, model_name_or_path, **kwargs):
            return _VocabularyOnlyTokenizer(vocab)

    hf_dir, ct2_dir = Path(directory) / "marian", Path(directory) / "ctranslate2"
    marian.save_pretrained(hf_dir)
    OfflineConverter(str(hf_dir)).convert(str(ct2_dir), quantization="float32", force=True)
    return ct2_dir
