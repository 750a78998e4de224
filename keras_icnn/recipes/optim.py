"""The trainers' learning-rate schedules (constant, cosine, step: :func:`decay`, one builder for
every recipe) and the CSG recipe's optimizers, each phase's schedule advancing only over that
phase's own steps."""
import keras

from keras_icnn.config.choices import LR_SCHEDULES
from keras_icnn.validation import check_choice

CSG_LR_SCHEDULES = LR_SCHEDULES  # its old name: every trainer has the same list
STEP_MILESTONES = (0.4, 0.6, 0.8)
STEP_GAMMA = 0.1
OPTIMIZERS = ("adam", "sgd")


def decay(config, lr, steps):
    """``lr`` over an optimizer's ``steps`` updates under ``config.learning_rate_schedule``:
    the constant ``lr``, a cosine decay to 0, or step (x0.1 at 40%, 60% and 80% of ``steps``).

    Example:
        >>> from keras_icnn.recipes import ICNNConfig, optim
        >>> optim.decay(ICNNConfig(learning_rate_schedule="step"), 1e-3, 100)(60)  # 1e-5
    """
    check_choice(config, "learning_rate_schedule", LR_SCHEDULES)
    if config.learning_rate_schedule == "constant" or steps == 0:
        return lr
    if config.learning_rate_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(lr, decay_steps=steps)
    boundaries = [max(1, int(round(f * steps))) for f in STEP_MILESTONES]
    values = [lr * STEP_GAMMA ** i for i in range(len(boundaries) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


def network_learning_rates(config, steps_per_epoch, phases):
    """(STD lr, CSG lr, baseline lr): constants, or decays (cosine, step) over the steps each
    optimizer will take. The STD and CSG optimizers step only in their own epochs, so each
    schedule advances only there, as the authors' two schedulers do (train.py steps
    ``scheduler`` after STD epochs and ``scheduler_reg`` after CSG epochs). Unlike there,
    the step milestones are placed in each phase's own steps: train.py's milestones count all
    epochs, so with one CSG epoch in three its CSG rate never reaches the first one."""
    return (decay(config, config.learning_rate, phases.count("std") * steps_per_epoch),
            decay(config, config.csg_learning_rate, phases.count("csg") * steps_per_epoch),
            decay(config, config.learning_rate, len(phases) * steps_per_epoch))


def network_optimizer(config, learning_rate):
    """The network optimizer of ``config`` (Adam, or SGD with momentum / Nesterov)."""
    check_choice(config, "optimizer", OPTIMIZERS)
    decay = dict(weight_decay=config.weight_decay) if config.weight_decay else {}
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=config.momentum,
                                    nesterov=config.nesterov, **decay)
    return keras.optimizers.Adam(learning_rate, **decay)
