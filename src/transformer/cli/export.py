"""``transformer export``: a checkpoint as a CTranslate2 model directory (``transformer.interop.ctranslate2``)."""

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


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a checkpoint to CTranslate2 (fast C++ inference, int8 weights)",
        description=(
            "Write a trained model as a CTranslate2 model directory, with its SentencePiece models, for "
            "inference with the CTranslate2 engine (optionally with int8 or float16 weights). The exported "
            "model computes the same log-probabilities as ours (float32). Our decoding never emits <s> or "
            "<pad>: pass suppress_sequences=[['<s>'], ['<pad>']] to CTranslate2 for the same outputs."
        ),
    )
    parser.add_argument("checkpoint", type=Path, metavar="RUN_DIR|CHECKPOINT",
                        help="a run directory (its best, else latest, checkpoint) or a .safetensors file in one")
    parser.add_argument("output", type=Path, metavar="OUT_DIR", help="the CTranslate2 model directory to write")
    parser.add_argument("--quantization", choices=QUANTIZATIONS, default=None,
                        help="weight format (default: float32 as trained; int8 is the fastest on CPUs)")
    parser.add_argument("--max-positions", type=int, default=1024, metavar="N",
                        help="longest source or target, in subwords, the exported model accepts (default: 1024)")
    parser.add_argument("--force", action="store_true", help="replace OUT_DIR if it exists")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..interop.ctranslate2 import export_ctranslate2
    from ..translator import Translator

    try:
        translator = Translator.from_checkpoint(args.checkpoint, device="cpu")  # the model and its vocabularies
        src_vocab, tgt_vocab = translator.src_vocab, translator.tgt_vocab
        out = export_ctranslate2(translator.model, src_vocab, tgt_vocab, args.output, args.quantization,
                                 args.max_positions, args.force)
    except (ValueError, FileNotFoundError, FileExistsError, ImportError) as e:
        print(f"transformer export: error: {e}", file=sys.stderr)
        return 2
    joint = src_vocab is tgt_vocab
    print(f"wrote {out} ({args.quantization or 'float32'} weights)", file=sys.stderr)
    print(USAGE.format(out=out, src_model=out / ("joint.model" if joint else "src.model"),
                       tgt_model=out / ("joint.model" if joint else "tgt.model")), file=sys.stderr)
    return 0
