"""The models the benchmark builds at a size of ``workload.SIZES``, and ``Impl``, one entry of a part's
implementations.

Each part keeps a dict of implementations, label -> ``Impl`` (``bench_train.TRAINERS``,
``bench_decode.DECODERS``), so adding one is adding one entry. The label is the report's row name; the family
is the ``--impls`` name that selects the entry ("ours" runs always: every ratio is against ours); ``needs``
lists the optional packages it cannot run without (transformers, ctranslate2); ``build`` makes it ready to
time, from arguments that depend on the part. ``select`` picks a part's entries and says why any of those
asked for cannot run.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch

import peers
from transformer import Transformer, TransformerConfig

ALWAYS = "ours"  # the family that runs whatever --impls says


@dataclass(frozen=True)
class Impl:
    """One implementation of a part: its row ``label``, its ``--impls`` ``family``, the optional packages it
    ``needs``, and ``build``, which makes it ready to time (see the part's module for its arguments);
    ``unavailable``: why this machine cannot run it, or None (checked with ``needs``)."""

    label: str
    family: str
    build: Callable[..., Any]
    needs: tuple[str, ...] = ()
    unavailable: Callable[[], str | None] = lambda: None


def select(impls: dict[str, Impl], families: Iterable[str]) -> tuple[list[Impl], dict[str, str]]:
    """The entries of ``impls`` in ``families`` (and ours), in the dict's order; and label -> why, for those
    entries of the asked-for families that need a package which is not installed."""
    families = set(families) | {ALWAYS}
    chosen, skipped = [], {}
    for impl in impls.values():
        if impl.family not in families:
            continue
        missing = [f"{name} is not installed" for name in impl.needs if importlib.util.find_spec(name) is None]
        missing += [why] if (why := impl.unavailable()) else []
        if missing:
            skipped[impl.label] = "; ".join(missing)
        else:
            chosen.append(impl)
    return chosen, skipped


def quiet_transformers() -> None:
    """Hugging Face's warnings off (random weights, no tokenizer files), when transformers is installed."""
    if importlib.util.find_spec("transformers") is not None:
        import transformers

        transformers.logging.set_verbosity_error()


def build_ours(size: dict[str, int]) -> Transformer:
    cfg = TransformerConfig(
        src_vocab_size=size["vocab"], tgt_vocab_size=size["vocab"], d_model=size["d_model"],
        n_heads=size["n_heads"], d_ff=size["d_ff"], n_encoder_layers=size["n_layers"],
        n_decoder_layers=size["n_layers"], dropout=0.1, share_embeddings=True,
    )
    return Transformer(cfg)


def build_nn(size: dict[str, int]) -> peers.TorchTransformerPeer:
    return peers.TorchTransformerPeer(size["vocab"], size["d_model"], size["n_heads"], size["d_ff"], size["n_layers"])


def build_marian(size: dict[str, int]):
    """A random-weight ``MarianMTModel`` (needs transformers)."""
    return peers.build_marian(size["vocab"], size["d_model"], size["n_heads"], size["d_ff"], size["n_layers"])


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
