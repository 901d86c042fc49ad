"""Scoring translations: corpus BLEU and chrF with sacreBLEU, exact match, and translating a test set.

Scores come from sacreBLEU (Post, 2018) with its default settings, and each carries its signature so a
number can be reproduced or compared: BLEU with the ``13a`` tokenizer and exponential smoothing, chrF2
(character 6-grams, beta 2). ``bleu_lowercase`` is BLEU on lower-cased text, the comparable figure for
Multi30k papers. The paper's own BLEU (§6.1) is tokenized ``multi-bleu.perl`` on WMT; sacreBLEU's
detokenized BLEU is the reproducible stand-in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.metrics.bleu import BLEUScore

if TYPE_CHECKING:
    from .decoding import DecodeOptions
    from .translator import Translator

log = logging.getLogger(__name__)


def score_corpus(hypotheses: Sequence[str], references: Sequence[str], lowercase: bool = False) -> dict[str, Any]:
    """Corpus-level BLEU, chrF and lower-cased BLEU of ``hypotheses`` against one reference each.

    Args:
        hypotheses: one detokenized translation per sentence.
        references: the reference translation of each sentence, aligned with ``hypotheses``.
        lowercase: score ``bleu`` and ``chrf`` case-insensitively (``bleu_lowercase`` always is).

    Returns:
        ``bleu``, ``chrf``, ``bleu_lowercase`` (floats, 0..100), ``bleu_signature``, ``chrf_signature``,
        ``bleu_lowercase_signature`` (sacreBLEU signatures), ``bleu_details`` (what sacreBLEU prints after
        the BLEU score: n-gram precisions, brevity penalty, length ratio, lengths) and ``n_sentences``.

    Raises:
        ValueError: different numbers of hypotheses and references, or none at all.
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    if not hypotheses:
        raise ValueError("nothing to score: no sentences")
    hyps, refs = list(hypotheses), [list(references)]
    bleu, chrf, bleu_lc = BLEU(lowercase=lowercase), CHRF(lowercase=lowercase), BLEU(lowercase=True)
    bleu_score = bleu.corpus_score(hyps, refs)
    chrf_score = chrf.corpus_score(hyps, refs)
    bleu_lc_score = bleu_lc.corpus_score(hyps, refs)
    return {
        "bleu": bleu_score.score,
        "bleu_signature": str(bleu.get_signature()),
        "bleu_details": _bleu_details(bleu_score),
        "chrf": chrf_score.score,
        "chrf_signature": str(chrf.get_signature()),
        "bleu_lowercase": bleu_lc_score.score,
        "bleu_lowercase_signature": str(bleu_lc.get_signature()),
        "n_sentences": len(hyps),
    }


def _bleu_details(score: BLEUScore) -> str:
    """``"65.4/40.1/28.0/19.9 (BP = 1.000 ratio = 1.012 hyp_len = 1234 ref_len = 1220)"``, as sacreBLEU prints it."""
    precisions = "/".join(f"{p:.1f}" for p in score.precisions)
    ratio = score.sys_len / score.ref_len if score.ref_len else 0.0
    return f"{precisions} (BP = {score.bp:.3f} ratio = {ratio:.3f} hyp_len = {score.sys_len} ref_len = {score.ref_len})"


def exact_match(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Fraction (0..1) of hypotheses equal to their reference, after stripping surrounding whitespace."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    if not hypotheses:
        raise ValueError("nothing to score: no sentences")
    return sum(h.strip() == r.strip() for h, r in zip(hypotheses, references)) / len(hypotheses)


@dataclass(frozen=True)
class Evaluation:
    """A test set translated and scored.

    Attributes:
        hypotheses: the best translation of each source line ("" for a blank line).
        scores: :func:`score_corpus`'s dict plus ``exact_match`` (0..1), ``beam_size``, ``length_penalty``,
            ``seconds`` (translation time) and ``sentences_per_s``.
    """

    hypotheses: list[str]
    scores: dict[str, Any]


def evaluate(
    translator: Translator,
    sources: Sequence[str],
    references: Sequence[str],
    options: DecodeOptions | None = None,
    lowercase: bool = False,
) -> Evaluation:
    """Translate ``sources`` (the best hypothesis; ``options``: the translator's when None) and score them
    against ``references``.

    Raises:
        ValueError: different numbers of sources and references, or none at all.
    """
    if len(sources) != len(references):
        raise ValueError(f"{len(sources)} source sentences but {len(references)} references")
    options = options or translator.decode
    started = time.perf_counter()
    nbest = translator.translate_lines(sources, options)
    seconds = time.perf_counter() - started
    hypotheses = [results[0].text if results else "" for results in nbest]
    scores = score_corpus(hypotheses, references, lowercase=lowercase)
    scores.update(
        exact_match=exact_match(hypotheses, references),
        beam_size=options.beam_size,
        length_penalty=options.length_penalty,
        seconds=seconds,
        sentences_per_s=len(sources) / seconds if seconds > 0 else float("inf"),
    )
    log.debug("translated %d sentences in %.2f s", len(sources), seconds)
    return Evaluation(hypotheses, scores)
