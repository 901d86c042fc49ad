"""Pictures of what a Transformer computes: attention heatmaps (§3.2), the positional encoding (§3.5)
and training curves.

Every plot function takes plain tensors (or metric records) plus token lists and returns a
``matplotlib.figure.Figure``. Nothing is read from or stored on a model, and pyplot's global state is
never used, so figures are independent of each other and safe in tests and servers. Save one with
``fig.savefig("attention.png")`` (or ``.svg``, ``.pdf``).
"""

from .attention import attention_figures, plot_attention_grid, plot_attention_head
from .metrics import load_metrics, plot_metrics
from .positional import plot_positional_encoding

__all__ = [
    "attention_figures",
    "load_metrics",
    "plot_attention_grid",
    "plot_attention_head",
    "plot_metrics",
    "plot_positional_encoding",
]
