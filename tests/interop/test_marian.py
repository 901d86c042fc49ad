"""Marian checkpoints in and out, against Hugging Face's own implementation (``MarianMTModel``,
``MarianTokenizer``, ``generate``), on random-weight models of several variants (``conftest.VARIANTS``).

Shapes: B batch, S source length, T target length, V vocabulary.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from transformer import DecodeOptions, search
from transformer.interop.marian import MarianError, export_marian, import_marian
from transformer.run_config import load_config
from transformer.translator import Translator

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")
log = logging.getLogger(__name__)

TEXTS = ["The small dog runs.", "A red house today.", "The old cat sees the river again.", "Dog.",
         "A small red cat likes the house."]
SENTENCES = ["The red dog sees a small cat today.", "Old river.", "A house runs again.", "The cat likes the old dog.",
             "Small red house sees the river today again.", "A dog likes a cat.", "The river runs.",
             "Again the small old red dog runs today."]


@pytest.fixture(scope="module")
def imported(checkpoint, tmp_path_factory) -> Translator:
    run = import_marian(checkpoint.dir, tmp_path_factory.mktemp("run") / "run")
    return Translator.from_checkpoint(run, device="cpu")


def hf_batch(checkpoint, texts: list[str]) -> dict[str, torch.Tensor]:
    return checkpoint.tokenizer(texts, return_tensors="pt", padding=True)


def test_the_run_directory_holds_the_model_its_vocabulary_and_its_decoding_defaults(checkpoint, imported) -> None:
    run = Path(imported.src_vocab.path).parent.parent
    assert {"best.safetensors", "vocab", "config.toml", "import.json"} <= {p.name for p in run.iterdir()}
    cfg = imported.model.cfg
    assert (cfg.sinusoid_layout, cfg.scale_embeddings, cfg.output_bias) == ("halves", True, True)
    assert cfg.bos_id == cfg.pad_id == checkpoint.model.config.pad_token_id and cfg.eos_id == 0
    assert cfg.share_embeddings == (not checkpoint.separate)
    decode = load_config(run / "config.toml").decode
    # max_length 40 counts the start token and a forced EOS
    assert decode == DecodeOptions(beam_size=3, length_penalty=1.0, max_len=38, length_normalization="power")
    assert imported.decode == decode


def test_the_same_logits_as_hugging_face_on_a_padded_batch(checkpoint, imported) -> None:
    batch = hf_batch(checkpoint, TEXTS)
    pad = checkpoint.model.config.pad_token_id
    targets = checkpoint.tokenizer(text_target=["Der Hund läuft.", "Ein rotes Haus heute.", "Die alte Katze.",
                                                "Hund.", "Die kleine rote Katze sieht das Haus."],
                                   return_tensors="pt", padding=True)
    labels = targets["input_ids"]
    tgt_in = torch.cat([torch.full((labels.size(0), 1), pad), labels[:, :-1]], dim=1)  # shifted right, from <pad>
    tgt_mask = torch.cat([torch.ones(labels.size(0), 1, dtype=torch.long), targets["attention_mask"][:, :-1]], dim=1)
    with torch.no_grad():
        theirs = checkpoint.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                  decoder_input_ids=tgt_in, decoder_attention_mask=tgt_mask).logits  # (B, T, V)
        ours = imported.model(batch["input_ids"], tgt_in)
    real = tgt_mask.bool()
    assert ours.shape == theirs.shape and bool((~real).any())  # a padded batch on both sides
    torch.testing.assert_close(ours[real], theirs[real], atol=1e-4, rtol=1e-4)


def test_the_same_token_ids_and_text_as_marian_tokenizer(checkpoint, imported) -> None:
    for text in [*TEXTS, "Unseen wörds ½ here!", "  two  spaces ", "", ">>de<< The dog.", ">>nds<<A cat",
                 ">>xx<< Unknown code.", "Not >>de<< first.", ">>de<<"]:
        assert imported._source_ids(text) == checkpoint.tokenizer(text)["input_ids"], text
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        ids = torch.randint(0, len(imported.tgt_vocab), (12,), generator=generator).tolist()
        assert imported.tgt_vocab.decode(ids) == checkpoint.tokenizer.decode(ids, skip_special_tokens=True), ids


def strip(row: list[int], eos: int, pad: int) -> list[int]:
    out = []
    for token in row:
        if token == eos:
            break
        if token != pad:
            out.append(token)
    return out


def test_the_same_greedy_outputs_as_generate(checkpoint, imported) -> None:
    batch = hf_batch(checkpoint, TEXTS)
    cfg = imported.model.cfg
    with torch.no_grad():
        theirs = checkpoint.model.generate(**batch, num_beams=1, do_sample=False, max_length=21)
    ours = search(imported.model, batch["input_ids"], DecodeOptions(beam_size=1, max_len=19))  # 21: start + EOS
    for row in range(len(TEXTS)):
        mine = ours.tokens[row, 0, : int(ours.lengths[row, 0])].tolist()
        assert mine == strip(theirs[row, 1:].tolist(), cfg.eos_id, cfg.pad_id), row


def test_beam_search_scores_at_least_as_high_as_generate(checkpoint, imported) -> None:
    """Beam 4, no length normalisation on either side (both rank by the total log-probability): ours finds
    hypotheses at least as probable on every sentence, the same ones on most."""
    texts = TEXTS + ["The dog.", "A cat runs today.", "Small house."] + SENTENCES
    batch = hf_batch(checkpoint, texts)
    with torch.no_grad():
        theirs = checkpoint.model.generate(**batch, num_beams=4, do_sample=False, max_length=31, length_penalty=0.0,
                                           output_scores=True, return_dict_in_generate=True, early_stopping=True)
    ours = search(imported.model, batch["input_ids"], DecodeOptions(beam_size=4, length_penalty=0.0, max_len=29))
    cfg, same, lengths = imported.model.cfg, 0, []
    for row in range(len(texts)):
        mine = ours.tokens[row, 0, : int(ours.lengths[row, 0])].tolist()
        hf = strip(theirs.sequences[row, 1:].tolist(), cfg.eos_id, cfg.pad_id)
        assert float(ours.scores[row, 0]) >= float(theirs.sequences_scores[row]) - 1e-4, (row, mine, hf)
        same += mine == hf
        lengths.append(len(mine))
    share = same / len(texts)
    log.info("beam 4: the same hypothesis as Hugging Face on %d of %d sentences (%.0f%%); lengths %s", same,
             len(texts), 100 * share, lengths)
    assert share >= 0.5


def test_import_then_export_gives_back_what_hugging_face_loads(checkpoint, imported, tmp_path) -> None:
    from transformers import MarianMTModel, MarianTokenizer

    out = export_marian(imported.model, imported.src_vocab, imported.tgt_vocab, tmp_path / "hf", imported.decode)
    model, tokenizer = MarianMTModel.from_pretrained(out).eval(), MarianTokenizer.from_pretrained(out)
    batch = hf_batch(checkpoint, TEXTS)
    assert tokenizer(TEXTS, return_tensors="pt", padding=True)["input_ids"].tolist() == batch["input_ids"].tolist()
    tgt_in = torch.full((len(TEXTS), 1), checkpoint.model.config.pad_token_id)
    with torch.no_grad():
        original = checkpoint.model(**batch, decoder_input_ids=tgt_in).logits
        again = model(**batch, decoder_input_ids=tgt_in).logits
    torch.testing.assert_close(again, original, atol=1e-5, rtol=1e-5)
    assert model.generation_config.num_beams == 3 and model.generation_config.max_length == 40


def test_our_model_exports_to_hugging_face(tmp_path: Path, make_cfg, words) -> None:
    """A model of ours (the paper's interleaved sinusoids, our SentencePiece vocabulary with <s> as the start
    token): Hugging Face computes the same logits and decodes the same greedy outputs."""
    from transformers import MarianMTModel, MarianTokenizer

    from transformer import Transformer
    from transformer.data.vocab import Vocab

    EN, DE, sentences = words
    vocab = Vocab.train(sentences(EN, 200, 3) + sentences(DE, 200, 4), tmp_path / "vocab" / "joint", 80)
    torch.manual_seed(0)
    from transformer.demo.run import load_demo_toml, run_config

    demo = run_config(load_demo_toml()[1], []).model  # the demo's architecture: d_model 128, 4 heads, 2+2 layers
    model = Transformer(make_cfg(src_vocab_size=len(vocab), tgt_vocab_size=len(vocab), d_model=demo.d_model,
                                 n_heads=demo.n_heads, d_ff=demo.d_ff, n_encoder_layers=demo.n_encoder_layers,
                                 n_decoder_layers=demo.n_decoder_layers, share_embeddings=True,
                                 activation=demo.activation)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    out = export_marian(model, vocab, vocab, tmp_path / "hf", DecodeOptions(beam_size=1, max_len=15))
    theirs, tokenizer = MarianMTModel.from_pretrained(out).eval(), MarianTokenizer.from_pretrained(out)
    batch = tokenizer(TEXTS, return_tensors="pt", padding=True)
    src = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, 0)  # their padding is our <pad>, 0: the same
    tgt_in = torch.tensor([[1, 5, 6, 7]] * len(TEXTS))
    with torch.no_grad():
        torch.testing.assert_close(theirs(**batch, decoder_input_ids=tgt_in).logits, model(src, tgt_in),
                                   atol=1e-4, rtol=1e-4)
        generated = theirs.generate(**batch, num_beams=1, do_sample=False)
    ours = search(model, src, DecodeOptions(beam_size=1, max_len=15))
    for row in range(len(TEXTS)):
        assert ours.tokens[row, 0, : int(ours.lengths[row, 0])].tolist() == strip(generated[row, 1:].tolist(), 2, 0)
    assert tokenizer.decode(generated[0], skip_special_tokens=True) == vocab.decode(generated[0].tolist())


def test_not_a_marian_directory_and_options_we_cannot_express(checkpoint, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(checkpoint.dir, broken)
    config = json.loads((broken / "config.json").read_text())
    cases = [
        ({**config, "model_type": "bart"}, None, "model_type is 'bart'"),
        ({**config, "decoder_attention_heads": 2}, None, "differs from decoder_attention_heads=2"),
        ({**config, "activation_function": "gelu_new"}, None, "activation_function='gelu_new'"),
        (config, "source.spm", "source.spm: missing"),
        (config, "model.safetensors", "no weights"),
    ]
    for values, remove, message in cases:
        target = tmp_path / "case"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(broken, target)
        (target / "config.json").write_text(json.dumps(values))
        if remove:
            (target / remove).unlink()
        with pytest.raises(MarianError, match=message):
            import_marian(target, tmp_path / "run")
        assert not (tmp_path / "run").exists()  # nothing written
    with pytest.raises(MarianError, match="not-there: no such directory"):
        import_marian(tmp_path / "not-there", tmp_path / "run")


def test_a_model_marian_cannot_express_is_refused_naming_the_field(tmp_path: Path, make_cfg) -> None:
    from transformer import Transformer

    for changes, field in ((dict(norm_first=True), "norm_first"), (dict(positional="learned"), "positional")):
        with pytest.raises(MarianError, match=field):
            export_marian(Transformer(make_cfg(**changes)), None, None, tmp_path / "out")
        assert not (tmp_path / "out").exists()


def test_import_translate_and_export_commands(checkpoint, tmp_path: Path, capsys, monkeypatch) -> None:
    import io
    import sys

    from transformer.cli import main

    run = tmp_path / "run"
    assert main(["import", "marian", str(checkpoint.dir), str(run)]) == 0
    assert main(["import", "marian", str(checkpoint.dir), str(run)]) == 2  # it exists now
    assert "already exists" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("\n".join(TEXTS[:3]).encode("utf-8"))))
    assert main(["translate", "-c", str(run), "--device", "cpu", "--precision", "float32"]) == 0  # checkpoint's beam 3
    expected = Translator.from_checkpoint(run, device="cpu").translate(TEXTS[:3])
    assert capsys.readouterr().out.splitlines() == [nbest[0].text for nbest in expected]
    assert main(["export", str(run), str(tmp_path / "hf"), "--format", "hf", "--quantization", "int8"]) == 2
    assert "--quantization applies to --format ctranslate2 only" in capsys.readouterr().err
    assert main(["export", str(run), str(tmp_path / "hf"), "--format", "hf"]) == 0
    assert (tmp_path / "hf" / "model.safetensors").is_file() and "MarianMTModel" in capsys.readouterr().err


def test_every_command_takes_an_imported_run(checkpoint, tmp_path: Path, capsys, monkeypatch) -> None:
    """attention, evaluate, translate --int8 and the CTranslate2 export, on an imported run."""
    from transformer.cli import main

    run = import_marian(checkpoint.dir, tmp_path / "run")
    assert main(["attention", "--checkpoint", str(run), "--src", TEXTS[0], "--out", str(tmp_path / "pictures")]) == 0
    assert len(list((tmp_path / "pictures").glob("attention_*.png"))) == 3
    (tmp_path / "test.en").write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    (tmp_path / "test.de").write_text("\n".join(["Der Hund."] * len(TEXTS)) + "\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["evaluate", "-c", str(run), "--src", str(tmp_path / "test.en"), "--ref", str(tmp_path / "test.de"),
                 "--json", "--int8"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["n_sentences"] == len(TEXTS) and scores["int8"] and scores["beam_size"] == 3
    ctranslate2 = pytest.importorskip("ctranslate2", reason="ctranslate2 is not installed")
    assert main(["export", str(run), str(tmp_path / "ct2")]) == 0
    translator = Translator.from_checkpoint(run, device="cpu")
    ours = translator.translate(TEXTS, DecodeOptions(beam_size=1, max_len=20))
    pieces = [translator.src_vocab.pieces(text) for text in TEXTS]  # CTranslate2 appends the EOS (add_source_eos)
    results = ctranslate2.Translator(str(tmp_path / "ct2"), device="cpu", intra_threads=1).translate_batch(
        pieces, beam_size=1, max_decoding_length=20, suppress_sequences=[["<pad>"]])
    vocab = translator.tgt_vocab
    assert [vocab.decode([vocab.encoder[t] for t in r.hypotheses[0]]) for r in results] == [n[0].text for n in ours]


def test_an_older_checkpoint_with_pytorch_model_bin(checkpoint, imported, tmp_path: Path) -> None:
    """``pytorch_model.bin`` (loaded with ``weights_only=True``) when there is no ``model.safetensors``; the
    position tables older checkpoints save are checked and left out."""
    import shutil

    older = tmp_path / "older"
    shutil.copytree(checkpoint.dir, older)
    (older / "model.safetensors").unlink()
    state = checkpoint.model.state_dict()  # with the tied copies and the sinusoid tables
    torch.save(state, older / "pytorch_model.bin")
    model = Translator.from_checkpoint(import_marian(older, tmp_path / "run"), device="cpu").model
    for name, tensor in imported.model.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], tensor, msg=name)
    (older / "pytorch_model.bin").write_bytes(b"not a pickle")
    with pytest.raises(MarianError, match="pytorch_model.bin: not readable weights"):
        import_marian(older, tmp_path / "again")


def test_serve_answers_with_an_imported_run(checkpoint, imported) -> None:
    from fastapi.testclient import TestClient

    from transformer.serve import ServeConfig, create_app

    with TestClient(create_app(imported, ServeConfig(decode=imported.decode))) as client:
        health = client.get("/health").json()
        assert health["limits"]["beam_size"] == 3 and health["limits"]["length_normalization"] == "power"
        response = client.post("/translate", json={"texts": TEXTS[:2]})
    assert response.status_code == 200, response.text
    expected = imported.translate(TEXTS[:2])
    assert [t["text"] for t in response.json()["translations"]] == [nbest[0].text for nbest in expected]
