"""``transformer train``: train a model from a run config on a prepared corpus."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model on a prepared corpus",
        description=(
            "Train an encoder-decoder Transformer with the paper's recipe (Adam, warmup then inverse-square-root "
            "learning rate, label smoothing) on a corpus made by `transformer prepare`. The run directory gets "
            "config.toml, vocab/, checkpoints/, best.safetensors and metrics.jsonl. For several processes, "
            "launch with `torchrun --nproc_per_node=N -m transformer train ...`."
        ),
    )
    parser.add_argument("--config", type=Path, metavar="TOML",
                        help="run config with [model] [data] [train] [decode] sections (e.g. configs/demo.toml); "
                             "with --resume and no --config, RUN_DIR/config.toml is used")
    parser.add_argument("--data", type=Path, metavar="DIR",
                        help="prepared data directory (overrides data.dir of the config)")
    parser.add_argument("--run-dir", type=Path, required=True, metavar="RUN_DIR",
                        help="output directory of the run (created; must hold no checkpoints unless --resume)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="override one config value, e.g. --set train.max_steps=1000 --set model.dropout=0.3 "
                             "(repeatable; 'none' sets an optional value to None)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the latest complete checkpoint in RUN_DIR (from scratch if none)")
    parser.add_argument("--init-from", metavar="RUN",
                        help="fine-tune: start from RUN's weights (ours or a `transformer import`ed one), with its "
                        "model configuration and a fresh optimizer; prepare the data with `transformer prepare "
                        "--vocab-from RUN`. Of --set model.* only the dropout rates apply")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..run_config import load_config

    config_path = args.config
    if config_path is None and args.resume and (args.run_dir / "config.toml").exists():
        config_path = args.run_dir / "config.toml"
    overrides = list(args.overrides) + ([f"data.dir={json.dumps(str(args.data))}"] if args.data else [])
    try:
        cfg = load_config(config_path, overrides)
    except (ValueError, OSError) as e:
        print(f"transformer train: error: bad config: {e}", file=sys.stderr)
        return 2

    from ..checkpoint import CheckpointError
    from ..training.init import with_initial_model
    from ..training.loop import train

    try:
        if args.init_from:
            explicit = {item.partition("=")[0].strip().removeprefix("model.") for item in args.overrides
                        if item.strip().startswith("model.")}
            cfg = with_initial_model(cfg, args.init_from, explicit)
        result = train(cfg, args.run_dir, resume=args.resume)
    except (FileExistsError, FileNotFoundError, CheckpointError) as e:  # run dir used; data not prepared; bad files
        print(f"transformer train: error: {e}", file=sys.stderr)
        return 2
    log.info("done: %s", json.dumps(result))
    return 0
