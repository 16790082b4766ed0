"""Optimizers of the training recipe: Adam or Nesterov SGD, a warm-up cosine schedule, ramped EMA.

:func:`build_optimizer` picks one by name from :data:`OPTIMIZERS`. Both are Keras' optimizers with
two additions that survive ``get_config`` / saving (registered as ``kyolo>Adam``, ``kyolo>SGD``):

* the EMA of the weights (``use_ema=True``) may ramp its decay like YOLOv5's ``ModelEMA``,
  ``d(u) = ema_momentum · (1 − exp(−u / ema_ramp))`` after ``u`` updates (:func:`ema_decay`),
  instead of Keras' constant ``ema_momentum``. With YOLOv5's 0.9999 a constant decay averages
  ~10⁴ steps, far more than a small-data run has, and the average would still hold much of the
  random initialisation; the ramp keeps it a few steps behind early on (d(100) ≈ 0.05,
  d(2000) ≈ 0.63). As in Keras, the first update copies the weights.
* weight decay leaves out the variables named in ``no_decay`` (by default biases and BatchNorm's
  ``gamma``/``beta``, YOLOv5's parameter groups g0 and g2).

Keras applies weight decay decoupled from the gradient (``w ← w − lr · wd · w`` each step), as
AdamW / SGDW do. YOLOv5's SGD adds ``wd · w`` to the gradient, which the momentum buffer then
amplifies by up to ``1 / (1 − momentum)`` (16 at 0.937): YOLOv5's 5e-4 corresponds to about 8e-3
here. EMA averages the trainable variables only (``docs/recipe.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

NO_DECAY = ("bias", "gamma", "beta")
"""Variable names (regular expressions, searched) that weight decay leaves out."""


def ema_decay(updates: Any, decay: float, ramp: float | None) -> Any:
    """YOLOv5 ``ModelEMA.decay``: ``decay · (1 − exp(−updates / ramp))``; ``ramp=None``: ``decay``.

    Args:
        updates: number of optimizer updates so far, counting the current one (≥ 1), a scalar.
        decay: the limit of the decay for many updates (``ema_momentum``).
        ramp: updates over which the decay rises to ``1 − 1/e`` of ``decay``.
    """
    if ramp is None:
        return decay
    # -expm1(-x) = 1 - exp(-x) without cancellation at small x (float32).
    return -decay * ops.expm1(-ops.cast(updates, "float32") / ramp)


def cosine_schedule(
    learning_rate: float, total_steps: int, warmup_steps: int, alpha: float = 0.01
) -> keras.optimizers.schedules.CosineDecay:
    """Linear warm-up from 0 to ``learning_rate`` over ``warmup_steps``, then cosine to ``alpha ·
    learning_rate`` at ``total_steps``."""
    return keras.optimizers.schedules.CosineDecay(
        0.0,
        decay_steps=max(1, total_steps - warmup_steps),
        warmup_target=learning_rate,
        warmup_steps=warmup_steps,
        alpha=alpha,
    )


@keras.saving.register_keras_serializable(package="kyolo")
class ScaledAfter(keras.optimizers.schedules.LearningRateSchedule):
    """``schedule(step) · scale`` from ``step >= boundary`` on, ``schedule(step)`` before.

    The learning rate of the second stage of a fine-tuning (:mod:`kyolo.finetune`): a function of
    the step alone, so a resumed run continues on the same curve.
    """

    def __init__(
        self, schedule: keras.optimizers.schedules.LearningRateSchedule, boundary: int, scale: float
    ) -> None:
        self.schedule = schedule
        self.boundary = int(boundary)
        self.scale = float(scale)

    def __call__(self, step: Any) -> Any:
        rate = self.schedule(step)
        return ops.where(ops.cast(step, "int64") < self.boundary, rate, rate * self.scale)

    def get_config(self) -> dict[str, Any]:
        return {
            "schedule": keras.saving.serialize_keras_object(self.schedule),
            "boundary": self.boundary,
            "scale": self.scale,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ScaledAfter:
        schedule = keras.saving.deserialize_keras_object(config["schedule"])
        return cls(schedule, config["boundary"], config["scale"])


class _RecipeOptimizer:
    """Mixin for a Keras optimizer: ramped EMA decay and weight-decay exclusions, in the config."""

    def __init__(
        self,
        *args: Any,
        ema_ramp: float | None = None,
        no_decay: Sequence[str] = NO_DECAY,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if ema_ramp is not None and ema_ramp <= 0:
            raise ValueError(f"ema_ramp must be > 0 or None, got {ema_ramp}")
        self.ema_ramp = ema_ramp
        self.no_decay = tuple(no_decay)
        if self.no_decay:
            self.exclude_from_weight_decay(var_names=list(self.no_decay))

    # Overrides Keras' private hook (keras 3.x), called after each update with the new weights
    # and before ``iterations`` counts that update.
    def _update_model_variables_moving_average(self, trainable_variables: list) -> None:
        if not self.use_ema:
            return
        updates = self.iterations + 1
        decay = ops.where(updates > 1, ema_decay(updates, self.ema_momentum, self.ema_ramp), 0.0)
        for var, average in zip(
            trainable_variables, self._model_variables_moving_average, strict=True
        ):
            if average is not None:
                d = ops.cast(decay, var.dtype)
                average.assign(d * average + (1 - d) * var)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "ema_ramp": self.ema_ramp, "no_decay": list(self.no_decay)}


@keras.saving.register_keras_serializable(package="kyolo")
class Adam(_RecipeOptimizer, keras.optimizers.Adam):
    """``keras.optimizers.Adam`` with ``ema_ramp`` and ``no_decay`` (module docstring)."""


@keras.saving.register_keras_serializable(package="kyolo")
class SGD(_RecipeOptimizer, keras.optimizers.SGD):
    """``keras.optimizers.SGD`` with ``ema_ramp`` and ``no_decay`` (module docstring)."""


def _adam(learning_rate: Any, momentum: float, **kwargs: Any) -> Adam:
    # YOLOv5's --optimizer Adam uses betas=(momentum, 0.999).
    return Adam(learning_rate, beta_1=momentum, **kwargs)


def _sgd(learning_rate: Any, momentum: float, **kwargs: Any) -> SGD:
    return SGD(learning_rate, momentum=momentum, nesterov=True, **kwargs)


OPTIMIZERS = {"adam": _adam, "sgd": _sgd}
"""Name → ``builder(learning_rate, momentum, **keras_kwargs)``."""
DEFAULTS = {
    "adam": {"learning_rate": 2e-3, "momentum": 0.9},
    "sgd": {"learning_rate": 1e-2, "momentum": 0.937},
}
"""Per optimizer: the learning rate and momentum used when none is given (SGD: YOLOv5's)."""


def build_optimizer(
    name: str,
    learning_rate: Any = None,
    *,
    momentum: float | None = None,
    weight_decay: float = 0.0,
    ema: bool = False,
    ema_decay: float = 0.9999,
    ema_ramp: float | None = 2000.0,
) -> keras.optimizers.Optimizer:
    """The optimizer called ``name`` in :data:`OPTIMIZERS`.

    Args:
        name: ``"adam"`` or ``"sgd"`` (Nesterov).
        learning_rate: a float or a schedule (:func:`cosine_schedule`); None: :data:`DEFAULTS`.
        momentum: SGD momentum, or Adam's ``beta_1``; None: :data:`DEFAULTS`.
        weight_decay: decoupled, per step ``w ← w − lr · wd · w``, not on :data:`NO_DECAY`.
        ema: keep an EMA of the weights (swap it in with ``keras.callbacks.SwapEMAWeights``).
        ema_decay: its decay for many updates (YOLOv5 0.9999).
        ema_ramp: updates of the ramp (YOLOv5 2000), None for Keras' constant decay.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose from {sorted(OPTIMIZERS)}")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    defaults = DEFAULTS[name]
    return OPTIMIZERS[name](
        defaults["learning_rate"] if learning_rate is None else learning_rate,
        defaults["momentum"] if momentum is None else momentum,
        weight_decay=weight_decay or None,
        use_ema=ema,
        ema_momentum=ema_decay,
        ema_ramp=ema_ramp,
    )
