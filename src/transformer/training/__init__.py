"""Training: the paper's recipe (§5), checkpoints, exact resume, data parallelism, checkpoint averaging."""

from .average import average_checkpoints, last_checkpoints
from .checkpoint import latest_checkpoint, load_model, save_weights
from .loop import train
from .loss import LossSums, label_smoothed_loss
from .schedule import noam_lr

__all__ = [
    "LossSums",
    "average_checkpoints",
    "label_smoothed_loss",
    "last_checkpoints",
    "latest_checkpoint",
    "load_model",
    "noam_lr",
    "save_weights",
    "train",
]
