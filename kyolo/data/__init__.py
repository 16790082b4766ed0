"""Data layer: dataset files → :class:`Annotation` lists → ``tf.data`` pipelines.

Readers (no TensorFlow import): :func:`read_coco`, :func:`read_voc`, :func:`read_yolo`; the bundled
DigitsDet generator :func:`make_digits`. The ``tf.data`` pieces live in :mod:`kyolo.data.pipeline`
and :mod:`kyolo.data.mix` (mosaic, mixup).
"""

from kyolo.data.annotations import Annotation, AnnotationError, validate
from kyolo.data.coco import read_coco
from kyolo.data.digits import make_digits
from kyolo.data.voc import read_voc
from kyolo.data.yolo_txt import read_yolo

__all__ = [
    "Annotation",
    "AnnotationError",
    "make_digits",
    "read_coco",
    "read_voc",
    "read_yolo",
    "validate",
]
