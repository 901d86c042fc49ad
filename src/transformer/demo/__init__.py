"""The built-in demo (``transformer demo``): a synthetic number-words corpus (``numbers``) and the steps that
prepare it, train a small model on it and measure it on held-out numbers (``run``)."""

from .run import DemoResult, run_demo

__all__ = ["DemoResult", "run_demo"]
