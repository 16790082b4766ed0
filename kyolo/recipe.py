"""Defaults of the training recipe that depend on the dataset, chosen by measurement.

On NeonTrees (91 training images, ``docs/real-data.md``) the batch size decided the result of a
30-epoch run more than any other setting: val mAP50 0.03 at batch 16 (6 updates an epoch), 0.28 at
8, 0.37 at 4 and 0.36 at 2 (seed 0), while at batch 4 mosaic, EMA or a learning rate of 1e-3 or
5e-3 instead of 2e-3 moved it by 0.03 at most. A short run on a small dataset is short of
*updates*; :func:`auto_batch_size` halves the batch until an epoch has enough of them, and leaves
larger datasets (DigitsDet's 1000 images: 63 updates at 16) at the batch they train well with.
"""

from __future__ import annotations

import math

MIN_STEPS_PER_EPOCH = 20
"""Updates per epoch :func:`auto_batch_size` aims for (NeonTrees at batch 4: 23)."""


def auto_batch_size(
    num_images: int,
    *,
    largest: int = 16,
    smallest: int = 4,
    min_steps: int = MIN_STEPS_PER_EPOCH,
) -> int:
    """The largest batch ``largest / 2^k`` whose epoch over ``num_images`` has ``min_steps`` or
    more updates, never below ``smallest`` (BatchNorm's batch statistics get noisy below it).

    Examples: 1000 images → 16 (63 steps), 200 → 8 (25), 91 → 4 (23), 10 → 4 (3).
    """
    if num_images < 1:
        raise ValueError(f"auto_batch_size needs at least one image, got {num_images}")
    batch = largest
    while batch > smallest and math.ceil(num_images / batch) < min_steps:
        batch = max(smallest, batch // 2)
    return batch
