"""TensorBoard summaries of a keras_icnn training run (the trainers' ``--tensorboard_dir``).

:class:`TrainingSummaries` writes, once per epoch, every entry of the epoch's logs (the
loss terms the models report: ``filter_loss`` of an interpretable CNN, ``p`` and the
reconstruction terms of an explainer, ``std_loss`` / ``csg_loss`` / ``l1_density`` of a
CSG model; accuracies; the ``val_`` ones), plus what the logs do not hold: ``lambda_f`` of
each ``InterpretableConv`` (when it does not depend on the batch: the ``constant`` and
``inverse_epoch`` schedules), ``-log p`` beside ``p``, the phase of a CSG epoch
(``csg_phase``: 1 for a CSG epoch, 0 for STD) and the gate matrix as an image; and, once,
the run's hyper-parameters (as text, and in TensorBoard's HParams tab when the
``tensorboard`` package, ``pip install 'keras_icnn[tensorboard]'``, is installed).

Example:
    >>> from keras_icnn.models.callbacks import TrainingSummaries
    >>> model.fit(train, epochs=5, callbacks=[
    ...     TrainingSummaries("/tmp/tb/interpretable", hparams={"learning_rate": 1e-3})])
    $ tensorboard --logdir /tmp/tb
"""
import json
import math

import keras
import numpy as np
import tensorflow as tf


def _hparam_value(value):
    """A value the HParams plugin takes (bool, int, float, str); others as JSON text."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, default=str)


class TrainingSummaries(keras.callbacks.Callback):
    """Per-epoch TensorBoard summaries of a keras_icnn model; see the module docstring.

    Args:
        log_dir: the run's event-file directory (one per model: TensorBoard shows each
            directory under ``--logdir`` as a run).
        hparams: the run's settings (a dict, e.g. ``dataclasses.asdict(config)``), written
            once at the start.
    """

    def __init__(self, log_dir, hparams=None):
        super().__init__()
        if not log_dir:
            raise ValueError("`log_dir` must name a directory. Received: log_dir="
                             f"{log_dir!r}")
        self.log_dir = str(log_dir)
        self.hparams = dict(hparams or {})
        self._writer = None

    def on_train_begin(self, logs=None):
        self._writer = tf.summary.create_file_writer(self.log_dir)
        if not self.hparams:
            return
        with self._writer.as_default():
            tf.summary.text("hparams", json.dumps(self.hparams, indent=1, default=str), step=0)
            try:  # the HParams tab's own record needs the tensorboard package
                from tensorboard.plugins.hparams import api as hp
            except ImportError:
                pass
            else:
                hp.hparams({k: _hparam_value(v) for k, v in self.hparams.items()})
        self._writer.flush()

    def on_epoch_end(self, epoch, logs=None):
        if self._writer is None:
            self.on_train_begin()
        scalars = {k: float(v) for k, v in (logs or {}).items()
                   if np.ndim(v) == 0 and np.isfinite(float(v))}
        if "p" in scalars and scalars["p"] > 0:
            scalars["neg_log_p"] = -math.log(scalars["p"])
        scalars.update(self._model_scalars())
        with self._writer.as_default(step=epoch):
            for name, value in scalars.items():
                tf.summary.scalar(name, value)
            gate = getattr(self.model, "gate_layer", None)
            if gate is not None:  # G [C, K] as a grey picture, 0 black, max |g| white
                g = np.abs(np.asarray(gate.gate, np.float32))
                g = g / max(float(g.max()), 1e-12)
                tf.summary.image("gate_matrix", g[None, :, :, None], step=epoch)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _model_scalars(self):
        from keras_icnn.layers import InterpretableConv

        out = {}
        for layer in self.model._flatten_layers(include_self=False):
            if isinstance(layer, InterpretableConv) and layer.loss_schedule in (
                    "constant", "inverse_epoch"):
                out[f"lambda_f/{layer.name}"] = float(layer.filter_loss_weight())
        phase = getattr(self.model, "phase", None)
        if phase in ("std", "csg"):
            out["csg_phase"] = float(phase == "csg")
        return out


def read_summaries(log_dir):
    """What :class:`TrainingSummaries` wrote to ``log_dir`` (one run), read back without
    TensorBoard: ``{tag: {step: value}}`` (scalars as floats; images and text as the
    number of bytes of their serialized tensor).

    Example:
        >>> curves = read_summaries("/tmp/tb/interpretable")
        >>> sorted(curves["filter_loss"].items())      # [(epoch, value), ...]
    """
    import glob
    import os

    files = sorted(glob.glob(os.path.join(str(log_dir), "events.out.tfevents.*")))
    if not files:
        raise FileNotFoundError(f"no TensorBoard event files in {log_dir}")
    out = {}
    for path in files:
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                tensor = tf.make_ndarray(value.tensor) if value.HasField("tensor") else None
                if tensor is not None and tensor.dtype.kind == "f" and tensor.ndim == 0:
                    got = float(tensor)
                elif value.HasField("simple_value"):
                    got = float(value.simple_value)
                else:
                    got = int(value.tensor.ByteSize())
                out.setdefault(value.tag, {})[int(event.step)] = got
    return out


class ExplainerDiagnostics(keras.callbacks.Callback):
    """Adds :meth:`ExplainerDistiller.diagnose` on a fixed batch to each epoch's logs
    (``diag_<name>`` keys: in ``fit``'s history and on the progress bar's last line).

    Example:
        >>> distiller.fit(images, epochs=20, callbacks=[ExplainerDiagnostics(images[:64])])
    """

    def __init__(self, batch):
        super().__init__()
        self.batch = batch

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update({f"diag_{k}": v for k, v in self.model.diagnose(self.batch).items()})
