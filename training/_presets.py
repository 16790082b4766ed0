from kyolo.config import YOLOV3

PRESETS = {"yolov3": YOLOV3}
