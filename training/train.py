"""Train a YOLO detector with ``model.fit`` and export it.

``python -m training.train`` with no flag trains the nano model on the bundled DigitsDet data
(generated into ``OUT/data``) and writes everything under ``--out`` (``saved_models/digits_nano``):
``run.yaml`` (the resolved settings), ``model.keras``, the ``serving`` SavedModel,
``metrics.json``, ``curves.png``, TensorBoard logs and a backup from which ``--resume`` continues
a killed run. A non-empty ``--out`` needs ``--resume`` or ``--exist-ok``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from training.cli import DEFAULT_OUT, add_data_arguments, check_data_paths, load_data
from training.console import CommandError, cli_main, make_parser
from training.runconfig import (
    add_config_arguments,
    check_out,
    check_resume,
    parse_with_config,
    write_run_config,
)

LOG = logging.getLogger("kyolo.train")


def build_parser() -> argparse.ArgumentParser:
    """Every flag of the job; ``--config``/``--resume`` settings files cover all of them."""
    from kyolo.config import PRESETS
    from kyolo.models import MODELS

    parser = make_parser("training.train", __doc__.splitlines()[0])
    add_config_arguments(parser)
    add_data_arguments(parser)
    parser.add_argument("--model", choices=sorted(MODELS), default="nano")
    parser.add_argument("--loss-preset", choices=sorted(PRESETS), default="yolov5")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument(
        "--batch-size",
        type=batch_size,
        default="auto",
        help="images per step and replica, or 'auto': 16, halved (down to 4) until an epoch has "
        "20 steps (kyolo.recipe.auto_batch_size)",
    )
    parser.add_argument(
        "--img-size", type=int, nargs="+", default=[128], help="input size: S or H W"
    )
    parser.add_argument(
        "--anchors",
        default="auto",
        help="'auto' (k-means on the training boxes), 'preset', or 'w,h w,h ...' in pixels",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a config field of the preset, e.g. assigner=best_anchor_per_scale or "
        "loss.box_loss=iou (values are JSON, else strings); repeatable",
    )
    add_recipe_arguments(parser)
    add_finetune_arguments(parser)
    parser.add_argument("--warmup-epochs", type=float, default=2.0)
    parser.add_argument("--eval-every", type=int, default=5, help="epochs between mAP evals")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=DEFAULT_OUT)
    add_device_arguments(parser)
    return parser


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """Where and how the steps run: ``tf.distribute`` strategy, BatchNorm sync, precision, XLA."""
    from kyolo.distribute import PRECISIONS, STRATEGIES

    parser.add_argument(
        "--strategy",
        choices=sorted(STRATEGIES),
        default="default",
        help="one device; every GPU here (mirrored); every machine of TF_CONFIG (multiworker, one "
        "process each); a Cloud TPU (tpu, untested). --batch-size is per replica: a step takes "
        "batch size x replicas images (docs/distributed.md)",
    )
    parser.add_argument(
        "--sync-bn",
        action="store_true",
        help="BatchNorm statistics over all replicas' images (as one device with the global batch)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="float32",
        help="Keras dtype policy; mixed_float16 scales the loss (LossScaleOptimizer)",
    )
    parser.add_argument(
        "--jit",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="compile the steps with XLA; default: Keras' choice (XLA on a GPU/TPU, not on a CPU)",
    )


def parse_args(
    argv: Sequence[str] | None = None, parser: argparse.ArgumentParser | None = None
) -> argparse.Namespace:
    """Flags (over ``--config`` / ``--resume`` settings), checked: a bad one exits with status 2."""
    parser = parser or build_parser()
    args = parse_with_config(parser, argv, DEFAULT_OUT)
    for name in ("epochs", "batch_size", "eval_every"):
        if getattr(args, name) != "auto" and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if len(args.img_size) not in (1, 2):
        parser.error(f"--img-size takes 1 or 2 values, got {args.img_size}")
    if min(args.img_size) < 1 or min(args.digits) < 1:
        parser.error("--img-size and --digits must be >= 1")
    if (args.lr is not None and args.lr <= 0) or args.warmup_epochs < 0:
        parser.error(f"need --lr > 0 and --warmup-epochs >= 0, got {args.lr}, {args.warmup_epochs}")
    try:
        augmentation(args)
    except ValueError as err:
        parser.error(f"augmentation: {err}")
    if args.anchors not in ("auto", "preset") and not ANCHOR_PAIRS.fullmatch(args.anchors):
        parser.error(f"--anchors must be 'auto', 'preset' or 'w,h w,h ...', got {args.anchors!r}")
    if args.strategy == "multiworker" and "TF_CONFIG" not in os.environ:
        parser.error(
            "--strategy multiworker needs TF_CONFIG (the cluster and this task; "
            "docs/distributed.md)"
        )
    check_data_paths(parser, args)
    check_finetune_arguments(parser, args)
    return args


def setting_warnings(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[str]:
    """Settings that are valid but cannot work as asked, one sentence each."""
    warnings = []
    if args.warmup_epochs >= args.epochs:
        warnings.append(
            f"--warmup-epochs {args.warmup_epochs:g} >= --epochs {args.epochs}: the learning rate "
            "never reaches its peak; lower --warmup-epochs"
        )
    if args.eval_every > args.epochs:
        warnings.append(
            f"--eval-every {args.eval_every} > --epochs {args.epochs}: mAP is measured once, "
            "after the last epoch"
        )
    digits_only = ("digits", "data_dir")
    paths = ("train", "train_images", "val", "val_images", "classes")
    ignored = paths if args.data_format == "digits" else digits_only
    for name in ignored:
        if getattr(args, name) != parser.get_default(name):
            flag = "--" + name.replace("_", "-")
            warnings.append(f"{flag} is ignored with --data-format {args.data_format}")
    return warnings


def add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    """Augmentation, optimizer, input cache and EMA flags; defaults keep mosaic, mixup, cache and
    EMA off."""
    from kyolo.optim import DEFAULTS, OPTIMIZERS

    parser.add_argument("--mosaic", type=float, default=0.0, metavar="P", help="mosaic probability")
    parser.add_argument("--mixup", type=float, default=0.0, metavar="P", help="mixup probability")
    parser.add_argument("--zoom", type=float, default=0.25, help="zoom range: 1 ± ZOOM")
    parser.add_argument(
        "--translate", type=float, default=0.1, help="shift range: ± TRANSLATE × image size"
    )
    parser.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adam")
    defaults = ", ".join(
        f"{name} {d['learning_rate']:g} / {d['momentum']:g}" for name, d in DEFAULTS.items()
    )
    parser.add_argument("--lr", type=float, help=f"peak learning rate (default: {defaults})")
    parser.add_argument("--momentum", type=float, help="SGD momentum or Adam beta_1 (as --lr)")
    parser.add_argument(
        "--weight-decay",
        type=float,
        default=0.0,
        help="decoupled decay per step (Keras; not on biases or BatchNorm), see kyolo.optim",
    )
    parser.add_argument(
        "--cache",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="decode and letterbox every training image once and keep the canvases in memory "
        "(images x H x W x 12 bytes: 197 MB for DigitsDet at 128 px); faster epochs, mosaic most",
    )
    parser.add_argument(
        "--ema",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="validate, checkpoint and export an EMA of the weights",
    )
    parser.add_argument("--ema-decay", type=float, default=0.9999)
    parser.add_argument(
        "--ema-ramp", type=float, default=2000.0, help="updates of the EMA decay's warm-up"
    )


def batch_size(text: str) -> int | str:
    """``--batch-size``: an integer, or ``auto`` (resolved once the data is read)."""
    return text if text == "auto" else int(text)


def add_finetune_arguments(parser: argparse.ArgumentParser) -> None:
    """Pretrained weights and freezing (:mod:`kyolo.finetune`)."""
    from kyolo.finetune import UNFROZEN_LR_SCALE

    parser.add_argument(
        "--weights",
        help="fine-tune from these weights: a .keras (training.convert, or a kyolo run's "
        "model.keras) or Darknet .weights with --cfg; layers load by name where shapes match",
    )
    parser.add_argument("--cfg", metavar="DARKNET_CFG", help="Darknet .cfg of a --weights .weights")
    parser.add_argument(
        "--freeze",
        metavar="backbone|body|N",
        help="freeze the backbone, everything but the detection convs (body), or the first N "
        "Keras layers; frozen BatchNorm runs in inference mode",
    )
    parser.add_argument(
        "--freeze-epochs",
        type=int,
        metavar="E",
        help="release the frozen layers after E epochs and train all at --unfreeze-lr-scale "
        "times the learning rate (keras-yolo3's two stages); default: frozen throughout",
    )
    parser.add_argument(
        "--unfreeze-lr-scale",
        type=float,
        default=UNFROZEN_LR_SCALE,
        metavar="F",
        help="learning-rate factor after --freeze-epochs (keras-yolo3: 0.1)",
    )


def check_finetune_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    from kyolo.finetune import FREEZE

    if (args.cfg or args.freeze) and not args.weights:
        parser.error("--cfg and --freeze need --weights")
    count = args.freeze.isdigit() and int(args.freeze) >= 1 if args.freeze else False
    if args.freeze and args.freeze not in FREEZE and not count:
        parser.error(
            f"--freeze takes {', '.join(FREEZE)} or a layer count >= 1, got {args.freeze!r}"
        )
    if args.freeze_epochs is not None and not args.freeze:
        parser.error("--freeze-epochs needs --freeze")
    if args.freeze_epochs is not None and not 1 <= args.freeze_epochs < args.epochs:
        parser.error(f"--freeze-epochs must be in [1, --epochs), got {args.freeze_epochs}")
    if args.unfreeze_lr_scale <= 0:
        parser.error(f"--unfreeze-lr-scale must be > 0, got {args.unfreeze_lr_scale}")


def load_weights(args: argparse.Namespace, model: Any, cfg: Any) -> None:
    """``--weights`` into ``model`` where names and shapes match; logs what loaded and what not."""
    from kyolo.finetune import load_pretrained, read_pretrained

    try:
        source = read_pretrained(args.weights, darknet_cfg=args.cfg, kyolo_model=args.model)
        report = load_pretrained(model, cfg, source)
    except (OSError, ValueError) as err:
        raise InvalidInput(f"--weights: {err}") from err
    LOG.info("%s", report)


def freeze_layers(args: argparse.Namespace, model: Any) -> list[str]:
    """``--freeze`` on the compiled ``model``; returns the frozen layers' names."""
    from kyolo.finetune import freeze

    try:
        frozen = freeze(model, args.freeze)
    except ValueError as err:
        raise InvalidInput(f"--freeze: {err}") from err
    LOG.info("frozen: %d layers, %s ... %s", len(frozen), frozen[0], frozen[-1])
    return frozen


def augmentation(args: argparse.Namespace):
    """The training :class:`~kyolo.data.augment.Augmentation` the flags ask for."""
    from kyolo.data.augment import Augmentation

    return Augmentation(
        # Mirrored digits are not digits: no flips for DigitsDet.
        flip_prob=0.0 if args.data_format == "digits" else Augmentation.flip_prob,
        zoom=args.zoom,
        translate=args.translate,
        mosaic_prob=args.mosaic,
        mixup_prob=args.mixup,
    )


ANCHOR_PAIRS = re.compile(r"\s*(\d+(\.\d*)?,\d+(\.\d*)?\s*)+")


def build_config(args: argparse.Namespace, train: list, num_classes: int):
    """The preset's loss settings on this model and dataset's geometry, plus ``--set``."""
    from kyolo.anchors import dataset_anchors
    from kyolo.config import PRESETS
    from kyolo.models import STRIDES

    preset = PRESETS[args.loss_preset]
    input_size = tuple((args.img_size * 2)[:2])
    strides = STRIDES[args.model]
    count = preset.anchors_per_scale * len(strides)
    if args.anchors == "auto":
        anchors, iou = dataset_anchors(train, input_size, count, seed=args.seed)
        LOG.info("k-means anchors %s (mean best IoU %.3f)", anchors.round(1).tolist(), iou)
    elif args.anchors == "preset":
        anchors = None
    else:
        anchors = np.array([[float(v) for v in pair.split(",")] for pair in args.anchors.split()])
        if anchors.shape != (count, 2):
            raise ValueError(f"--anchors needs {count} 'w,h' pairs, got {args.anchors!r}")
    cfg = preset.with_geometry(
        strides=strides, input_size=input_size, num_classes=num_classes, anchors=anchors
    )
    return cfg.with_overrides(args.set)


class InvalidInput(ValueError):
    """Bad data or settings found before training starts; ``main`` prints it, no traceback."""


def prepare(args: argparse.Namespace) -> tuple[list, list, list[str], Any]:
    """``(train annotations, val annotations, class names, config)``, all checked."""
    from kyolo.data import AnnotationError
    from kyolo.data.pipeline import check_box_counts
    from kyolo.losses.box import get_box_loss

    try:
        train_ann, val_ann, names = load_data(args)
        cfg = build_config(args, train_ann, len(names))
        get_box_loss(cfg)  # an unknown or inconsistent box loss fails here, named
        check_box_counts([*train_ann, *val_ann], cfg.max_boxes)
    except (AnnotationError, OSError, ValueError) as err:
        raise InvalidInput(str(err)) from err
    return train_ann, val_ann, names, cfg


def train(args: argparse.Namespace, extra_callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Run the whole job; returns what ``metrics.json`` holds.

    ``extra_callbacks`` are appended to the Keras callbacks (tests use them to interrupt a run).
    """
    import keras
    import tensorflow as tf

    from kyolo.callbacks import (
        AtomicBackupAndRestore,
        AtomicModelCheckpoint,
        CocoMeanAveragePrecision,
        HistoryCSV,
        ProgressLogger,
    )
    from kyolo.data.pipeline import check_images, make_dataset
    from kyolo.distribute import (
        distribute_dataset,
        get_strategy,
        global_batch_size,
        is_multi_worker,
        patch_multi_worker,
        precision_policy,
    )
    from kyolo.encode import target_encoder
    from kyolo.export import export_saved_model
    from kyolo.finetune import Unfreeze
    from kyolo.losses import YoloLoss
    from kyolo.metrics import YoloLossComponents
    from kyolo.models import build_model
    from kyolo.optim import DEFAULTS, ScaledAfter, build_optimizer, cosine_schedule
    from kyolo.recipe import auto_batch_size
    from kyolo.saving import atomic_path, save_model

    started = time.time()
    try:
        strategy = get_strategy(args.strategy)  # multiworker: before any other TensorFlow op
    except ValueError as err:  # no TPU found, a malformed TF_CONFIG
        raise InvalidInput(f"--strategy {args.strategy}: {err}") from err
    keras.utils.set_random_seed(args.seed)
    out = run_dir(args)
    train_ann, val_ann, names, cfg = prepare(args)
    replicas = strategy.num_replicas_in_sync
    if args.batch_size == "auto":
        args.batch_size = auto_batch_size(-(-len(train_ann) // replicas))
        LOG.info("batch size %d (auto, %d training images)", args.batch_size, len(train_ann))
    batch = global_batch_size(args.batch_size, strategy)
    LOG.info(
        "strategy %s: %d replicas x %d images = global batch %d",
        args.strategy,
        replicas,
        args.batch_size,
        batch,
    )
    augment = augmentation(args)
    encode = target_encoder(cfg)

    def train_data(context):
        return make_dataset(
            train_ann,
            cfg,
            batch_size=batch,
            training=True,
            seed=args.seed,
            augment=augment,
            encode=encode,
            cache=args.cache,
            input_context=context,
        )

    def val_data(context):
        return make_dataset(
            val_ann, cfg, batch_size=batch, training=False, encode=encode, input_context=context
        )

    train_ds = distribute_dataset(strategy, train_data)
    val_ds = distribute_dataset(strategy, val_data)
    map_ds = make_dataset(val_ann, cfg, batch_size=batch, training=False)

    steps = int(np.ceil(len(train_ann) / batch))
    lr = DEFAULTS[args.optimizer]["learning_rate"] if args.lr is None else args.lr
    with strategy.scope(), precision_policy(args.precision):
        model = build_model(args.model, cfg, sync_bn=args.sync_bn)
        if args.weights:
            load_weights(args, model, cfg)
        schedule = cosine_schedule(lr, args.epochs * steps, int(args.warmup_epochs * steps))
        if args.freeze_epochs:
            schedule = ScaledAfter(schedule, args.freeze_epochs * steps, args.unfreeze_lr_scale)
        optimizer = build_optimizer(
            args.optimizer,
            schedule,
            momentum=args.momentum,
            weight_decay=args.weight_decay,
            ema=args.ema,
            ema_decay=args.ema_decay,
            ema_ramp=args.ema_ramp,
        )
        losses = [YoloLoss(cfg, s) for s in range(cfg.num_scales)]
        model.compile(
            optimizer=optimizer,
            loss=losses,
            metrics=[[YoloLossComponents(loss)] for loss in losses],
            jit_compile="auto" if args.jit is None else args.jit,
        )
        frozen = freeze_layers(args, model) if args.freeze else []
    patch_multi_worker(model, strategy)
    # Every worker restores from the chief's backup and starts from its history (on a shared
    # filesystem); each writes into its own ``out`` (docs/distributed.md).
    restore_dir = os.path.join(args.out, "backup")
    backup_dir = os.path.join(out, "backup")
    history_csv = os.path.join(args.out, "history.csv")
    resuming = os.path.isdir(restore_dir)
    if not resuming and os.path.exists(history_csv) and out == args.out:
        os.remove(history_csv)  # a fresh run, not a resumed one: start the history anew
    done = read_history(history_csv) if resuming and os.path.exists(history_csv) else {}
    if done and out != args.out:  # a resumed worker carries the chief's history on, as it does
        shutil.copyfile(history_csv, os.path.join(out, "history.csv"))
    # The backup is the commit of an epoch, so it comes after every writer of that epoch: a kill
    # before it repeats the epoch (read_history keeps its last row), never loses one. The EMA
    # swap comes first, so that val_loss, mAP and checkpoints are those of the EMA weights.
    swap_ema = keras.callbacks.SwapEMAWeights(swap_on_epoch=True) if args.ema else None
    callbacks = [
        *([swap_ema] if swap_ema else []),
        *([Unfreeze(frozen, args.freeze_epochs)] if args.freeze_epochs else []),
        CocoMeanAveragePrecision(map_ds, cfg, frequency=args.eval_every),
        ProgressLogger(),
        AtomicModelCheckpoint(
            os.path.join(out, "best.keras"),
            monitor="val_mAP50",
            mode="max",
            save_best_only=True,
            initial_value_threshold=max(done.get("val_mAP50", [None])),  # resumed: beat that
        ),
        keras.callbacks.TensorBoard(os.path.join(out, "logs")),
        HistoryCSV(os.path.join(out, "history.csv")),
        AtomicBackupAndRestore(backup_dir, swap_ema=swap_ema, restore_dir=restore_dir),
        *extra_callbacks,
    ]
    try:
        model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=args.epochs,
            callbacks=callbacks,
            verbose=0,
            shuffle=False,  # make_dataset shuffles; Keras would only warn that it cannot
        )
    except tf.errors.InvalidArgumentError:
        # tf.data cannot say which file it failed to decode; a full decoding pass can.
        check_images([*train_ann, *val_ann])
        raise
    except (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.InternalError) as err:
        if not is_multi_worker(strategy):
            raise
        raise ClusterFailure(cluster_failure(err, args.out)) from err
    save_model(model, os.path.join(out, "model.keras"), cfg=cfg, class_names=names)
    export_saved_model(model, cfg, os.path.join(out, "serving"), class_names=names)
    served = evaluate_saved_model(os.path.join(out, "serving"), val_ann, len(names))
    logs = read_history(os.path.join(out, "history.csv"))  # every epoch, also before a resume
    metrics = {
        "wall_time_s": round(time.time() - started, 1),
        "epochs": args.epochs,
        "final_loss": logs["loss"][-1],
        "best_loss": min(logs["loss"]),
        "val_mAP50": logs["val_mAP50"][-1],
        "val_mAP50_95": logs["val_mAP50_95"][-1],
        "saved_model_val_mAP50": served["mAP50"],
        "saved_model_val_mAP50_95": served["mAP50_95"],
        "history": logs,
        "config": cfg.to_dict(),
        "args": vars(args),
    }
    check_metrics(metrics)
    with atomic_path(os.path.join(out, "metrics.json")) as temp, open(temp, "w") as f:
        json.dump(metrics, f, indent=2)
    plot_curves(metrics["history"], os.path.join(out, "curves.png"))
    return metrics


def check_metrics(metrics: dict[str, Any]) -> None:
    """Raise ``ValueError`` unless every number of ``metrics`` (its ``history`` columns included)
    is finite and every mAP lies in [0, 1]: values out of range mean a corrupted or diverged run,
    which must not be reported as a result."""
    numbers = [(name, name, v) for name, v in metrics.items() if isinstance(v, int | float)]
    numbers += [
        (f"history {name} (epoch {epoch + 1})", name, v)
        for name, column in metrics.get("history", {}).items()
        for epoch, v in enumerate(column)
    ]
    for label, name, value in numbers:
        if not np.isfinite(value):
            raise ValueError(f"metrics.json not written: {label} = {value} is not finite")
        if "mAP50" in name and not 0 <= value <= 1:
            raise ValueError(f"metrics.json not written: {label} = {value} is outside [0, 1]")


def run_dir(args: argparse.Namespace) -> str:
    """Where this process writes (:func:`kyolo.distribute.write_dir`), created.

    A non-chief worker generates DigitsDet in its own folder, not in the chief's ``OUT/data``,
    which the chief is writing at the same time.
    """
    from kyolo.distribute import write_dir

    out = write_dir(args.out)
    if out != args.out and args.data_format == "digits" and not args.data_dir:
        args.data_dir = os.path.join(out, "data")
    os.makedirs(out, exist_ok=True)
    return out


class ClusterFailure(CommandError):
    """A multi-worker run lost a worker; the message says how to resume (one line: cli_main)."""


def cluster_failure(err: Exception, out: str) -> str:
    """What a multi-worker step's failure means and how to go on: ``err`` is TF's error."""
    metadata = os.path.join(out, "backup", "training_metadata.json")
    epoch = 0
    if os.path.isfile(metadata):
        with open(metadata) as f:
            epoch = json.load(f)["epoch"]
    first_line = str(getattr(err, "message", err)).strip().splitlines()[0]
    return (
        f"the cluster stopped: a worker failed or was stopped ({type(err).__name__}: "
        f"{first_line}). Restart every worker with --resume --out {out}: the run goes on "
        f"after epoch {epoch} (the chief's last backup)"
    )


def read_history(path: str) -> dict[str, list[float]]:
    """``CSVLogger``'s file as ``{column: values}`` in epoch order.

    An epoch repeated after a resume (killed after its row, before its backup) keeps its last row.
    """
    import csv

    with open(path, newline="") as f:
        by_epoch = {row["epoch"]: row for row in csv.DictReader(f)}
    rows = sorted(by_epoch.values(), key=lambda row: int(row["epoch"]))
    return {key: [float(row[key]) for row in rows] for key in rows[0]} if rows else {}


def evaluate_saved_model(path: str, annotations: list, num_classes: int) -> dict[str, float]:
    """mAP of the exported SavedModel on raw images, boxes compared in original image pixels."""
    from kyolo.evaluate import coco_map, detect_annotations
    from kyolo.export.runtime import load_detector

    return coco_map(*detect_annotations(load_detector(path), annotations), num_classes)


def plot_curves(history: dict[str, list[float]], path: str) -> None:
    """Loss (train/val) and val mAP per epoch, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = np.arange(1, len(history["loss"]) + 1)
    for key in ("loss", "val_loss"):
        if key in history:
            left.plot(epochs, history[key], label=key)
    left.set(xlabel="epoch", ylabel="loss", yscale="log", title="YOLO loss")
    left.legend()
    measured = np.asarray(history.get("val_mAP_epoch", []), int)
    measured = np.unique(measured)  # the epochs the mAP was evaluated at (others carry it)
    for key in ("val_mAP50", "val_mAP50_95"):
        if key in history:
            right.plot(measured + 1, np.asarray(history[key])[measured], "o-", label=key)
    right.set(xlabel="epoch", ylabel="mAP", ylim=(0, 1), title="validation mAP (pycocotools)")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> None:
    cli_main("training.train", command, argv)


def command(argv: list[str]) -> None:
    from kyolo.data import AnnotationError
    from kyolo.distribute import is_chief, write_dir

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parse_args(argv, parser)
    chief = is_chief()  # only the chief owns --out; the other workers write in their own folder
    if chief:
        check_out(parser, args)
        check_resume(parser, args)
    for warning in setting_warnings(args, parser):
        LOG.warning(warning)
    created = not os.path.exists(args.out)
    if args.exist_ok and chief:  # a new run: nothing of the previous one may be resumed
        shutil.rmtree(os.path.join(args.out, "backup"), ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(args.out, "history.csv"))
    written = write_dir(args.out)
    if not chief:  # a killed run's leftovers: this run writes its copies anew
        shutil.rmtree(written, ignore_errors=True)
    os.makedirs(written, exist_ok=True)
    write_run_config(parser, args, written)
    try:
        metrics = train(args)
    except (InvalidInput, AnnotationError):
        if created and chief:  # a run that fails on its data or settings leaves nothing behind
            shutil.rmtree(args.out, ignore_errors=True)
        raise
    if not chief:  # Keras' multi-worker pattern: a worker's copies go when the run is done
        shutil.rmtree(written, ignore_errors=True)
        return
    print(
        f"done in {metrics['wall_time_s']:.0f} s: val mAP50 {metrics['val_mAP50']:.3f}, "
        f"mAP50-95 {metrics['val_mAP50_95']:.3f}; SavedModel mAP50 "
        f"{metrics['saved_model_val_mAP50']:.3f}; everything is in {args.out}"
    )


if __name__ == "__main__":
    main()
