"""Marian / OPUS-MT checkpoints (Hugging Face's MarianMT layout) in and out of our run directories.

A MarianMT directory holds ``config.json`` (``MarianConfig``), the weights (``model.safetensors``, or an older
``pytorch_model.bin``), the tokenizer (``source.spm``, ``target.spm``, ``vocab.json``, maybe
``target_vocab.json`` and ``tokenizer_config.json``) and maybe ``generation_config.json``. Marian's model is
the paper's post-norm Transformer with four choices that are our config's fields too: the sinusoid table in
halves (``sinusoid_layout="halves"``), a final logits bias (``output_bias``), embedding scaling on or off
(``scale_embeddings``), and a decoder that starts from ``<pad>`` (``bos_id == pad_id``).

- ``architecture_of``: their config -> ours, refusing (naming the field) what we cannot express.
- ``weight_table``: our parameter -> their tensor(s); Q, K and V are concatenated into our ``w_qkv``.
- ``import_marian``: a MarianMT directory -> a run directory (``transformer import marian``).
- ``export_marian``: a model and its vocabularies -> a MarianMT directory (``transformer export --format hf``).

Neither needs the ``transformers`` package; the tests check both against it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from ..config import Architecture, TransformerConfig
from ..data.marian_vocab import load_marian_vocabs
from ..decoding import DecodeOptions
from ..embeddings import sinusoid_permutation, sinusoidal_encoding

log = logging.getLogger(__name__)

CONFIG, GENERATION, TOKENIZER_CONFIG = "config.json", "generation_config.json", "tokenizer_config.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
ACTIVATIONS = {"relu": "relu", "gelu": "gelu", "swish": "swish", "silu": "silu"}  # theirs -> ours
_ATTENTION = {"w_qkv.weight": ("q_proj.weight", "k_proj.weight", "v_proj.weight"),
              "w_qkv.bias": ("q_proj.bias", "k_proj.bias", "v_proj.bias"),
              "w_o.weight": ("out_proj.weight",), "w_o.bias": ("out_proj.bias",)}
_FEED_FORWARD = {"feed_forward.w_1.weight": ("fc1.weight",), "feed_forward.w_1.bias": ("fc1.bias",),
                 "feed_forward.w_2.weight": ("fc2.weight",), "feed_forward.w_2.bias": ("fc2.bias",)}
ENCODER_LAYER = {
    **{f"self_attn.{ours}": tuple(f"self_attn.{t}" for t in theirs) for ours, theirs in _ATTENTION.items()},
    **_FEED_FORWARD,
    "attn_block.norm.weight": ("self_attn_layer_norm.weight",), "attn_block.norm.bias": ("self_attn_layer_norm.bias",),
    "ff_block.norm.weight": ("final_layer_norm.weight",), "ff_block.norm.bias": ("final_layer_norm.bias",),
}
DECODER_LAYER = {
    **{f"self_attn.{ours}": tuple(f"self_attn.{t}" for t in theirs) for ours, theirs in _ATTENTION.items()},
    **{f"cross_attn.{ours}": tuple(f"encoder_attn.{t}" for t in theirs) for ours, theirs in _ATTENTION.items()},
    **_FEED_FORWARD,
    "self_block.norm.weight": ("self_attn_layer_norm.weight",), "self_block.norm.bias": ("self_attn_layer_norm.bias",),
    "cross_block.norm.weight": ("encoder_attn_layer_norm.weight",),
    "cross_block.norm.bias": ("encoder_attn_layer_norm.bias",),
    "ff_block.norm.weight": ("final_layer_norm.weight",), "ff_block.norm.bias": ("final_layer_norm.bias",),
}


class MarianError(ValueError):
    """A Marian directory (or a model for one) that cannot be converted: the message names the file or field."""


# -- the two configs --------------------------------------------------------------------------------------


def architecture_of(config: dict[str, Any], where: str = CONFIG) -> tuple[Architecture, dict[str, int]]:
    """Our ``Architecture`` and vocabulary fields (sizes, special ids) of a ``MarianConfig`` dict.

    Raises:
        MarianError: naming the field of ``where`` we cannot express.
    """
    get = lambda name, default=None: config.get(name, default)  # noqa: E731
    if get("model_type") != "marian":
        raise MarianError(f"{where}: model_type is {get('model_type')!r}, not 'marian': not a Marian checkpoint")
    for ours, pair in {"n_heads": ("encoder_attention_heads", "decoder_attention_heads"),
                       "d_ff": ("encoder_ffn_dim", "decoder_ffn_dim")}.items():
        if get(pair[0]) != get(pair[1]):
            raise MarianError(f"{where}: {pair[0]}={get(pair[0])} differs from {pair[1]}={get(pair[1])}; our model "
                              f"has one {ours} for both")
    activation = get("activation_function", "gelu")
    if activation not in ACTIVATIONS:
        raise MarianError(f"{where}: activation_function={activation!r}; we have {', '.join(ACTIVATIONS)}")
    for name in ("encoder_layerdrop", "decoder_layerdrop"):
        if get(name, 0.0):
            raise MarianError(f"{where}: {name}={get(name)}; LayerDrop is not part of our model")
    eos = get("eos_token_id", 0)
    if not isinstance(eos, int):
        raise MarianError(f"{where}: eos_token_id={eos!r}; we have one end-of-sentence token")
    shared = bool(get("share_encoder_decoder_embeddings", True))
    vocab = get("vocab_size", 58101)
    architecture = Architecture(
        d_model=get("d_model", 1024), n_heads=get("encoder_attention_heads", 16), d_ff=get("encoder_ffn_dim", 4096),
        n_encoder_layers=get("encoder_layers", 12), n_decoder_layers=get("decoder_layers", 12),
        dropout=float(get("dropout", 0.1)), attention_dropout=float(get("attention_dropout", 0.0)),
        activation_dropout=float(get("activation_dropout", 0.0)), share_embeddings=shared,
        tie_output=bool(get("tie_word_embeddings", True)), activation=ACTIVATIONS[activation],
        sinusoid_layout="halves", max_positions=get("max_position_embeddings", 1024),
        scale_embeddings=bool(get("scale_embedding", False)), output_bias=True,
    )
    pad = get("pad_token_id", 58100)
    fields = dict(src_vocab_size=vocab, tgt_vocab_size=vocab if shared else (get("decoder_vocab_size") or vocab),
                  pad_id=pad, bos_id=get("decoder_start_token_id", pad), eos_id=eos)
    return architecture, fields


def marian_config(cfg: TransformerConfig) -> dict[str, Any]:
    """The ``MarianConfig`` (as a dict) of our ``cfg``; MarianError naming the field Marian cannot express."""
    try:
        cfg.check_exportable("Marian")
    except ValueError as e:
        raise MarianError(str(e)) from None
    refused = {"norm_first": (cfg.norm_first, "Marian's layers are post-norm"),
               "positional": (cfg.positional != "sinusoidal", "Marian's positions are sinusoids"),
               "layer_norm_eps": (cfg.layer_norm_eps != 1e-5, "Marian's LayerNorm has eps 1e-5")}
    for name, (wrong, why) in refused.items():
        if wrong:
            raise MarianError(f"{name}={getattr(cfg, name)!r} cannot be expressed: {why}")
    activation = {"relu": "relu", "gelu": "gelu", "silu": "swish", "swish": "swish"}[cfg.activation]
    return {
        "architectures": ["MarianMTModel"], "model_type": "marian", "is_encoder_decoder": True,
        "vocab_size": cfg.src_vocab_size, "decoder_vocab_size": cfg.tgt_vocab_size,
        "share_encoder_decoder_embeddings": cfg.share_embeddings, "tie_word_embeddings": cfg.tie_output,
        "d_model": cfg.d_model, "encoder_layers": cfg.n_encoder_layers, "decoder_layers": cfg.n_decoder_layers,
        "encoder_attention_heads": cfg.n_heads, "decoder_attention_heads": cfg.n_heads,
        "encoder_ffn_dim": cfg.d_ff, "decoder_ffn_dim": cfg.d_ff, "activation_function": activation,
        "dropout": cfg.dropout, "attention_dropout": cfg.attention_dropout,
        "activation_dropout": cfg.dropout if cfg.activation_dropout is None else cfg.activation_dropout,
        "max_position_embeddings": cfg.max_positions, "scale_embedding": cfg.scale_embeddings,
        "pad_token_id": cfg.pad_id, "eos_token_id": cfg.eos_id, "decoder_start_token_id": cfg.bos_id,
        "forced_eos_token_id": cfg.eos_id, "encoder_layerdrop": 0.0, "decoder_layerdrop": 0.0,
    }


def decode_options_of(generation: dict[str, Any]) -> DecodeOptions:
    """A checkpoint's decoding defaults as ours. Hugging Face counts the decoder's start token in ``max_length``
    and ``min_length``, makes the last token EOS when ``forced_eos_token_id`` is set (we stop one token earlier
    instead, the same outputs), and normalises beam scores by length^alpha (``length_normalization="power"``)."""
    max_length = int(generation.get("max_length", 20))  # Hugging Face's default when a checkpoint says nothing
    reserved = 2 if generation.get("forced_eos_token_id") is not None else 1  # the start token, a forced EOS
    return DecodeOptions(
        beam_size=max(int(generation.get("num_beams", 1)), 1),
        length_penalty=float(generation.get("length_penalty", 1.0)),
        max_len=max(max_length - reserved, 1), min_len=max(int(generation.get("min_length", 0)) - 1, 0),
        length_normalization="power",
    )


def generation_config(cfg: TransformerConfig, decode: DecodeOptions) -> dict[str, Any]:
    """``generation_config.json`` for ``decode`` (Hugging Face normalises by length^alpha: with our "gnmt"
    normalisation, beam scores there differ)."""
    never = sorted({cfg.pad_id, cfg.bos_id})
    return {
        "decoder_start_token_id": cfg.bos_id, "eos_token_id": cfg.eos_id, "pad_token_id": cfg.pad_id,
        "forced_eos_token_id": cfg.eos_id, "bad_words_ids": [[i] for i in never], "num_beams": decode.beam_size,
        "max_length": (decode.max_len or 510) + 2, "min_length": decode.min_len + 1 if decode.min_len else 0,
        "length_penalty": decode.length_penalty,
    }


# -- weights ------------------------------------------------------------------------------------------


def weight_table(cfg: TransformerConfig) -> dict[str, tuple[str, ...]]:
    """Our parameter name -> the Marian tensor(s) it is made of (several: concatenated along the rows)."""
    table: dict[str, tuple[str, ...]] = {"output_bias": ("final_logits_bias",)}
    table["src_embed.weight"] = ("model.shared.weight",) if cfg.share_embeddings else (
        "model.encoder.embed_tokens.weight",)
    if not cfg.share_embeddings:
        table["tgt_embed.weight"] = ("model.decoder.embed_tokens.weight",)
    if not cfg.tie_output:
        table["output_weight"] = ("lm_head.weight",)
    for stack, n, layer in (("encoder", cfg.n_encoder_layers, ENCODER_LAYER),
                            ("decoder", cfg.n_decoder_layers, DECODER_LAYER)):
        for i in range(n):
            for ours, theirs in layer.items():
                table[f"{stack}.layers.{i}.{ours}"] = tuple(f"model.{stack}.layers.{i}.{t}" for t in theirs)
    return table


# Names an older checkpoint may hold beside the ones it needs: copies of tied weights, the position tables.
_TIED_COPIES = ("model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight", "lm_head.weight")
_POSITIONS = ("model.encoder.embed_positions.weight", "model.decoder.embed_positions.weight")


def _their_tensor(state: dict[str, torch.Tensor], names: tuple[str, ...], where: Path) -> torch.Tensor:
    """Our tensor from theirs: one (``final_logits_bias`` (1, V) -> (V,)), or several stacked along the rows."""
    missing = [name for name in names if name not in state]
    if missing == ["model.shared.weight"] and "model.encoder.embed_tokens.weight" in state:
        names = ("model.encoder.embed_tokens.weight",)  # how some checkpoints name the shared table
    elif missing:
        raise MarianError(f"{where}: missing tensor(s) {', '.join(missing)}")
    parts = [state[name].float() for name in names]
    return parts[0].reshape(-1) if names == ("final_logits_bias",) else torch.cat(parts, dim=0)


def our_state(state: dict[str, torch.Tensor], cfg: TransformerConfig, where: Path) -> dict[str, torch.Tensor]:
    """Our state dict (ties left to the model) from a Marian one; MarianError naming a missing, extra or
    unexpected tensor."""
    table = weight_table(cfg)
    ours = {name: _their_tensor(state, theirs, where) for name, theirs in table.items()}
    used = {name for theirs in table.values() for name in theirs} | {"model.shared.weight"}
    extra = sorted(set(state) - used - set(_TIED_COPIES) - set(_POSITIONS))
    if extra:
        raise MarianError(f"{where}: tensor(s) {', '.join(extra[:5])} have no place in a Marian model")
    for name in _POSITIONS:  # not needed (the table is computed), but must be Marian's if saved
        if name in state:
            table_ = sinusoidal_encoding(state[name].size(0), cfg.d_model, "halves")
            if state[name].shape != table_.shape or not torch.allclose(state[name].float(), table_, atol=1e-4):
                raise MarianError(f"{where}: {name} is not Marian's sinusoid table")
    return ours


def _residual_axis(name: str) -> int | None:
    """The axis of one of our tensors that runs over the d_model features of the residual stream, if any."""
    if name.endswith(("embed.weight", "output_weight", "w_qkv.weight", "w_1.weight")):
        return 1  # inputs (columns) from the residual stream
    if name.endswith(("w_o.weight", "w_o.bias", "w_2.weight", "w_2.bias", "norm.weight", "norm.bias")):
        return 0  # outputs (rows) into it
    return None


def marian_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The Marian tensors of our model (ties: the shared table once, as Hugging Face saves it).

    Marian's sinusoid table is in halves; a model with the paper's interleaved table is the same function with
    its d_model features permuted, so its residual-stream axes are permuted (``sinusoid_permutation``).
    """
    cfg = model.cfg
    state = model.state_dict()
    # halves[:, j] = interleaved[:, perm[j]]: Marian's feature j is our feature perm[j]
    perm = sinusoid_permutation(cfg.d_model, "halves" if cfg.sinusoid_layout == "interleaved" else "interleaved")
    out: dict[str, torch.Tensor] = {}
    for ours, theirs in weight_table(cfg).items():
        tensor = state[ours] if ours in state else torch.zeros(cfg.tgt_vocab_size)  # output_bias: none = zeros
        axis = _residual_axis(ours)
        tensor = tensor.detach().float() if axis is None else tensor.detach().float().index_select(axis, perm)
        if ours == "output_bias":
            tensor = tensor.reshape(1, -1)
        for name, part in zip(theirs, tensor.chunk(len(theirs), dim=0)):
            out[name] = part.contiguous()
    return out


# -- files ----------------------------------------------------------------------------------------------


def read_json(path: Path, required: bool = True) -> dict[str, Any]:
    """A JSON object from ``path`` ({} when it is absent and not ``required``); MarianError naming the file."""
    if not path.is_file():
        if required:
            raise MarianError(f"{path}: missing (a Marian checkpoint has {path.name})")
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MarianError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(value, dict):
        raise MarianError(f"{path}: expected a JSON object")
    return value


def read_state(directory: Path) -> tuple[dict[str, torch.Tensor], Path]:
    """The checkpoint's tensors: ``model.safetensors``, else ``pytorch_model.bin`` (``weights_only=True``)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    for name in WEIGHT_FILES:
        path = directory / name
        if not path.is_file():
            continue
        try:
            state = load_file(str(path)) if name.endswith(".safetensors") else torch.load(
                path, map_location="cpu", weights_only=True)
        except (SafetensorError, OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as e:
            raise MarianError(f"{path}: not readable weights, truncated or corrupted ({e})") from None
        if not isinstance(state, dict) or not all(isinstance(t, torch.Tensor) for t in state.values()):
            raise MarianError(f"{path}: not a state dict of tensors")
        return state, path
    raise MarianError(f"{directory}: no weights ({' or '.join(WEIGHT_FILES)})")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def new_directory(out: Path, force: bool) -> Iterator[Path]:
    """A temporary directory beside ``out``, renamed to ``out`` when the block ends without an error (the old
    ``out`` replaced only with ``force``); on an error nothing is left."""
    out = Path(out)
    if out.exists() and not force:
        raise FileExistsError(f"{out} already exists (use --force to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        (work / "new").mkdir()
        yield work / "new"
        if out.exists():
            os.replace(out, work / "old")
        os.replace(work / "new", out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- import and export --------------------------------------------------------------------------------


def import_marian(source: str | os.PathLike[str], run_dir: str | os.PathLike[str], force: bool = False) -> Path:
    """Write the MarianMT directory ``source`` as a run directory ``run_dir``: ``best.safetensors``, ``vocab/`` (the
    tokenizer files), ``config.toml`` (its architecture, and its decoding defaults as ``[decode]``) and
    ``import.json`` (where it came from). Nothing is written when anything is wrong.

    Raises:
        MarianError: not a Marian checkpoint, a missing or unreadable file, or an option we cannot express.
        FileExistsError: ``run_dir`` exists and not ``force``.
    """
    from ..checkpoint import save_weights
    from ..model import Transformer
    from ..run_config import RunConfig, save_config

    source = Path(source)
    if not source.is_dir():
        raise MarianError(f"{source}: no such directory")
    hf_config = read_json(source / CONFIG)
    architecture, vocabulary = architecture_of(hf_config, str(source / CONFIG))
    cfg = _checked_config(architecture, vocabulary, source)
    tokenizer = read_json(source / TOKENIZER_CONFIG, required=False)
    separate = bool(tokenizer.get("separate_vocabs", False))
    vocab_files = _check_vocabularies(source, separate, cfg)
    state, weights_file = read_state(source)
    model = Transformer(cfg).eval()
    model.load_state_dict(our_state(state, cfg, weights_file), strict=False)  # ties: the model's own
    generation = {**{k: hf_config[k] for k in ("num_beams", "max_length", "min_length", "length_penalty",
                                               "forced_eos_token_id") if k in hf_config},
                  **read_json(source / GENERATION, required=False)}
    decode = decode_options_of(generation)
    with new_directory(Path(run_dir), force) as out:
        save_weights(model, out / "best.safetensors", {"imported_from": str(source.resolve())})
        (out / "vocab").mkdir()
        for path in vocab_files:
            shutil.copyfile(path, out / "vocab" / path.name)
        save_config(RunConfig(model=architecture, decode=decode), out / "config.toml")
        provenance = {"format": "marian", "source": str(source.resolve()),
                      "files": {p.name: _sha256(p) for p in (source / CONFIG, weights_file, *vocab_files)},
                      "config": hf_config, "generation": generation}
        (out / "import.json").write_text(json.dumps(provenance, indent=2, default=str) + "\n", encoding="utf-8")
    log.info("imported %s into %s: %s", source, run_dir, decode)
    return Path(run_dir)


def _checked_config(architecture: Architecture, vocabulary: dict[str, int], source: Path) -> TransformerConfig:
    try:
        return TransformerConfig.of(architecture, **vocabulary)
    except ValueError as e:
        raise MarianError(f"{source / CONFIG}: {e}") from None


def _check_vocabularies(source: Path, separate: bool, cfg: TransformerConfig) -> list[Path]:
    """The tokenizer files, checked against the model config (sizes, special ids); MarianError naming them."""
    try:
        src_vocab, tgt_vocab = load_marian_vocabs(source, separate)
    except (FileNotFoundError, ValueError) as e:
        raise MarianError(str(e)) from None
    for side, vocab, size in (("source", src_vocab, cfg.src_vocab_size), ("target", tgt_vocab, cfg.tgt_vocab_size)):
        if len(vocab) > size:
            raise MarianError(f"{vocab.vocab_path}: {len(vocab)} ids for a {side} vocabulary of {size} (config.json)")
        for token, field, expected in (("</s>", "eos_token_id", cfg.eos_id), ("<pad>", "pad_token_id", cfg.pad_id)):
            if vocab.encoder[token] != expected:
                raise MarianError(f"{vocab.vocab_path}: {token} is id {vocab.encoder[token]}, but {CONFIG} says "
                                  f"{field}={expected}")
    names = ["source.spm", "target.spm", "vocab.json", *(["target_vocab.json"] if separate else [])]
    return [source / name for name in names] + ([source / TOKENIZER_CONFIG] if (source / TOKENIZER_CONFIG).is_file()
                                                 else [])


def export_marian(model: torch.nn.Module, src_vocab: Any, tgt_vocab: Any, out: str | os.PathLike[str],
                  decode: DecodeOptions | None = None, force: bool = False) -> Path:
    """Write ``model`` and its vocabularies as a MarianMT directory that ``MarianMTModel.from_pretrained`` and
    ``MarianTokenizer.from_pretrained`` load: ``config.json``, ``model.safetensors``, ``generation_config.json``
    (``decode``'s settings), and the tokenizer files.

    Raises:
        MarianError: naming a field of the model's config that Marian cannot express.
        FileExistsError: ``out`` exists and not ``force``.
    """
    from safetensors.torch import save_file

    cfg = model.cfg
    config = marian_config(cfg)
    tensors = marian_state(model)
    with new_directory(Path(out), force) as directory:
        (directory / CONFIG).write_text(json.dumps({**config, "dtype": "float32"}, indent=2) + "\n", encoding="utf-8")
        save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
        generation = generation_config(cfg, decode or DecodeOptions())
        (directory / GENERATION).write_text(json.dumps(generation, indent=2) + "\n", encoding="utf-8")
        _write_tokenizer(directory, src_vocab, tgt_vocab, cfg)
    return Path(out)


def _write_tokenizer(directory: Path, src_vocab: Any, tgt_vocab: Any, cfg: TransformerConfig) -> None:
    """``source.spm``, ``target.spm``, ``vocab.json`` (and ``target_vocab.json`` for separate vocabularies) and
    ``tokenizer_config.json``, from our SentencePiece vocabularies or an imported Marian run's."""
    separate = src_vocab is not tgt_vocab and not _same_mapping(src_vocab, tgt_vocab)
    shutil.copyfile(src_vocab.path, directory / "source.spm")
    shutil.copyfile(tgt_vocab.path, directory / "target.spm")
    mappings = [("vocab.json", src_vocab)] + ([("target_vocab.json", tgt_vocab)] if separate else [])
    for name, vocab in mappings:
        mapping = {vocab.id_to_piece(i): i for i in range(len(vocab))}
        (directory / name).write_text(json.dumps(mapping, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    specials = {"eos_token": tgt_vocab.id_to_piece(cfg.eos_id), "unk_token": "<unk>",
                "pad_token": tgt_vocab.id_to_piece(cfg.pad_id)}
    if cfg.bos_id != cfg.pad_id:  # our decoder's start token <s>: special, so Hugging Face leaves it out of text
        specials["bos_token"] = tgt_vocab.id_to_piece(cfg.bos_id)
    tokenizer = {"tokenizer_class": "MarianTokenizer", "separate_vocabs": separate, "model_max_length": 512,
                 **specials}
    (directory / TOKENIZER_CONFIG).write_text(json.dumps(tokenizer, indent=2) + "\n", encoding="utf-8")


def _same_mapping(a: Any, b: Any) -> bool:
    return len(a) == len(b) and all(a.id_to_piece(i) == b.id_to_piece(i) for i in range(len(a)))


def check_exportable(model: torch.nn.Module) -> None:
    """MarianError naming the first field of the model's config that Marian cannot express."""
    marian_config(model.cfg)

