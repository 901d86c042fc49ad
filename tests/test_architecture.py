"""The package's shape, as the README draws it: which module may import which, functions that fit on a
screen, the decoding defaults stated once, and an inference path that never loads the training code.

The imports are read from the source (``ast``), so a lazy import inside a function counts as much as one at
the top; imports under ``if TYPE_CHECKING:`` are for annotations only and do not count.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "transformer"
MAX_FUNCTION_LINES = 80


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def imported_modules(path: Path) -> set[str]:
    """The ``transformer.*`` modules a file imports at run time (resolved relative imports included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _type_checking_only(node)
               for child in node.body for n in ast.walk(child)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
            found |= {f"{name}.{alias.name}" for alias in node.names}  # `from . import checkpoint`
    return {name for name in found if name == "transformer" or name.startswith("transformer.")}


MODULES = {module_name(path): path for path in SRC.rglob("*.py")}


def resolve(name: str) -> str:
    """The module an imported name means (``transformer.decoding.DecodeOptions`` -> ``transformer.decoding``)."""
    return name if name in MODULES else name.rpartition(".")[0]


IMPORTS = {name: {resolve(m) for m in imported_modules(path)} - {""} for name, path in MODULES.items()}


def reachable(start: str) -> set[str]:
    """Every module that importing ``start`` loads: its imports, theirs, and the packages above each."""
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen or name not in MODULES:
            continue
        seen.add(name)
        todo.extend(IMPORTS[name])
        todo.append(name.rpartition(".")[0])  # a submodule's package runs its __init__ first
    return seen


# The README's layers, top to bottom; a module may import from its own layer and the ones below it.
LAYERS = {
    "cli": ("cli", "__main__"),
    "application": ("translator", "evaluation", "serve", "demo", "visualization", "interop", "experiments"),
    "training": ("training",),
    "files": ("data", "checkpoint", "run_dir", "run_config"),
    "model": ("model",),
    "decoding": ("decoding", "cache"),  # knows a model only by the Seq2Seq protocol: Transformer.generate calls it
    "layers": ("layers", "feed_forward", "normalization", "embeddings", "attention", "masks", "config"),
    "bottom": ("ops", "io"),
}
ORDER = list(LAYERS)


def layer(name: str) -> str:
    top = name.removeprefix("transformer").lstrip(".").split(".")[0]
    if not top:
        return "package"  # transformer/__init__.py: the public names, from every layer
    return next(group for group, tops in LAYERS.items() if top in tops)


def test_every_module_imports_only_from_its_own_layer_or_below() -> None:
    wrong = []
    for name, imports in IMPORTS.items():
        if layer(name) == "package":
            continue
        for target in imports:
            if target == "transformer":
                wrong.append(f"{name} imports the package root (import the module itself)")
            elif ORDER.index(layer(target)) < ORDER.index(layer(name)):
                wrong.append(f"{name} ({layer(name)}) imports {target} ({layer(target)}), a layer above it")
    assert not wrong, "\n".join(sorted(wrong))


def test_decoding_imports_nothing_of_the_model_and_ops_nothing_of_the_package() -> None:
    for name, imports in IMPORTS.items():
        if name.startswith("transformer.decoding"):
            assert not {i for i in imports if i.startswith(("transformer.model", "transformer.layers"))}, name
        if name.startswith("transformer.ops"):
            assert not {i for i in imports if not i.startswith("transformer.ops")}, name


@pytest.mark.parametrize("application", ["transformer.translator", "transformer.evaluation", "transformer.serve",
                                         "transformer.cli.translate", "transformer.cli.evaluate",
                                         "transformer.cli.serve", "transformer.cli.common",
                                         "transformer.interop", "transformer.visualization"])
def test_inference_code_does_not_import_training(application: str) -> None:
    loaded = reachable(application)
    assert "transformer.model" in loaded or application == "transformer.cli.common"
    assert not sorted(m for m in loaded if m.startswith("transformer.training")), sorted(loaded)


def test_translating_with_a_run_loads_no_training_module(tmp_path: Path) -> None:
    """In a fresh process: Translator.from_checkpoint and translate, then look at sys.modules."""
    script = textwrap.dedent(f"""
        import json, sys
        import torch
        from transformer import Transformer, TransformerConfig
        from transformer.checkpoint import save_weights
        from transformer.data.vocab import Vocab

        run = {str(tmp_path)!r}
        words = ["the cat sat on the mat", "a dog ran in the park", "the bird sang at dawn"] * 20
        vocab = Vocab.train(words, run + "/vocab/joint", vocab_size=40)
        cfg = TransformerConfig(src_vocab_size=len(vocab), tgt_vocab_size=len(vocab), d_model=16, n_heads=2,
                                d_ff=32, n_encoder_layers=1, n_decoder_layers=1, share_embeddings=True)
        save_weights(Transformer(cfg), run + "/best.safetensors")
        before = {{m for m in sys.modules if m.startswith("transformer")}}
        from transformer.translator import Translator
        out = Translator.from_checkpoint(run, device="cpu").translate(["the cat"])
        loaded = sorted(m for m in sys.modules if m.startswith("transformer"))
        print(json.dumps({{"loaded": loaded, "before": sorted(before), "text": out[0][0].text}}))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "transformer.translator" in result["loaded"] and isinstance(result["text"], str)
    assert not [m for m in result["loaded"] if m.startswith("transformer.training")], result["loaded"]


def test_no_function_is_longer_than_a_screen() -> None:
    long = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}: {lines} lines")
    assert not long, "\n".join(long)


def test_the_decoding_defaults_are_declared_once() -> None:
    """beam 4 and length penalty 0.6 (§6.1) appear as values of a decoding option in one place only: the
    ``DecodeOptions`` fields. No function default, keyword argument or other field repeats them."""
    defaults = {"beam_size": 4, "length_penalty": 0.6}
    found = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            pairs: list[tuple[str, ast.AST]] = []
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
                pairs.append((node.target.id, node.value))
            elif isinstance(node, ast.keyword) and node.arg:
                pairs.append((node.arg, node.value))
            elif isinstance(node, ast.arguments):
                args = [*node.posonlyargs, *node.args]
                pairs += [(a.arg, d) for a, d in zip(args[len(args) - len(node.defaults):], node.defaults)]
                pairs += [(a.arg, d) for a, d in zip(node.kwonlyargs, node.kw_defaults) if d is not None]
            for name, value in pairs:
                if name in defaults and isinstance(value, ast.Constant) and value.value == defaults[name]:
                    found.append(f"{path.relative_to(SRC)}:{value.lineno} {name}={value.value}")
    assert [f.split(" ")[1] for f in found] == ["beam_size=4", "length_penalty=0.6"], found
    assert all(f.startswith("decoding/options.py:") for f in found), found
