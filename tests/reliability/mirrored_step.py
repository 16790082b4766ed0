"""One ``model.fit`` step on one device and under ``MirroredStrategy`` over 2 logical CPUs.

Logical devices must be configured before TensorFlow initialises, hence a subprocess:
``python -m tests.reliability.mirrored_step OUT.npz CASE...`` writes, per case, the epoch loss and
the weights before and after the step of both runs to ``OUT.npz`` (read by
``test_distributed.py``). In the loss cases BatchNormalization layers are frozen (inference mode,
moving statistics) in both runs: in training mode each replica would normalise with its own half
batch's statistics, which no loss can make equal to one device (PyTorch DDP without SyncBatchNorm
differs the same way). The ``sync`` case trains it: plain BN on one device against
:class:`kyolo.models.SyncBatchNormalization` on the two replicas.
"""

from __future__ import annotations

import sys

import numpy as np

CASES = {
    # case: (preset, --set overrides, boxes per image (replica 0 gets images 0-1, replica 1 2-3),
    #        BatchNorm: "frozen" in both runs or "sync", trained)
    "yolov3": ("yolov3", (), (1, 3, 2, 0), "frozen"),
    "yolov5_obj": ("yolov5", ("loss.box_gain=0", "loss.cls_gain=0"), (1, 3, 2, 0), "frozen"),
    "yolov5_balanced": ("yolov5", (), (1, 3, 1, 3), "frozen"),
    "yolov5_unbalanced": ("yolov5", (), (1, 3, 2, 0), "frozen"),
    "sync_bn": ("yolov3", (), (1, 3, 2, 0), "sync"),
}
"""``yolov5_obj``: with unequal positives per replica only YOLOv5's objectness mean is exact
(docs/losses.md); ``yolov5_balanced``: equal positives per replica make every term exact;
``yolov5_unbalanced``: the documented difference (box and class means are per replica), the
control that shows the comparison can fail."""

BATCH, SIZE, LR = 4, 64, 0.01


def freeze_batch_norm(model):
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    return model


def prepare(model, norm: str, replicas: int):
    """The case's BatchNorm: frozen in both runs, or trained (plain on one device, synchronized
    on two replicas)."""
    from kyolo.models import synchronized_batch_norm

    if norm == "frozen":
        return freeze_batch_norm(model)
    if replicas == 1:
        return model
    return synchronized_batch_norm(model)


def batch(case: str, cfg):
    """``(images, y_true per scale)``: a global batch of 4; balanced cases repeat boxes 0-1."""
    from tests.helpers import random_boxes, stack_targets

    rng = np.random.default_rng(0)
    counts = CASES[case][2]
    per_image = [random_boxes(rng, n, cfg.num_classes) for n in counts[:2]]
    if counts[2:] == counts[:2]:
        per_image += per_image
    else:
        per_image += [random_boxes(rng, n, cfg.num_classes) for n in counts[2:]]
    images = rng.random((BATCH, SIZE, SIZE, 3)).astype(np.float32)
    return images, tuple(t.numpy() for t in stack_targets(cfg, per_image))


def one_step(strategy, case: str) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
    import keras
    import tensorflow as tf

    from kyolo.losses import YoloLoss
    from kyolo.models import build_model
    from tests.helpers import nano_config

    preset, overrides, _, norm = CASES[case]
    cfg = nano_config(preset, 3, SIZE, *overrides)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = build_model("nano", cfg, width=4)
        model = prepare(model, norm, strategy.num_replicas_in_sync)
        model.compile(keras.optimizers.SGD(LR), loss=[YoloLoss(cfg, s) for s in range(2)])
    before = [w.copy() for w in model.get_weights()]
    images, y_true = batch(case, cfg)
    # fit distributes the dataset (2 images per replica); train_on_batch would give each replica
    # the whole batch.
    data = tf.data.Dataset.from_tensors((images, y_true))
    history = model.fit(data, epochs=1, verbose=0)
    return history.history["loss"][0], before, model.get_weights()


def main(out: str, cases: list[str]) -> None:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategies = {
        "one": tf.distribute.get_strategy(),
        "two": tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]),
    }
    arrays = {}
    for case in cases:
        for name, strategy in strategies.items():
            loss, before, after = one_step(strategy, case)
            arrays[f"{case}/{name}/loss"] = np.float64(loss)
            for i, (b, a) in enumerate(zip(before, after, strict=True)):
                arrays[f"{case}/{name}/before/{i:03d}"] = b
                arrays[f"{case}/{name}/after/{i:03d}"] = a
    np.savez(out, **arrays)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
