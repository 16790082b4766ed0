"""Data layer: dataset files → :class:`Annotation` lists → ``tf.data`` pipelines.

Readers (no TensorFlow import): :func:`read_coco`, :func:`read_voc`, :func:`read_yolo`. Dataset
builders: :func:`make_digits` (the bundled DigitsDet), :func:`make_neon_trees` (real aerial
tree-crown tiles from a pinned PyPI wheel, see ``docs/real-data.md``) and :func:`make_neon_pretrain`
(crowns of two other NEON sites, to pretrain on). The ``tf.data`` pieces live
in :mod:`kyolo.data.pipeline` and :mod:`kyolo.data.mix` (mosaic, mixup).
"""

from kyolo.data.annotations import Annotation, AnnotationError, validate
from kyolo.data.coco import read_coco
from kyolo.data.digits import make_digits
from kyolo.data.formats import READERS, read_annotations, read_class_names
from kyolo.data.neon_pretrain import make_neon_pretrain
from kyolo.data.neon_trees import make_neon_trees
from kyolo.data.voc import read_voc
from kyolo.data.yolo_txt import read_yolo

__all__ = [
    "Annotation",
    "AnnotationError",
    "READERS",
    "make_digits",
    "make_neon_pretrain",
    "make_neon_trees",
    "read_annotations",
    "read_class_names",
    "read_coco",
    "read_voc",
    "read_yolo",
    "validate",
]
