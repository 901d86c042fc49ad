"""What several commands share: the usage error, the model and decoding options, loading a translator."""

from __future__ import annotations

import argparse
import re
import sys
from typing import TYPE_CHECKING

from ..decoding.length_penalty import LENGTH_NORMALIZATIONS
from ..decoding.options import DecodeOptionError, DecodeOptions
from ..ops.linear import PRECISIONS, auto_precision, int8_units

if TYPE_CHECKING:
    from ..translator import Translator

_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
_DEFAULTS = DecodeOptions()


class UsageError(Exception):
    """Bad input or options: printed as ``transformer COMMAND: error: ...``, exit status 2."""


def add_subcommands(parser: argparse.ArgumentParser, dest: str, metavar: str) -> argparse._SubParsersAction:
    """Sub-commands of ``parser`` (``transformer plot WHAT``); the command alone prints its help and exits 2."""

    def usage(_: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=usage)
    return parser.add_subparsers(dest=dest, metavar=metavar)


def add_model_arguments(parser: argparse.ArgumentParser, flags: tuple[str, ...] = ("--checkpoint", "-c")) -> None:
    """The checkpoint to load, the device and the precision of inference (``--precision``, ``--int8``)."""
    parser.add_argument(
        *flags,
        dest="checkpoint",
        required=True,
        metavar="RUN",
        help="run directory (its best, else latest, checkpoint) or a .safetensors file inside one",
    )
    parser.add_argument(
        "--device",
        default="auto",
        metavar="DEVICE",
        help="auto (cuda when available), cpu, cuda or cuda:N (default: %(default)s)",
    )
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument(
        "--precision",
        choices=(*PRECISIONS, "auto"),
        default=None,  # auto; None so that argparse sees `--precision auto --int8` as both given
        help="the precision of the linear layers' products (CPU only; float32 elsewhere). float32 is exact; "
        "int8 (int8 weights and inputs) and bfloat16 (CPUs with AMX or AVX512-BF16) decode faster, slightly "
        "less accurately; auto (default): bfloat16 where the CPU has bf16 units, else float32 "
        "(docs/performance.md)",
    )
    precision.add_argument(
        "--int8",
        dest="precision",
        action="store_const",
        const="int8",
        help="--precision int8",
    )


def add_decoding_arguments(parser: argparse.ArgumentParser, title: str = "decoding") -> None:
    """The ``DecodeOptions`` a command line may set; those left out come from the run's ``[decode]`` section."""
    group = parser.add_argument_group(title, "options left out come from the run's [decode] section, else the "
                                             "paper's settings (transformer.DecodeOptions)")
    group.add_argument("--beam-size", "-b", type=int, default=None, metavar="K",
                       help=f"beam size; 1 = greedy decoding (default: decode.beam_size, else {_DEFAULTS.beam_size})")
    group.add_argument("--length-penalty", type=float, default=None, metavar="ALPHA",
                       help="GNMT length penalty alpha of beam search (default: decode.length_penalty, else "
                       f"{_DEFAULTS.length_penalty})")
    group.add_argument("--max-len", type=int, default=None, metavar="N",
                       help="most output tokens per sentence (default: decode.max_len, else source length + 50)")
    group.add_argument("--length-normalization", choices=LENGTH_NORMALIZATIONS, default=None,
                       help="lp(Y) of beam search: gnmt ((5 + |Y|) / 6)^alpha, the paper's, or power |Y|^alpha, "
                       f"Hugging Face's (default: decode.length_normalization, else {_DEFAULTS.length_normalization})")


def decode_options(args: argparse.Namespace, defaults: DecodeOptions, n_best: int | None = None) -> DecodeOptions:
    """``defaults`` with the options given on the command line; UsageError naming the flag if one is bad."""
    try:
        return defaults.override(beam_size=args.beam_size, length_penalty=args.length_penalty, max_len=args.max_len,
                                 length_normalization=args.length_normalization, n_best=n_best)
    except DecodeOptionError as e:
        raise UsageError(_flag_error(e, args)) from None


def check_decoding_arguments(args: argparse.Namespace) -> None:
    """UsageError for decoding option values that are wrong whatever the run's defaults (before loading it)."""
    try:
        DecodeOptions().override(length_penalty=args.length_penalty, max_len=args.max_len)
        if args.beam_size is not None:
            DecodeOptions(beam_size=args.beam_size)
    except DecodeOptionError as e:
        raise UsageError(_flag_error(e, args)) from None
    if getattr(args, "batch_tokens", None) is not None and args.batch_tokens < 1:
        raise UsageError(f"--batch-tokens must be >= 1, got {args.batch_tokens}")
    if not _DEVICE.fullmatch(args.device):
        raise UsageError(f"--device must be auto, cpu, cuda or cuda:N, got {args.device!r}")


def _flag_error(e: DecodeOptionError, args: argparse.Namespace) -> str:
    """``--n-best must be between 1 and --beam-size (2), got 3``: the error in the command line's words."""
    must = re.sub(r"\bbeam_size\b", "--beam-size", e.must)
    return f"--{e.field.replace('_', '-')} must be {must}, got {e.value}"


def load_translator(args: argparse.Namespace) -> Translator:
    """The Translator of ``--checkpoint`` on ``--device`` (with ``--batch-tokens`` and ``--precision`` where the
    command has them); UsageError naming the file when it cannot be loaded."""
    from ..translator import Translator

    try:
        translator = Translator.from_checkpoint(args.checkpoint, device=args.device)
    except (FileNotFoundError, ValueError) as e:  # ValueError: CheckpointError, a bad config or vocabulary
        raise UsageError(f"cannot load {args.checkpoint}: {e}") from None
    if getattr(args, "batch_tokens", None) is not None:
        translator.batch_tokens = args.batch_tokens
    if args.precision in (None, "auto"):
        args.precision = auto_precision(translator.device)  # the command's outputs say which
    if args.precision != "float32":
        try:
            translator.model.set_inference_precision(args.precision)
        except RuntimeError as e:
            raise UsageError(f"--precision {args.precision}: {e}") from None
    if args.precision == "int8" and translator.device.type == "cpu" and not int8_units():
        print("note: this CPU has no int8 units (VNNI or AMX): int8 runs at float32's speed or below here, and "
              "float32 is exact (README, 'Precision of inference')", file=sys.stderr)
    return translator
