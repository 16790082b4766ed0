"""kyolo: YOLO-family losses, target encoders and training for Keras 3 / TensorFlow 2."""

from kyolo.config import YOLOV3, YOLOV3_TINY, YoloConfig

__all__ = ["YOLOV3", "YOLOV3_TINY", "YoloConfig"]
__version__ = "0.1.0"
