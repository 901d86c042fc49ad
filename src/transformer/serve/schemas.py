"""The service's settings (``ServeConfig``) and its JSON bodies (pydantic models, shown in the OpenAPI docs).

(No ``from __future__ import annotations``: the request model is built inside a function, with this server's
limits as its constraints, and pydantic and FastAPI read its annotations at run time.)
"""

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..decoding import DecodeOptions
from ..decoding.length_penalty import LENGTH_NORMALIZATIONS

MAX_LENGTH_PENALTY = 10.0
CHARS_PER_TOKEN = 64  # texts over CHARS_PER_TOKEN * max_text_tokens characters are refused before tokenizing


@dataclass(frozen=True)
class ServeConfig:
    """Limits and defaults of the service (the ``transformer serve`` options)."""

    max_batch_size: int = 32  # most texts decoded together
    max_wait_ms: float = 5.0  # longest a text waits for others to join its batch
    max_queue: int = 256  # most texts waiting; more -> 503
    max_text_tokens: int = 256  # most source subword tokens per text; more -> 422
    max_texts: int = 64  # most texts per request; more -> 422
    timeout_s: float = 30.0  # a request unanswered after this long -> 504
    max_beam_size: int = 16  # the largest beam (and n-best) a request may ask for
    max_attention_weights: int = 250_000  # most attention weights POST /attention answers for one text
    decode: DecodeOptions = field(default_factory=DecodeOptions)  # when a request names no option

    def __post_init__(self) -> None:
        problems = [
            f"{name}={getattr(self, name)} must be >= 1"
            for name in (
                "max_batch_size", "max_queue", "max_text_tokens", "max_texts", "max_beam_size", "max_attention_weights"
            )
            if getattr(self, name) < 1
        ]
        if self.max_wait_ms < 0:
            problems.append(f"max_wait_ms={self.max_wait_ms} must be >= 0")
        if not self.timeout_s > 0:
            problems.append(f"timeout_s={self.timeout_s} must be > 0")
        if self.max_texts > self.max_queue:
            problems.append(f"max_texts={self.max_texts} must be <= max_queue={self.max_queue}")
        if self.decode.beam_size > self.max_beam_size:
            problems.append(f"beam_size={self.decode.beam_size} must be <= max_beam_size={self.max_beam_size}")
        if self.decode.length_penalty > MAX_LENGTH_PENALTY:
            problems.append(f"length_penalty={self.decode.length_penalty} must be in [0, {MAX_LENGTH_PENALTY}]")
        if problems:
            raise ValueError("invalid ServeConfig: " + "; ".join(problems))

    @property
    def max_text_chars(self) -> int:
        """Texts longer than this are refused before tokenizing (no subword is this long on average)."""
        return CHARS_PER_TOKEN * self.max_text_tokens

    def limits(self) -> dict[str, int | float | str | None]:
        """Every limit and default, flat (the decoding defaults by their field names), for /health."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "decode"}
        return {**values, **dataclasses.asdict(self.decode)}


class Hypothesis(BaseModel):
    text: str = Field(description="The translation.")
    score: float | None = Field(
        description="log P(translation | source) / lp(length) (the request's `length_normalization`); higher is "
        "better. "
        "Null in the unlikely case it is not finite."
    )


class TranslationResult(BaseModel):
    text: str = Field(description="The best translation.")
    score: float | None = Field(description="Score of the best translation (see `n_best[].score`).")
    n_best: list[Hypothesis] | None = Field(
        None, description="The `n_best` best translations, best first; only present when `n_best` > 1."
    )


class TranslateResponse(BaseModel):
    translations: list[TranslationResult] = Field(description="One result per input text, in input order.")


class HealthResponse(BaseModel):
    status: str = Field(description="`ok` while the translation worker runs, else `unavailable`.")
    model_loaded: bool
    device: str
    precision: str = Field(description="The linear layers' precision: float32, int8 or bfloat16 (`--precision`).")
    queue_depth: int = Field(description="Texts waiting for a batch.")
    in_flight: int = Field(description="Texts being decoded now.")
    requests: int = Field(description="Translation requests queued since start.")
    texts_translated: int
    batches: int = Field(description="Batches decoded since start; fewer than texts when batching works.")
    largest_batch: int
    rejected: int = Field(description="Requests refused with 503 because the queue was full.")
    timeouts: int = Field(description="Requests answered with 504.")
    limits: dict[str, int | float | str | None] = Field(description="The server's configured limits and defaults.")


# The decoding options a request may set, with this server's limits in their constraints (shared by the
# requests of /translate and /attention, so both check them alike).


def _beam_size_field(cfg: ServeConfig) -> Any:
    return Field(
        None,
        ge=1,
        le=cfg.max_beam_size,
        strict=True,
        description=f"Beam width; 1 = greedy decoding. Default {cfg.decode.beam_size}.",
    )


def _length_penalty_field(cfg: ServeConfig) -> Any:
    return Field(
        None,
        ge=0.0,
        le=MAX_LENGTH_PENALTY,
        allow_inf_nan=False,
        description=f"Length penalty alpha for beam search. Default {cfg.decode.length_penalty}.",
    )


def _length_normalization_field(cfg: ServeConfig) -> Any:
    return Field(
        None,
        description="lp(length): `gnmt`, ((5 + length) / 6)^alpha (the paper's), or `power`, length^alpha "
        f"(Hugging Face's). Default {cfg.decode.length_normalization}.",
    )


def request_model(cfg: ServeConfig) -> type[BaseModel]:
    """The POST /translate body, with this server's limits in its constraints and OpenAPI schema."""

    class TranslateRequest(BaseModel):
        model_config = ConfigDict(
            extra="forbid",
            json_schema_extra={
                "examples": [{"text": "Ein kleiner Test."}, {"texts": ["Hallo Welt.", "Danke."], "n_best": 2}]
            },
        )

        text: str | None = Field(
            None,
            description=f"One text to translate (give `text` or `texts`). At most {cfg.max_text_tokens} source tokens.",
        )
        texts: list[str] | None = Field(
            None,
            min_length=1,
            max_length=cfg.max_texts,
            description=f"Several texts, translated together (1 to {cfg.max_texts}); "
            f"each at most {cfg.max_text_tokens} source tokens.",
        )
        beam_size: int | None = _beam_size_field(cfg)
        n_best: int = Field(
            1, ge=1, le=cfg.max_beam_size, strict=True, description="Translations returned per text (<= beam_size)."
        )
        length_penalty: float | None = _length_penalty_field(cfg)
        length_normalization: Literal[LENGTH_NORMALIZATIONS] | None = (  # type: ignore[valid-type]
            _length_normalization_field(cfg)
        )

    return TranslateRequest


def attention_request_model(cfg: ServeConfig) -> type[BaseModel]:
    """The POST /attention body: one text and the decoding options of /translate (its n-best is always 1)."""

    class AttentionRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"text": "twenty-one"}]})

        text: str = Field(
            description=f"The text to translate and look into. At most {cfg.max_text_tokens} source tokens; its "
            f"attention weights, at most {cfg.max_attention_weights} numbers (see the response).",
        )
        beam_size: int | None = _beam_size_field(cfg)
        length_penalty: float | None = _length_penalty_field(cfg)
        length_normalization: Literal[LENGTH_NORMALIZATIONS] | None = (  # type: ignore[valid-type]
            _length_normalization_field(cfg)
        )

    return AttentionRequest


Weights = list[list[list[list[float]]]]  # [layer][head][query][key]


class AttentionWeights(BaseModel):
    """Every attention weight of the translation, indexed ``[layer][head][query][key]``; each query's
    weights over the keys sum to 1."""

    encoder: Weights = Field(
        description="Encoder self-attention: queries and keys are both `source_tokens`."
    )
    decoder: Weights = Field(
        description="Decoder masked self-attention: queries and keys are both `target_tokens` (the decoder "
        "input); a query never sees a later key, so `[l][h][i][j]` is exactly 0 for j > i."
    )
    cross: Weights = Field(
        description="Encoder-decoder attention (the alignment): query i is the decoder position that writes "
        "`output_tokens[i]`, keys are `source_tokens`."
    )


class AttentionResponse(BaseModel):
    translation: str = Field(description="The best translation (the one /translate gives with these options).")
    source_tokens: list[str] = Field(description="The source subwords and the end-of-sentence token `</s>`.")
    target_tokens: list[str] = Field(
        description="The decoder input: `<s>` and the translation's subwords, one per decoder position."
    )
    output_tokens: list[str] = Field(
        description="What each decoder position writes: the translation's subwords and `</s>`."
    )
    encoder_layers: int = Field(description="Layers of `weights.encoder`.")
    decoder_layers: int = Field(description="Layers of `weights.decoder` and `weights.cross`.")
    heads: int = Field(description="Heads of every layer.")
    weight_count: int = Field(description="How many numbers `weights` holds (at most the server's limit, "
                              "`max_attention_weights` in /health).")
    weights: AttentionWeights
