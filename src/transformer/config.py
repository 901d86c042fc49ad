"""The model's configuration: ``Architecture`` (its shape and choices) and ``TransformerConfig`` (an architecture
for given vocabularies: everything needed to rebuild a model), with the paper's presets (Table 3).

A run config's ``[model]`` section is an ``Architecture``; training adds the vocabulary's sizes and special ids.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

# Activations of the feed-forward network by name (``transformer.feed_forward`` maps them to functions).
ACTIVATIONS = ("relu", "gelu", "silu", "swish")  # relu is the paper's; swish with beta = 1 is silu
POSITIONAL_KINDS = ("sinusoidal", "learned", "none")  # "none": an ablation (transformer.experiments)
NORMS = ("layer", "rms", "batch", "none")  # the paper's LayerNorm; the others are ablations
# The switches the experiments turn (transformer.experiments), and the paper's value of each: off the paper's
# value, a model is an ablation, which trains and is measured but is not exported.
ABLATIONS: dict[str, Any] = {"norm": "layer", "scale_attention": True, "residual": True, "causal_mask": True,
                             "feed_forward": True}
SINUSOID_LAYOUTS = ("interleaved", "halves")  # the paper's; Marian's and fairseq's (sines first, then cosines)

# Table 3 of the paper; "tiny" is ours, for CPU work and tests.
PRESETS: dict[str, dict[str, Any]] = {
    "base": dict(d_model=512, n_heads=8, d_ff=2048, n_encoder_layers=6, n_decoder_layers=6, dropout=0.1),
    "big": dict(d_model=1024, n_heads=16, d_ff=4096, n_encoder_layers=6, n_decoder_layers=6, dropout=0.3),
    "tiny": dict(d_model=256, n_heads=4, d_ff=1024, n_encoder_layers=3, n_decoder_layers=3, dropout=0.1),
}


@dataclass(frozen=True, kw_only=True)
class Architecture:
    """Everything about a model but its vocabularies. Defaults are the paper's base model."""

    d_model: int = 512
    n_heads: int = 8
    d_ff: int = 2048
    n_encoder_layers: int = 6
    n_decoder_layers: int = 6
    dropout: float = 0.1
    attention_dropout: float = 0.0  # the paper has none; tensor2tensor and nn.Transformer do
    activation_dropout: float | None = None  # inside the FFN, after the activation; None: same as dropout
    share_embeddings: bool = False  # one table for source and target (joint vocabulary, §3.4)
    tie_output: bool = True  # pre-softmax projection = target embedding (§3.4)
    norm_first: bool = False  # False: post-norm LayerNorm(x + Sublayer(x)), the paper's
    activation: str = "relu"
    positional: str = "sinusoidal"  # or "learned"
    sinusoid_layout: str = "interleaved"  # the paper's; "halves": the sines in the first half of the dimensions
    max_positions: int = 1024  # size of the learned table; the sinusoidal one grows on demand
    layer_norm_eps: float = 1e-5
    scale_embeddings: bool = True  # E[x] * sqrt(d_model) (§3.4); Marian models may leave it out
    output_bias: bool = False  # a bias added to the logits (the paper has none; Marian's final_logits_bias)
    # Ablations (transformer.experiments), the paper's choice the default:
    norm: str = "layer"  # each sublayer's normalisation: "layer" (§3.1), "rms", "batch" (batch and positions), "none"
    scale_attention: bool = True  # softmax(QK^T / sqrt(d_k)); False: softmax(QK^T) (§3.2.1)
    residual: bool = True  # x + Sublayer(x) (§3.1); False: Sublayer(x) alone
    causal_mask: bool = True  # the decoder's self-attention sees positions <= t (§3.2.3); False: training only
    feed_forward: bool = True  # the position-wise feed-forward sublayer (§3.3); False: attention only

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError(f"invalid {type(self).__name__}: " + "; ".join(problems))

    def problems(self) -> list[str]:
        """What is wrong with these values, one sentence each naming the field (none: they are valid)."""
        problems = []
        for name in ("d_model", "n_heads", "d_ff", "max_positions"):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} must be >= 1")
        for name in ("n_encoder_layers", "n_decoder_layers"):
            if getattr(self, name) < 0:
                problems.append(f"{name}={getattr(self, name)} must be >= 0")
        if self.n_heads >= 1 and self.d_model % self.n_heads:
            problems.append(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        for name in ("dropout", "attention_dropout", "activation_dropout"):
            if getattr(self, name) is not None and not 0.0 <= getattr(self, name) < 1.0:
                problems.append(f"{name}={getattr(self, name)} must be in [0, 1)")
        if self.activation not in ACTIVATIONS:
            problems.append(f"activation={self.activation!r} must be one of {sorted(ACTIVATIONS)}")
        if self.positional not in POSITIONAL_KINDS:
            problems.append(f"positional={self.positional!r} must be one of {', '.join(POSITIONAL_KINDS)}")
        if self.norm not in NORMS:
            problems.append(f"norm={self.norm!r} must be one of {', '.join(NORMS)}")
        if self.sinusoid_layout not in SINUSOID_LAYOUTS:
            problems.append(f"sinusoid_layout={self.sinusoid_layout!r} must be 'interleaved' or 'halves'")
        return problems

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def ablations(self) -> dict[str, Any]:
        """The ablation switches set off the paper's choice (``ABLATIONS``, and ``positional="none"``), by name."""
        changed = {name: getattr(self, name) for name, paper in ABLATIONS.items() if getattr(self, name) != paper}
        return {**changed, **({"positional": "none"} if self.positional == "none" else {})}

    def check_exportable(self, to: str) -> None:
        """ValueError naming the first ablation switch that is set: another system (``to``) has no such model."""
        for name, value in self.ablations().items():
            raise ValueError(f"{name}={value!r} cannot be exported to {to}: an ablation (transformer.experiments), "
                             "not a model other systems run")


@dataclass(frozen=True, kw_only=True)
class TransformerConfig(Architecture):
    """An ``Architecture`` for vocabularies of these sizes and special ids: everything needed to rebuild a model."""

    src_vocab_size: int
    tgt_vocab_size: int
    pad_id: int = 0
    bos_id: int = 1  # the decoder's start token; may be pad_id (Marian starts decoding from <pad>)
    eos_id: int = 2

    def problems(self) -> list[str]:
        problems = super().problems()
        for name in ("src_vocab_size", "tgt_vocab_size"):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} must be >= 1")
        if self.share_embeddings and self.src_vocab_size != self.tgt_vocab_size:
            problems.append(
                f"share_embeddings needs equal vocabularies, got src_vocab_size={self.src_vocab_size} "
                f"and tgt_vocab_size={self.tgt_vocab_size}"
            )
        for name in ("pad_id", "bos_id", "eos_id"):
            value = getattr(self, name)
            if not 0 <= value < min(self.src_vocab_size, self.tgt_vocab_size):
                problems.append(f"{name}={value} is outside the vocabulary")
        if self.eos_id in (self.pad_id, self.bos_id):
            problems.append(f"eos_id={self.eos_id} must differ from pad_id={self.pad_id} and bos_id={self.bos_id}")
        return problems

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> TransformerConfig:
        """``TransformerConfig.preset("base", src_vocab_size=37000, tgt_vocab_size=37000)``."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}: choose one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    @classmethod
    def of(cls, architecture: Architecture, **vocabulary: int) -> TransformerConfig:
        """``architecture`` with the vocabulary's fields (``src_vocab_size``, ``tgt_vocab_size``, special ids)."""
        return cls(**architecture.to_dict(), **vocabulary)

    @property
    def architecture(self) -> Architecture:
        """This config without its vocabulary."""
        names = {f.name for f in dataclasses.fields(Architecture)}
        return Architecture(**{k: v for k, v in self.to_dict().items() if k in names})

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TransformerConfig:
        """Rebuild from ``to_dict()``; unknown keys are an error that names them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown TransformerConfig field(s): {', '.join(unknown)}")
        return cls(**values)
