"""Small Darknet cfg texts that cover every layer kind the importer reads (tests, benchmarks)."""

from __future__ import annotations


def conv(filters, size=1, activation="leaky", bn=1, **extra):
    """A conv section, ``pad=1`` unless ``extra`` sets ``pad`` or ``padding``."""
    keys = {"batch_normalize": bn, "filters": filters, "size": size, "activation": activation}
    if "padding" not in extra:
        keys["pad"] = extra.pop("pad", 1)
    return section("convolutional", **keys, **extra)


def section(kind, **keys):
    return f"[{kind}]\n" + "".join(f"{k}={v}\n" for k, v in keys.items())


def yolo(mask, classes=2, anchors="4,5, 8,9, 12,16, 20,24", **extra):
    return section("yolo", mask=mask, anchors=anchors, classes=classes, num=4, **extra)


NET = section("net", width=32, height=32, channels=3)

EVERY_KIND = "".join(
    [
        NET,
        conv(8, 3),  # 0
        conv(16, 3, stride=2),  # 1: stride 2
        conv(8, 1, "mish"),  # 2
        conv(16, 3, "swish"),  # 3
        section("shortcut", **{"from": -3, "activation": "linear"}),  # 4 = 1 + 3
        section("maxpool", size=2, stride=2),  # 5
        conv(16, 3, "logistic", bn=0),  # 6: conv bias, no BN
        section("maxpool", size=5, stride=1),  # 7: SPP
        section("route", layers=-2),  # 8
        section("maxpool", size=9, stride=1),  # 9
        section("route", layers=-4),  # 10
        section("maxpool", size=13, stride=1),  # 11
        section("route", layers="-1,-3,-5,-6"),  # 12: 4 layers, 64 channels
        conv(16, 1),  # 13
        section("maxpool", size=2, stride=1),  # 14: tiny YOLOv3's pool
        conv(14, 1, "linear", bn=0),  # 15
        yolo("2,3", ignore_thresh=0.6),  # 16
        section("route", layers=13),  # 17: absolute index
        conv(8, 1, "relu"),  # 18
        section("upsample", stride=2),  # 19
        section("route", layers="-1, 4"),  # 20: relative and absolute
        conv(16, 3, padding=1),  # 21: explicit padding instead of pad
        conv(14, 1, "linear", bn=0),  # 22
        yolo("0,1", ignore_thresh=0.6),  # 23
    ]
)

VALID_CONV = NET + conv(8, 3, pad=0) + conv(8, 3, stride=2, pad=0) + conv(7, 1, "linear", 0)
VALID_CONV += section("yolo", mask=0, anchors="4,5", classes=2, num=1)
