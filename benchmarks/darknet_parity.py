"""Measured distance of kyolo's Darknet-built models from OpenCV's Darknet importer.

The parity tests in ``tests/darknet`` assert max |kyolo − OpenCV| < 1e-4 · max |OpenCV| per
``[yolo]`` output, with random weights (BN variances in [0.5, 2]); this prints the actual worst
values per net. Run from the repository root::

    .venv/bin/python -m benchmarks.darknet_parity        # ~40 s on 2 cores

Measured (opencv-python-headless 4.14.0, TF 2.21 CPU)::

    net                    input  max |kyolo - OpenCV| / max |OpenCV| per output
    every layer kind     32x32    9.9e-07  2.4e-06
    every layer kind     35x35    1.1e-06  3.1e-06
    unpadded convs       33x33    3.5e-06
    yolov3-tiny          96x128   5.1e-06  4.4e-06
    yolov3               96x64    1.8e-05  1.8e-05  2.1e-05
    yolov3-spp           96x64    1.8e-05  2.1e-05  2.7e-05
    yolov3              416x416   2.1e-05  2.3e-05  2.7e-05
"""

from __future__ import annotations

import tempfile

from kyolo.darknet import write_cfg
from references.darknet_cases import EVERY_KIND, VALID_CONV
from references.darknet_oracle import parity_errors

NETS = [
    ("every layer kind", EVERY_KIND, (32, 32)),
    ("every layer kind", EVERY_KIND, (35, 35)),
    ("unpadded convs", VALID_CONV, (33, 33)),
    ("yolov3-tiny", write_cfg("yolov3-tiny", classes=3), (96, 128)),
    ("yolov3", write_cfg("yolov3", classes=3), (96, 64)),
    ("yolov3-spp", write_cfg("yolov3-spp", classes=3), (96, 64)),
    ("yolov3", write_cfg("yolov3", classes=80), (416, 416)),
]


def main() -> None:
    print(f"{'net':<18} {'input':>9}  max |kyolo - OpenCV| / max |OpenCV| per output")
    for name, text, size in NETS:
        with tempfile.TemporaryDirectory() as folder:
            errors = parity_errors(folder, text, size)
        print(f"{name:<18} {size[0]:>4}x{size[1]:<4}  " + "  ".join(f"{e:.1e}" for e in errors))


if __name__ == "__main__":
    main()
