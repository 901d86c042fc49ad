"""Training: the paper's recipe (§5), checkpoints, exact resume, data parallelism, checkpoint averaging.

Only training code imports this package; inference (``transformer.translator`` and the commands built on it)
loads models through ``transformer.checkpoint`` and ``transformer.run_dir``.
"""

from .average import average_checkpoints, last_checkpoints
from .loop import train
from .loss import label_smoothed_loss
from .schedule import noam_lr

__all__ = ["average_checkpoints", "label_smoothed_loss", "last_checkpoints", "noam_lr", "train"]
