"""kyolo: YOLO-family losses, target encoders and training for Keras 3 / TensorFlow 2."""

from kyolo.config import (
    PRESETS,
    YOLOV1,
    YOLOV2,
    YOLOV3,
    YOLOV3_TINY,
    YOLOV4,
    YOLOV5,
    LossConfig,
    YoloConfig,
    preset,
)

__all__ = [
    "PRESETS",
    "YOLOV1",
    "YOLOV2",
    "YOLOV3",
    "YOLOV3_TINY",
    "YOLOV4",
    "YOLOV5",
    "LossConfig",
    "YoloConfig",
    "preset",
]
__version__ = "0.1.0"
