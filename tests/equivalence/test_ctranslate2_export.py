"""Our model exported to CTranslate2 computes what ours does: CTranslate2's C++ engine is an independent
implementation of the same architecture, so agreement checks both the export and our model's layout.

Checked on random weights, in float32, across the architecture options: the log-probability of given
targets (``score_batch``, teacher-forced) to float tolerance, and greedy translations token for token.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from transformer import DecodeOptions, Transformer, TransformerConfig, search
from transformer.interop.ctranslate2 import ctranslate2_spec, export_ctranslate2

ctranslate2 = pytest.importorskip("ctranslate2", reason="ctranslate2 is not installed (pip install '.[export]')")

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
VOCAB = 40
TOKENS = SPECIALS + [f"w{i}" for i in range(VOCAB - len(SPECIALS))]

VARIANTS = {
    "post-norm relu": dict(),
    "pre-norm gelu shared": dict(norm_first=True, activation="gelu", share_embeddings=True),
    "learned positions, untied output, silu": dict(positional="learned", tie_output=False, activation="silu"),
    "3+1 layers, eps 1e-6": dict(n_encoder_layers=3, n_decoder_layers=1, layer_norm_eps=1e-6),
    "Marian's: halves, unscaled, logits bias, swish": dict(sinusoid_layout="halves", scale_embeddings=False,
                                                           output_bias=True, activation="swish"),
}

SOURCES = [[5, 6, 7, 8, 9, 10], [11, 12], [13, 14, 15, 16]]
TARGETS = [[20, 21, 22], [23, 24, 25, 26, 27], [28]]


def random_model(**overrides) -> Transformer:
    """Random weights with a spread, so that every tensor (biases, norms) matters to the output."""
    options = dict(d_model=32, n_heads=4, d_ff=64, n_encoder_layers=2, n_decoder_layers=2, dropout=0.0)
    cfg = TransformerConfig(src_vocab_size=VOCAB, tgt_vocab_size=VOCAB, **{**options, **overrides})
    model = Transformer(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
        if model.output_bias is not None:
            model.output_bias.normal_()
    return model


def convert(model: Transformer, out: Path, quantization: str | None = None) -> ctranslate2.Translator:
    spec = ctranslate2_spec(model, TOKENS, TOKENS, max_positions=64)

    class Converter(ctranslate2.converters.Converter):
        def _load(self):
            return spec

    Converter().convert(str(out), quantization=quantization)
    return ctranslate2.Translator(str(out), device="cpu", intra_threads=1)


def our_log_probs(model: Transformer, src: list[int], tgt: list[int]) -> torch.Tensor:
    """log P(tgt_t | tgt_<t, src) for each target token and the final EOS: (len(tgt) + 1,)."""
    cfg = model.cfg
    with torch.no_grad():
        logits = model(torch.tensor([src + [cfg.eos_id]]), torch.tensor([[cfg.bos_id, *tgt]]))[0]
    gold = torch.tensor([*tgt, cfg.eos_id])
    return logits.log_softmax(-1)[torch.arange(len(gold)), gold]


def words(ids: list[int]) -> list[str]:
    return [TOKENS[i] for i in ids]


@pytest.mark.parametrize("variant", VARIANTS)
def test_exported_model_scores_targets_as_ours(variant: str, tmp_path: Path) -> None:
    model = random_model(**VARIANTS[variant])
    translator = convert(model, tmp_path / "ct2")
    results = translator.score_batch([words(s) for s in SOURCES], [words(t) for t in TARGETS])
    for src, tgt, result in zip(SOURCES, TARGETS, results, strict=True):
        assert result.tokens == [*words(tgt), "</s>"]
        torch.testing.assert_close(torch.tensor(result.log_probs), our_log_probs(model, src, tgt),
                                   atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_exported_model_decodes_greedily_as_ours(variant: str, tmp_path: Path) -> None:
    model = random_model(**VARIANTS[variant])
    translator = convert(model, tmp_path / "ct2")
    theirs = translator.translate_batch([words(s) for s in SOURCES], beam_size=1, max_decoding_length=12,
                                        suppress_sequences=[["<s>"], ["<pad>"]])
    padded = torch.zeros(len(SOURCES), 7, dtype=torch.long)
    for i, s in enumerate(SOURCES):
        padded[i, : len(s) + 1] = torch.tensor([*s, model.cfg.eos_id])
    with torch.no_grad():
        ours = search(model, padded, DecodeOptions(beam_size=1, max_len=12))
    for row, (result, n) in enumerate(zip(theirs, ours.lengths[:, 0].tolist(), strict=True)):
        assert result.hypotheses[0] == words(ours.tokens[row, 0, :n].tolist())


def test_int8_export_is_smaller_and_close(tmp_path: Path) -> None:
    model = random_model()
    fp32 = convert(model, tmp_path / "fp32")
    int8 = convert(model, tmp_path / "int8", quantization="int8")
    size = {name: os.path.getsize(tmp_path / name / "model.bin") for name in ("fp32", "int8")}
    assert size["int8"] < 0.5 * size["fp32"]
    src, tgt = [words(s) for s in SOURCES], [words(t) for t in TARGETS]
    for a, b in zip(fp32.score_batch(src, tgt), int8.score_batch(src, tgt), strict=True):
        # int8 weights: per-row scales, about 2 significant digits; log-probs stay within a few hundredths.
        assert max(abs(x - y) for x, y in zip(a.log_probs, b.log_probs, strict=True)) < 0.15


class FakeVocab:
    """The two things the export needs of a SentencePiece vocabulary: its pieces and its model file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.write_bytes(b"not a real sentencepiece model; the export copies it as it is")

    def id_to_piece(self, i: int) -> str:
        return TOKENS[i]

    def __len__(self) -> int:
        return VOCAB


def test_export_writes_the_directory_atomically_and_refuses_to_overwrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = random_model()
    vocab = FakeVocab(tmp_path / "joint.model")
    out = tmp_path / "exported"
    assert export_ctranslate2(model, vocab, vocab, out) == out
    files = {p.name for p in out.iterdir()}
    assert {"config.json", "model.bin", "joint.model", "shared_vocabulary.json"} <= files, files
    assert (out / "joint.model").read_bytes() == vocab.path.read_bytes()
    with pytest.raises(FileExistsError, match="exported already exists"):
        export_ctranslate2(model, vocab, vocab, out)

    # A save that dies half-way leaves the old directory as it was, and no temporaries.
    def save_half(spec, output_dir: str) -> None:
        Path(output_dir, "model.bin").write_bytes(b"partial")
        raise OSError("disk full")

    before = (out / "model.bin").read_bytes()
    with monkeypatch.context() as patch:
        patch.setattr(ctranslate2.specs.TransformerSpec, "save", save_half)
        with pytest.raises(OSError, match="disk full"):
            export_ctranslate2(random_model(), vocab, vocab, out, force=True)
    assert (out / "model.bin").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exported", "joint.model"]

    export_ctranslate2(random_model(), vocab, vocab, out, force=True)
    assert (out / "model.bin").read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exported", "joint.model"]


def test_export_rejects_bad_options(tmp_path: Path) -> None:
    learned = random_model(positional="learned", max_positions=32)
    with pytest.raises(ValueError, match="max_positions=64 is past the model's learned table of 32"):
        ctranslate2_spec(learned, TOKENS, TOKENS, max_positions=64)
    vocab = FakeVocab(tmp_path / "joint.model")
    with pytest.raises(ValueError, match="quantization='int4'"):
        export_ctranslate2(learned, vocab, vocab, tmp_path / "out", quantization="int4")
    short = [*TOKENS[:-1]]
    with pytest.raises(ValueError, match="vocabulary sizes 39/40"):
        ctranslate2_spec(learned, short, TOKENS, max_positions=16)
    assert not (tmp_path / "out").exists()
