"""Checkpoint averaging: the element-wise mean of the weights, as a loadable model with its ties."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from transformer import Transformer, TransformerConfig
from transformer.checkpoint import save_weights
from transformer.cli import main
from transformer.run_dir import load_model
from transformer.training.average import average_checkpoints, last_checkpoints
from transformer.training.checkpoint import save_checkpoint


def _run_with_checkpoints(run_dir: Path, steps: list[int], cfg: TransformerConfig | None = None) -> list[Transformer]:
    models = []
    for step in steps:
        torch.manual_seed(step)
        model = Transformer(cfg or TransformerConfig(src_vocab_size=11, tgt_vocab_size=11, d_model=8, n_heads=2,
                                                     d_ff=16, n_encoder_layers=1, n_decoder_layers=1,
                                                     share_embeddings=True))
        save_checkpoint(run_dir, step, model, {"step": step}, keep_last=10)
        models.append(model)
    return models


def test_average_of_two_is_the_mean_tensor_by_tensor(tmp_path: Path) -> None:
    a, b = _run_with_checkpoints(tmp_path, [1, 2])
    out = average_checkpoints(last_checkpoints(tmp_path, 2), tmp_path / "avg.safetensors")
    avg, meta = load_model(out)
    for name, tensor in avg.state_dict().items():
        torch.testing.assert_close(tensor, (a.state_dict()[name] + b.state_dict()[name]) / 2, rtol=0, atol=0)
    assert avg.output_weight.data_ptr() == avg.src_embed.weight.data_ptr()  # still tied
    assert meta["step"] == 2 and [Path(p).name for p in meta["averaged"]] == [
        "step_00000001.safetensors", "step_00000002.safetensors"]


def test_last_n_and_errors(tmp_path: Path, make_cfg) -> None:
    models = _run_with_checkpoints(tmp_path, [3, 6, 9])
    paths = last_checkpoints(tmp_path, 2)
    assert [p.name for p in paths] == ["step_00000006.safetensors", "step_00000009.safetensors"]
    with pytest.raises(ValueError, match="3 complete checkpoints, fewer than the 4"):
        last_checkpoints(tmp_path, 4)
    out = average_checkpoints(last_checkpoints(tmp_path, 3), tmp_path / "avg3.safetensors")
    w = load_model(out)[0].encoder.layers[0].feed_forward.w_1.weight
    expected = sum(m.encoder.layers[0].feed_forward.w_1.weight for m in models) / 3
    torch.testing.assert_close(w, expected, rtol=1e-6, atol=1e-7)
    other = Transformer(make_cfg(src_vocab_size=11, tgt_vocab_size=11, d_model=8, d_ff=8))
    save_weights(other, tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="another model"):
        average_checkpoints([paths[0], tmp_path / "other.safetensors"], tmp_path / "bad.safetensors")


def test_average_command(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a, b, c = _run_with_checkpoints(tmp_path / "run", [1, 2, 3])
    assert main(["average", str(tmp_path / "run"), "--last", "2"]) == 0
    avg = load_model(tmp_path / "run" / "average_last2.safetensors")[0]
    torch.testing.assert_close(avg.src_embed.weight, (b.src_embed.weight + c.src_embed.weight) / 2, rtol=0, atol=0)
    files = [str(tmp_path / "run" / "checkpoints" / f"step_0000000{i}.safetensors") for i in (1, 3)]
    assert main(["average", *files, "-o", str(tmp_path / "ac.safetensors")]) == 0
    avg = load_model(tmp_path / "ac.safetensors")[0]
    torch.testing.assert_close(avg.src_embed.weight, (a.src_embed.weight + c.src_embed.weight) / 2, rtol=0, atol=0)
    assert main(["average", *files]) == 2
    assert "-o/--output is required" in capsys.readouterr().err
    assert main(["average", str(tmp_path / "run"), "--last", "9"]) == 2
