"""Convert a Darknet cfg and its ``.weights`` into a ``.keras`` model (keras-yolo3's convert.py).

``python -m training.convert yolov3.cfg yolov3.weights yolov3.keras`` builds the cfg layer for
layer; ``--kyolo-model yolov3`` puts the weights into kyolo's own ``yolov3`` model instead, the
one ``training.train`` builds. The archive also stores the ``[yolo]`` sections' config and the class
names (``kyolo.saving.load_metadata``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from training.console import cli_main, make_parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    from kyolo.darknet import KYOLO_LAYOUTS

    parser = make_parser(
        "training.convert",
        "Convert a Darknet cfg and its .weights into a .keras model (keras-yolo3's convert.py "
        "for kyolo).",
    )
    parser.add_argument("cfg", help="Darknet .cfg file")
    parser.add_argument("weights", help="Darknet .weights file of that cfg")
    parser.add_argument("out", help="output .keras file")
    parser.add_argument(
        "--kyolo-model",
        choices=sorted(KYOLO_LAYOUTS),
        default=None,
        help="map the weights onto kyolo's own model of that name (the cfg must be Darknet's "
        "yolov3.cfg / yolov3-tiny.cfg topology; outputs deepest scale first, as in the cfg) so "
        "that training.train fine-tunes kyolo's model; None builds the cfg layer for layer",
    )
    parser.add_argument(
        "--names",
        default=None,
        help="class names file, one per line (Darknet's coco.names), stored with the model",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    cli_main("training.convert", command, argv)


def command(argv: list[str]) -> None:
    from kyolo.darknet import convert
    from kyolo.data import read_class_names

    args = parse_args(argv)
    names = None if args.names is None else read_class_names(args.names)
    darknet = convert(
        args.cfg, args.weights, args.out, kyolo_model=args.kyolo_model, class_names=names
    )
    cfg = darknet.config
    print(
        f"{args.out}: {darknet.model.name}, {darknet.model.count_params():,} params, "
        f"{len(darknet.convs)} convs, {cfg.num_classes} classes, strides {cfg.strides}"
    )


if __name__ == "__main__":
    main()
