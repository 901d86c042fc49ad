"""Fine-tuning an imported Marian model with our trainer: ``prepare --vocab-from RUN`` encodes a corpus with its
vocabulary, ``train --init-from RUN`` starts from its weights; the result still goes back to Hugging Face."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from transformer.cli import main
from transformer.interop.marian import export_marian, import_marian
from transformer.run_dir import load_model
from transformer.training.metrics import read_metrics
from transformer.translator import Translator

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


@pytest.fixture(scope="module")
def imported_run(make_checkpoint, tmp_path_factory) -> tuple[Path, object]:
    checkpoint = make_checkpoint(separate=False, activation="swish", layers=1, logits_bias=True)
    return import_marian(checkpoint.dir, tmp_path_factory.mktemp("imported") / "run"), checkpoint


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, words) -> Path:
    """200 training and 20 validation pairs: English words -> German words, word for word (a task to learn)."""
    en_words, de_words, _ = words
    lexicon = dict(zip(en_words, de_words))
    directory = tmp_path_factory.mktemp("corpus")
    generator = torch.Generator().manual_seed(0)
    for split, n in (("train", 200), ("valid", 20)):
        src, tgt = [], []
        for _ in range(n):
            picks = torch.randint(0, len(en_words), (int(torch.randint(2, 6, (1,), generator=generator)),),
                                  generator=generator).tolist()
            src.append(" ".join(en_words[i] for i in picks))
            tgt.append(" ".join(lexicon[en_words[i]] for i in picks))
        (directory / f"{split}.en").write_text("\n".join(src) + "\n", encoding="utf-8")
        (directory / f"{split}.de").write_text("\n".join(tgt) + "\n", encoding="utf-8")
    return directory


def prepare_and_train(corpus: Path, init: Path, out: Path, *sets: str) -> int:
    data = out / "data"
    assert main(["prepare", "--train-src", str(corpus / "train.en"), "--train-tgt", str(corpus / "train.de"),
                 "--valid-src", str(corpus / "valid.en"), "--valid-tgt", str(corpus / "valid.de"), "--out", str(data),
                 "--vocab-from", str(init)]) == 0
    settings = ["train.device='cpu'", "train.threads=1", "train.warmup=5", "train.log_every=1", "train.eval_every=100",
                "train.save_every=100", "train.valid_bleu_sentences=0", "data.max_tokens=400", *sets]
    return main(["train", "--data", str(data), "--run-dir", str(out / "run"), "--init-from", str(init),
                 *[item for s in settings for item in ("--set", s)]])


def test_prepare_encodes_with_the_runs_vocabulary(imported_run, corpus, tmp_path) -> None:
    run, checkpoint = imported_run
    assert main(["prepare", "--train-src", str(corpus / "train.en"), "--train-tgt", str(corpus / "train.de"),
                 "--out", str(tmp_path / "data"), "--vocab-from", str(run)]) == 0
    manifest = json.loads((tmp_path / "data" / "prepare.json").read_text())
    assert manifest["vocab_from"] == str(run.resolve()) and manifest["joint"]
    from transformer.data import EncodedCorpus

    first = (corpus / "train.en").read_text(encoding="utf-8").splitlines()[0]
    src, tgt = EncodedCorpus.load(tmp_path / "data", "train").pair(0)
    assert src + [0] == checkpoint.tokenizer(first)["input_ids"]  # Marian's ids, EOS appended by the model's input


def test_the_run_starts_from_the_imported_weights(imported_run, corpus, tmp_path) -> None:
    run, _ = imported_run
    assert prepare_and_train(corpus, run, tmp_path, "train.max_steps=1", "train.lr_scale=1e-9") == 0
    before, _ = load_model(run)
    after, meta = load_model(tmp_path / "run")
    assert after.cfg == before.cfg and meta["step"] == 1
    for (name, a), b in zip(after.state_dict().items(), before.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=name)  # one step at a learning rate of ~0


def test_fine_tuning_lowers_the_loss_and_the_result_goes_back_to_hugging_face(imported_run, corpus, tmp_path,
                                                                              caplog) -> None:
    from transformers import MarianMTModel

    run, checkpoint = imported_run
    assert prepare_and_train(corpus, run, tmp_path, "train.max_steps=40", "train.lr_scale=0.05",
                             "model.dropout=0.0", "model.d_model=64") == 0
    assert "model.d_model=64 would not fit the weights" in caplog.text  # warned, and the model kept its 32
    losses = [r["loss"] for r in read_metrics(tmp_path / "run") if "loss" in r]
    assert len(losses) == 40 and sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5, losses
    tuned = Translator.from_checkpoint(tmp_path / "run", device="cpu")
    assert tuned.model.cfg.d_model == 32 and tuned.model.cfg.dropout == 0.0
    out = export_marian(tuned.model, tuned.src_vocab, tuned.tgt_vocab, tmp_path / "hf", tuned.decode)
    theirs = MarianMTModel.from_pretrained(out).eval()
    batch = checkpoint.tokenizer(["the small dog runs", "a red house"], return_tensors="pt", padding=True)
    tgt_in = torch.full((2, 1), checkpoint.model.config.pad_token_id)
    with torch.no_grad():
        torch.testing.assert_close(theirs(**batch, decoder_input_ids=tgt_in).logits,
                                   tuned.model(batch["input_ids"], tgt_in), atol=1e-4, rtol=1e-4)
