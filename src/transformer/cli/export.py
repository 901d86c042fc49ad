"""``transformer export``: a checkpoint as a CTranslate2 model directory (``transformer.interop.ctranslate2``) or
as a Hugging Face MarianMT directory (``transformer.interop.marian``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..interop.ctranslate2 import QUANTIZATIONS

USAGE = """\
Translate with it (pip install ctranslate2 sentencepiece):
    import ctranslate2, sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file="{src_model}")
    translator = ctranslate2.Translator("{out}", device="cpu")
    pieces = translator.translate_batch(
        [sp.encode("A dog runs.", out_type=str)], beam_size=5, suppress_sequences=[["<s>"], ["<pad>"]]
    )[0].hypotheses[0]
    print(spm.SentencePieceProcessor(model_file="{tgt_model}").decode(pieces))"""

HF_USAGE = """\
Translate with it (pip install transformers sentencepiece):
    from transformers import MarianMTModel, MarianTokenizer
    model, tokenizer = MarianMTModel.from_pretrained("{out}"), MarianTokenizer.from_pretrained("{out}")
    out = model.generate(**tokenizer(["A dog runs."], return_tensors="pt"))
    print(tokenizer.batch_decode(out, skip_special_tokens=True))"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a checkpoint to CTranslate2 (fast C++ inference, int8 weights) or to Hugging Face's MarianMT",
        description=(
            "--format ctranslate2 (the default): write a trained model as a CTranslate2 model directory, with its "
            "SentencePiece models, for inference with the CTranslate2 engine (optionally with int8 or float16 "
            "weights). The exported model computes the same log-probabilities as ours (float32). Our decoding "
            "never emits <s> or <pad>: pass suppress_sequences=[['<s>'], ['<pad>']] to CTranslate2 for the same "
            "outputs. --format hf: write a MarianMT directory (config.json, model.safetensors, "
            "generation_config.json with the run's [decode] settings, tokenizer files) that MarianMTModel and "
            "MarianTokenizer load; a model Marian cannot express (pre-norm, learned positions) is refused, naming "
            "the field."
        ),
    )
    parser.add_argument("checkpoint", type=Path, metavar="RUN_DIR|CHECKPOINT",
                        help="a run directory (its best, else latest, checkpoint) or a .safetensors file in one")
    parser.add_argument("output", type=Path, metavar="OUT_DIR", help="the model directory to write")
    parser.add_argument("--format", choices=("ctranslate2", "hf"), default="ctranslate2",
                        help="ctranslate2 (default) or hf, a Hugging Face MarianMT directory")
    parser.add_argument("--quantization", choices=QUANTIZATIONS, default=None,
                        help="ctranslate2: weight format (default: float32 as trained; int8 is the fastest on CPUs)")
    parser.add_argument("--max-positions", type=int, default=1024, metavar="N",
                        help="longest source or target, in subwords, the exported model accepts (default: 1024)")
    parser.add_argument("--force", action="store_true", help="replace OUT_DIR if it exists")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..interop.ctranslate2 import export_ctranslate2
    from ..interop.marian import export_marian
    from ..translator import Translator

    if args.format == "hf" and args.quantization is not None:
        print("transformer export: error: --quantization applies to --format ctranslate2 only (a MarianMT "
              "directory holds float32 weights)", file=sys.stderr)
        return 2
    try:
        translator = Translator.from_checkpoint(args.checkpoint, device="cpu")  # the model and its vocabularies
        src_vocab, tgt_vocab = translator.src_vocab, translator.tgt_vocab
        if args.format == "hf":
            out = export_marian(translator.model, src_vocab, tgt_vocab, args.output, translator.decode, args.force)
        else:
            out = export_ctranslate2(translator.model, src_vocab, tgt_vocab, args.output, args.quantization,
                                     args.max_positions, args.force)
    except (ValueError, FileNotFoundError, FileExistsError, ImportError) as e:
        print(f"transformer export: error: {e}", file=sys.stderr)
        return 2
    if args.format == "hf":
        print(f"wrote {out} (a MarianMT directory)", file=sys.stderr)
        print(HF_USAGE.format(out=out), file=sys.stderr)
        return 0
    joint = src_vocab is tgt_vocab
    print(f"wrote {out} ({args.quantization or 'float32'} weights)", file=sys.stderr)
    print(USAGE.format(out=out, src_model=out / ("joint.model" if joint else "src.model"),
                       tgt_model=out / ("joint.model" if joint else "tgt.model")), file=sys.stderr)
    return 0
