"""What the benchmark feeds the models: model sizes, sentence lengths, token-bucket batches, FLOP counts.

Everything here is seeded and deterministic, so every implementation (and every memory subprocess)
sees exactly the same batches. Token ids follow our convention (pad 0, bos 1, eos 2, words >= 3);
``peers`` maps them to Marian's.

Shapes: B sentences, S padded source length, T padded target length, D d_model, F d_ff, V vocabulary.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

PAD, BOS, EOS = 0, 1, 2
MULTI30K = Path("/work/shared/data/multi30k")
MAX_LEN = 40  # Multi30k sentences are at most ~40 tokens

# d_model, heads, d_ff, layers (encoder = decoder), joint vocabulary; "toy" only exercises the machinery.
SIZES: dict[str, dict[str, int]] = {
    "toy": dict(d_model=32, n_heads=2, d_ff=64, n_layers=1, vocab=128),
    "tiny": dict(d_model=256, n_heads=4, d_ff=1024, n_layers=3, vocab=8000),
    "base": dict(d_model=512, n_heads=8, d_ff=2048, n_layers=6, vocab=32000),  # the paper's (Table 3)
}


@dataclass(frozen=True)
class Batch:
    """One training batch in our token convention."""

    src: Tensor  # (B, S) int64, right-padded with PAD, ends with EOS
    tgt_in: Tensor  # (B, T) int64: BOS y_1 .. y_{n-1}, then PAD
    tgt_out: Tensor  # (B, T) int64: y_1 .. y_{n-1} EOS, then PAD

    @property
    def target_tokens(self) -> int:
        """Real (non-pad) target tokens: what tokens/s counts, as fairseq's ``ntokens``."""
        return int((self.tgt_out != PAD).sum())


def sentence_lengths(seed: int = 0) -> tuple[list[tuple[int, int]], str]:
    """(source, target) lengths in tokens, counting the EOS; and where they came from.

    From Multi30k's train.de/train.en whitespace token counts when present (de -> en); otherwise a
    fixed seeded distribution of the same shape (mean ~13, at most 40).
    """
    de, en = MULTI30K / "train.de", MULTI30K / "train.en"
    if de.is_file() and en.is_file():
        with de.open(encoding="utf-8") as f_de, en.open(encoding="utf-8") as f_en:
            pairs = [(len(a.split()) + 1, len(b.split()) + 1) for a, b in zip(f_de, f_en)]
        pairs = [(min(s, MAX_LEN), min(t, MAX_LEN)) for s, t in pairs if s > 1 and t > 1]
        return pairs, f"whitespace token counts + 1 (EOS) of {de} / {en.name}"
    rng = random.Random(seed)
    pairs = []
    for _ in range(30000):
        t = min(MAX_LEN, max(3, round(rng.lognormvariate(2.5, 0.35))))
        s = min(MAX_LEN, max(3, round(t * rng.uniform(0.75, 1.25))))
        pairs.append((s, t))
    return pairs, "seeded log-normal lengths (Multi30k not found): mean ~13, max 40"


def _tokens(rng: torch.Generator, lengths: list[int], vocab: int, prefix: int | None, suffix: int | None) -> Tensor:
    """Random words of the given lengths (counting prefix/suffix), right-padded: -> (B, max length)."""
    out = torch.full((len(lengths), max(lengths)), PAD, dtype=torch.long)
    for i, n in enumerate(lengths):
        words = torch.randint(3, vocab - 1, (n,), generator=rng)  # vocab - 1: Marian's pad is the last id
        if prefix is not None:
            words[0] = prefix
        if suffix is not None:
            words[-1] = suffix
        out[i, :n] = words
    return out


def training_batches(vocab: int, target_tokens: int, n_batches: int, seed: int = 0) -> list[Batch]:
    """``n_batches`` token-bucket batches of about ``target_tokens`` target tokens each.

    Like fairseq's sampler: sentences sorted by target length are cut into batches whose padded
    target size (sentences x longest target) stays within ``target_tokens``; within a batch the
    sources keep their own, varied lengths (and padding). The batches taken are spread over the
    length range (short, middle, long buckets), so the mix is realistic rather than random.
    """
    pairs, _ = sentence_lengths(seed)
    rnd = random.Random(seed)
    rnd.shuffle(pairs)
    pairs.sort(key=lambda p: p[1])
    buckets: list[list[tuple[int, int]]] = [[]]
    for pair in pairs:
        if buckets[-1] and (len(buckets[-1]) + 1) * max(pair[1], buckets[-1][-1][1]) > target_tokens:
            buckets.append([])
        buckets[-1].append(pair)
    picks = [buckets[int((2 * i + 1) * len(buckets) / (2 * n_batches))] for i in range(n_batches)]
    gen = torch.Generator().manual_seed(seed)
    batches = []
    for bucket in picks:
        src = _tokens(gen, [s for s, _ in bucket], vocab, None, EOS)
        body = _tokens(gen, [t for _, t in bucket], vocab, None, EOS)  # y_1 .. y_{n-1} EOS
        tgt_in = torch.cat([torch.full((len(bucket), 1), BOS), body[:, :-1]], dim=1)
        tgt_in = tgt_in.masked_fill(tgt_in == EOS, PAD)  # the EOS shifted in past a sentence's end
        batches.append(Batch(src=src, tgt_in=tgt_in, tgt_out=body))
    return batches


def decode_sources(vocab: int, n_sentences: int, seed: int = 1) -> Tensor:
    """``n_sentences`` source sentences of realistic lengths (ending in EOS), in corpus order of a
    seeded sample, not sorted: (B, S) int64, right-padded."""
    pairs, _ = sentence_lengths(seed)
    lengths = [s for s, _ in random.Random(seed).sample(pairs, n_sentences)]
    return _tokens(torch.Generator().manual_seed(seed), lengths, vocab, None, EOS)


FLOP_FORMULA = """\
Training FLOPs of one batch = 3 x forward FLOPs (backward = 2 x forward: gradients of inputs and of weights),
counting matmuls only, 2*m*n*k each, on the model's real tokens: padding is not counted, whether or not an
implementation computes on it (model FLOPs, as MFU is usually defined). Per sentence i of s_i source and t_i
target tokens; Ns = sum s_i, Nt = sum t_i; attention over all t_i keys, the causal half not discounted:
  encoder layer: 8*Ns*D^2 (Q,K,V,O projections) + 4*sum(s_i^2)*D (scores Q.K^T and weights.V) + 4*Ns*D*F (FFN)
  decoder layer: 8*Nt*D^2 (self Q,K,V,O) + 4*sum(t_i^2)*D (self scores, sum) + 4*Nt*D^2 (cross Q,O)
                 + 4*Ns*D^2 (cross K,V) + 4*sum(t_i*s_i)*D (cross scores, sum) + 4*Nt*D*F (FFN)
  output projection: 2*Nt*D*V
  forward = N_enc * encoder layer + N_dec * decoder layer + output projection
MFU = (training FLOPs per second) / (measured float32 matmul peak, torch.matmul of n x n squares)."""


def forward_flops(s: Tensor, t: Tensor, d: int, f: int, v: int, n_enc: int, n_dec: int) -> int:
    """Matmul FLOPs of one forward pass, by ``FLOP_FORMULA``: s, t (B,) int64 real source and target lengths."""
    ns, nt = int(s.sum()), int(t.sum())
    ss, tt, ts = int((s * s).sum()), int((t * t).sum()), int((t * s).sum())
    enc = 8 * ns * d * d + 4 * ss * d + 4 * ns * d * f
    dec = 8 * nt * d * d + 4 * tt * d + 4 * nt * d * d + 4 * ns * d * d + 4 * ts * d + 4 * nt * d * f
    return n_enc * enc + n_dec * dec + 2 * nt * d * v


def training_flops(batches: list[Batch], size: dict[str, int]) -> int:
    """Matmul FLOPs of forward + backward over ``batches``, by ``FLOP_FORMULA``."""
    total = 0
    for batch in batches:
        s, t = (batch.src != PAD).sum(1), (batch.tgt_out != PAD).sum(1)
        total += 3 * forward_flops(
            s, t, size["d_model"], size["d_ff"], size["vocab"], size["n_layers"], size["n_layers"]
        )
    return total
