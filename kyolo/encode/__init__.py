"""Ground-truth target encoders that run inside ``tf.data.Dataset.map`` (pure TF, fixed shapes)."""

from kyolo.encode.best_anchor import encode_best_anchor
from kyolo.encode.encoder import encode_images, encode_targets, encode_targets_batch
from kyolo.encode.targets import (
    check_boxes,
    target_boxes,
    target_grid,
)

__all__ = [
    "check_boxes",
    "encode_best_anchor",
    "encode_images",
    "encode_targets",
    "encode_targets_batch",
    "target_boxes",
    "target_grid",
]
