"""DecodeOptions: the paper's defaults, validation that names the field, changes by name; ``search`` picks greedy
or beam search from them."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from transformer import DecodeOptions, Transformer, search
from transformer.decoding import DecodeOptionError, beam_search, greedy_search


def test_defaults_are_the_papers() -> None:
    options = DecodeOptions()
    assert (options.beam_size, options.length_penalty, options.max_len) == (4, 0.6, None)  # §6.1
    assert (options.n_best, options.min_len) == (1, 0)
    assert not options.greedy and DecodeOptions(beam_size=1).greedy and not DecodeOptions(beam_size=2, n_best=1).greedy


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(beam_size=0), "beam_size=0 must be >= 1"),
        (dict(n_best=0), r"n_best=0 must be between 1 and beam_size \(4\)"),
        (dict(beam_size=2, n_best=3), r"n_best=3 must be between 1 and beam_size \(2\)"),
        (dict(length_penalty=-0.1), "length_penalty=-0.1 must be >= 0"),
        (dict(max_len=0), "max_len=0 must be >= 1"),
        (dict(min_len=-1), "min_len=-1 must be >= 0"),
    ],
)
def test_bad_values_name_the_field(changes: dict, message: str) -> None:
    with pytest.raises(DecodeOptionError, match=message) as info:
        DecodeOptions(**changes)
    assert info.value.field == message.split("=")[0] and isinstance(info.value, ValueError)


def test_options_are_frozen_hashable_values() -> None:
    assert DecodeOptions(beam_size=2) == DecodeOptions(beam_size=2) and len({DecodeOptions(), DecodeOptions()}) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        DecodeOptions().beam_size = 3  # type: ignore[misc]


def test_override_changes_the_fields_given_and_keeps_those_given_none() -> None:
    run = DecodeOptions(beam_size=5, length_penalty=1.0, max_len=80)
    assert run.override(beam_size=2, max_len=None) == DecodeOptions(beam_size=2, length_penalty=1.0, max_len=80)
    assert run.override() == run
    with pytest.raises(DecodeOptionError, match="n_best=6"):
        run.override(n_best=6)
    with pytest.raises(TypeError):
        run.override(beams=2)


def test_search_is_greedy_for_beam_one_and_beam_search_otherwise(tiny_model: Transformer, make_tokens) -> None:
    src = make_tokens([5, 3], 13)
    greedy = DecodeOptions(beam_size=1, max_len=5)
    torch.testing.assert_close(search(tiny_model, src, greedy).scores, greedy_search(tiny_model, src, greedy).scores)
    beam = DecodeOptions(beam_size=3, n_best=2, max_len=5)
    one, other = search(tiny_model, src, beam), beam_search(tiny_model, src, beam)
    assert torch.equal(one.tokens, other.tokens) and one.tokens.shape[:2] == (2, 2)
    assert torch.equal(search(tiny_model, src).tokens, beam_search(tiny_model, src, DecodeOptions()).tokens)
