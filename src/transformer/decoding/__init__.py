"""Decoding: greedy and beam search over the key/value cache, batched, no loop over sentences."""

from .beam import beam_search
from .common import Generation, output_limits
from .greedy import greedy_search
from .length_penalty import length_penalty

__all__ = ["Generation", "beam_search", "greedy_search", "length_penalty", "output_limits"]
