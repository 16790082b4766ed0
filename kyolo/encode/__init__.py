"""Ground-truth target encoders that run inside ``tf.data.Dataset.map`` (pure TF, fixed shapes)."""

from kyolo.encode.best_anchor import encode_best_anchor
from kyolo.encode.targets import check_boxes, pack_target, scatter_to_grid, unpack_target

__all__ = ["check_boxes", "encode_best_anchor", "pack_target", "scatter_to_grid", "unpack_target"]
