"""CTranslate2 decoding in a process of its own, driven one timed call at a time.

Loaded into the benchmark's process, CTranslate2 (which brings its own OpenMP runtime and allocator) made
the PyTorch implementations decode 25-35% slower, ours and Hugging Face's alike (tiny, greedy, 64
sentences: ours 106-126 sentences/s with it loaded, 164 without; HF 87-94 against 122; runs minutes
apart), and itself ran ~10% slower beside PyTorch's decoding. So each engine gets a clean process: this
worker holds the CTranslate2 translators, and the benchmark still interleaves it with the others, one
request per timed call (the pipe's round trip is well under a millisecond, against ~0.3 s a call).

Protocol: the parent writes one JSON line per call, {"compute_type": "float32", "beam": 4, "length": 32};
the worker translates the sentences of ``tokens.json`` and answers {"tokens": shortest output length}.

    python benchmarks/ct2_worker.py MODEL_DIR TOKENS_JSON THREADS    (the benchmark starts it)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

COMPUTE_TYPES = ("float32", "int8")


def serve(model_dir: str, tokens_file: str, threads: int) -> None:
    import ctranslate2

    tokens = json.loads(Path(tokens_file).read_text(encoding="utf-8"))
    translators = {
        compute_type: ctranslate2.Translator(
            model_dir, device="cpu", compute_type=compute_type, intra_threads=threads, inter_threads=1
        )
        for compute_type in COMPUTE_TYPES
    }
    print("ready", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        results = translators[request["compute_type"]].translate_batch(
            tokens, beam_size=request["beam"], min_decoding_length=request["length"],
            max_decoding_length=request["length"],
        )
        print(json.dumps({"tokens": min(len(r.hypotheses[0]) for r in results)}), flush=True)


class Ct2Worker:
    """The parent's handle: ``translate(compute_type, beam, length)`` runs one call in the worker."""

    def __init__(self, model_dir: Path, tokens: list[list[str]], threads: int) -> None:
        tokens_file = model_dir / "benchmark_tokens.json"
        tokens_file.write_text(json.dumps(tokens), encoding="utf-8")
        self.process = subprocess.Popen(
            [sys.executable, __file__, str(model_dir), str(tokens_file), str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.stdin, self.stdout = self.process.stdin, self.process.stdout
        if self.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the CTranslate2 worker did not start (exit code {self.process.poll()})")

    def translate(self, compute_type: str, beam: int, length: int) -> int:
        """Translate all sentences to exactly ``length`` tokens; the shortest output's length."""
        self.stdin.write(json.dumps({"compute_type": compute_type, "beam": beam, "length": length}) + "\n")
        self.stdin.flush()
        reply = self.stdout.readline()
        if not reply:
            raise RuntimeError(f"the CTranslate2 worker died (exit code {self.process.poll()})")
        return int(json.loads(reply)["tokens"])

    def close(self) -> None:
        self.stdin.close()
        self.process.wait(timeout=60)


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2], int(sys.argv[3]))
