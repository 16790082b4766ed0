"""Ground truth → ``y_true`` (:mod:`kyolo.targets`) inside ``tf.data`` (pure TF, fixed shapes).

One public encoder per input form: :func:`encode_targets` (one image), :func:`encode_batch` (a
batch of padded images), :func:`encode_rows` (YOLOv5-style rows); :func:`target_encoder` adapts
:func:`encode_targets` to the data pipeline's pixel boxes. Assigners live in
:mod:`kyolo.encode.best_anchor` and :mod:`kyolo.encode.ratio`, validation in
:mod:`kyolo.encode.validate`, the scatter machinery in :mod:`kyolo.encode.scatter`.
"""

from kyolo.encode.encoder import (
    ASSIGNERS,
    encode_batch,
    encode_rows,
    encode_targets,
    target_encoder,
)
from kyolo.encode.validate import check_boxes

__all__ = [
    "ASSIGNERS",
    "check_boxes",
    "encode_batch",
    "encode_rows",
    "encode_targets",
    "target_encoder",
]
