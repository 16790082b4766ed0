"""YOLOv5's batch-level means under ``tf.distribute``: kyolo equals YOLOv5 under DDP.

Two logical CPU devices must be configured before TensorFlow starts, so the check runs in a
subprocess (``python -m tests.losses.test_distributed``) that prints its numbers as JSON.
"""

import json

import numpy as np

from tests.helpers import run_module

# Centres avoid cell borders: there YOLOv5 duplicates a row (docs/losses.md, shared slots).
ROWS = [
    [0, 1, 0.3, 0.4, 0.2, 0.3],
    [0, 2, 0.7, 0.6, 0.4, 0.3],
    [1, 0, 0.52, 0.47, 0.6, 0.5],
    [2, 1, 0.2, 0.8, 0.1, 0.15],
    [3, 0, 0.6, 0.3, 0.3, 0.4],
    [3, 2, 0.4, 0.6, 0.2, 0.2],
]


def main() -> None:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    from kyolo.compat.yolov5 import yolov5_arguments
    from kyolo.config import YOLOV5
    from kyolo.encode import encode_targets
    from kyolo.losses import YoloLoss
    from references import yolov5_np as ref

    cfg = YOLOV5.replace(num_classes=3, input_size=(64, 64))
    anchors, strides, hyp = yolov5_arguments(cfg)
    rows = np.array(ROWS, np.float32)
    rng = np.random.default_rng(0)
    p = [0.5 * rng.standard_normal((4, 3, *cfg.grid_size(s), 8)) for s in range(3)]
    p = [x.astype(np.float32) for x in p]
    heads = tuple(np.transpose(x, (0, 2, 3, 1, 4)).reshape(4, *x.shape[2:4], -1) for x in p)
    per_image = [
        encode_targets(rows[rows[:, 0] == i, 2:], rows[rows[:, 0] == i, 1].astype(np.int32), cfg)
        for i in range(4)
    ]
    y_true = tuple(np.stack([t[s].numpy() for t in per_image]) for s in range(3))

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        losses = [YoloLoss(cfg, s) for s in range(3)]
    batch = next(
        iter(
            strategy.experimental_distribute_dataset(
                tf.data.Dataset.from_tensor_slices((y_true, heads)).batch(4)
            )
        )
    )
    per_replica = strategy.run(
        lambda y, h: tf.add_n([loss(y[s], h[s]) for s, loss in enumerate(losses)]), args=batch
    )
    # YOLOv5 under DDP: each rank's ComputeLoss on its 2 images gives b_r · L_r; train.py
    # multiplies by WORLD_SIZE and DDP averages gradients, so rank r contributes b_r · L_r.
    ddp = []
    for rank in range(2):
        mine = (rows[:, 0] >= 2 * rank) & (rows[:, 0] < 2 * rank + 2)
        rank_rows = rows[mine] - [2 * rank, 0, 0, 0, 0, 0]
        half = [x[2 * rank : 2 * rank + 2].astype(np.float64) for x in p]
        ddp.append(ref.compute_loss(half, rank_rows.astype(np.float64), anchors, strides, hyp)[0])
    whole = ref.compute_loss(
        [x.astype(np.float64) for x in p], rows.astype(np.float64), anchors, strides, hyp
    )[0]
    kyolo = [float(v) for v in strategy.experimental_local_results(per_replica)]
    print(json.dumps({"kyolo": kyolo, "ddp": ddp, "single_device": whole}))


def test_mean_reduction_per_replica_equals_yolov5_ddp():
    result = run_module("tests.losses.test_distributed")
    assert result.returncode == 0, result.stderr[-2000:]
    got = json.loads(result.stdout.strip().splitlines()[-1])
    # Keras already divided each replica's loss by the replica count; their sum is the objective.
    np.testing.assert_allclose(got["kyolo"], got["ddp"], rtol=1e-5)
    # Box and class means are per replica, so one device holding the batch differs.
    assert abs(sum(got["kyolo"]) - got["single_device"]) > 1e-2 * got["single_device"]


if __name__ == "__main__":
    main()
