"""kyolo.recipe.auto_batch_size: halve the batch until an epoch has 20 updates, not below 4."""

import pytest

from kyolo.recipe import auto_batch_size


@pytest.mark.parametrize(
    ("images", "batch"),
    [
        (1000, 16),  # DigitsDet: ceil(1000 / 16) = 63 steps
        (305, 16),  # ceil(305 / 16) = 20: enough
        (304, 8),  # 304 / 16 = 19 steps: halve; 304 / 8 = 38
        (200, 8),  # 13 steps at 16, 25 at 8
        (91, 4),  # NeonTrees: 6, 12, then 23 steps
        (10, 4),  # never below 4, even with 3 steps
    ],
)
def test_auto_batch_size(images, batch):
    assert auto_batch_size(images) == batch


def test_auto_batch_size_bounds_and_errors():
    assert auto_batch_size(40, largest=32, smallest=1, min_steps=40) == 1
    assert auto_batch_size(100, largest=12, smallest=4) == 4  # 12 → 6 (17 steps) → 4 (not 3)
    with pytest.raises(ValueError, match="at least one image"):
        auto_batch_size(0)


def test_batch_size_flag_defaults_to_auto_and_takes_integers():
    from training.train import parse_args

    assert parse_args([]).batch_size == "auto"
    assert parse_args(["--batch-size", "8"]).batch_size == 8
    for bad in ("0", "x"):
        with pytest.raises(SystemExit):
            parse_args(["--batch-size", bad])
