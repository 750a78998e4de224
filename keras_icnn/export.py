"""Export to SavedModel for TensorFlow Serving, with the explanation in the served model.

Layout: ``<base_dir>/<name>/<version>/`` (TF Serving's), two signatures:

* ``serving_default``: ``images`` [batch, H, W, 3] -> ``probabilities`` [batch, C],
  ``class_ids`` [batch] (int64).
* ``explain``: ``images`` -> the fields of :class:`keras_icnn.explain.Explanation`
  but the heatmaps, for the predicted class, computed by the same code
  (:class:`keras_icnn.explain.Explainable`): ``probabilities``, ``class_ids``,
  ``part_locations`` [batch, F, 2] (x, y image pixels of each filter's peak),
  ``part_scores`` [batch, F] (peak activations), ``filter_classes`` [F] (each
  filter's category; -1 where the model has none), ``contributions`` [batch, F]
  (gradient x activation of each filter for the predicted class's logit),
  ``contribution_shares`` [batch, F] (the same as a share of that logit), and for
  CSG models ``filter_relevance`` [batch, F] (``G[predicted class]``). For an
  explainer, the filters are its conv-interp-2's and the logit is the
  performer's own classifier on the explainer's reconstruction. With decision trees
  attached (``trees=``, ``--trees``: one per class, SPEC §9): ``mode`` [batch] (the node id of
  the image's decision mode in its predicted class's tree, -1 where that class has no tree)
  and ``mode_part_shares`` [batch, P + 1] (each part's share of that mode's estimate; the
  names in ``assets.extra/trees.json``).

Preprocessing (the models' own ``Rescaling``) is inside the graph; inputs are
validated inside the graph (rank, size, finite values) with messages naming
the expected shape. The result is a pure TF graph: ``tf.saved_model.load``
serves it in a process that never imports keras_icnn.
"""

import dataclasses
import os
import sys

import keras
import numpy as np
import tensorflow as tf

from keras_icnn import validation
from keras_icnn.config.flags import option
from keras_icnn.models import heads
from keras_icnn.explain import KINDS, Explainable, model_kind  # noqa: F401  (re-exported)

WARMUP_FILE = "tf_serving_warmup_requests"
# The served images input: float32 pixel values 0-255, or uint8.
INPUT_DTYPES = ("float32", "uint8")
EXPLAIN_FIELDS = ("part_locations", "part_scores", "contributions", "contribution_shares",
                  "filter_relevance")


def next_version(model_dir):
    """1 + the largest integer version folder in ``model_dir`` (1 when there is none)."""
    if not os.path.isdir(model_dir):
        return 1
    versions = [int(d) for d in os.listdir(model_dir) if d.isdigit()]
    return max(versions, default=0) + 1


class _Exporter:
    """Builds the two signature functions for one model."""

    def __init__(self, model, layer_name=None, input_dtype="float32", trees=None):
        if input_dtype not in INPUT_DTYPES:
            raise ValueError(f"`input_dtype` must be one of {INPUT_DTYPES}. "
                             f"Received: {input_dtype!r}")
        if model_kind(model) == "explainer":
            layer_name = None  # an explainer explains its conv-interp-2
        self.explainable = Explainable(model, layer_name, argument="layer_name")
        self.model, self.kind = model, self.explainable.kind
        self.input_dtype = tf.as_dtype(input_dtype)
        self.height, self.width, self.channels = self.explainable.image_shape
        self.modes = None
        if trees:
            from keras_icnn.trees import ModeTable

            layers = {t.layer for t in trees.values()}
            if layers - {self.explainable.layer, None}:
                raise ValueError(f"the trees explain layer(s) {sorted(map(str, layers))}; the "
                                 f"export explains {self.explainable.layer!r}")
            self.modes = ModeTable.from_trees(trees, self.explainable.num_classes)

    def _validate(self, images):
        expected = f"[batch, {self.height}, {self.width}, {self.channels}]"
        # Rank first, then the sizes, without comparing shapes of different lengths
        # (that fails inside Equal with "Incompatible shapes" before any assert).
        shape = tf.concat([tf.shape(images), tf.zeros([4], tf.int32)], 0)[:4]
        ok = tf.logical_and(
            tf.equal(tf.rank(images), 4),
            tf.reduce_all(tf.equal(shape[1:], [self.height, self.width, self.channels])))
        checks = [tf.debugging.Assert(
            ok, [f"images must have shape {expected}. Received: shape", tf.shape(images)])]
        with tf.control_dependencies(checks):
            x = tf.cast(images, tf.float32)
            x = tf.debugging.assert_all_finite(x, "images must be finite (no NaN or Inf)")
        return tf.ensure_shape(x, [None, self.height, self.width, self.channels])

    @staticmethod
    def _at_least_one(x):
        """``(x, n)``: ``x``, or one blank image when it holds none, and its true size.

        Some kernels (oneDNN's batch norm among them) fail on an empty batch; an
        empty request runs on one blank image and gets its outputs cut to 0 rows.
        A non-empty batch passes through uncopied.
        """
        n = tf.shape(x)[0]
        x = tf.cond(n > 0, lambda: x,
                    lambda: tf.zeros(tf.concat([[1], tf.shape(x)[1:]], 0), x.dtype))
        return x, n

    def serve(self, images):
        x, n = self._at_least_one(self._validate(images))
        logits = tf.cast(self.explainable.classifier(x, training=False), tf.float32)[:n]
        return {"probabilities": heads.probabilities(logits, self.explainable.head),
                "class_ids": tf.argmax(logits, axis=-1, output_type=tf.int64)}

    def explain(self, images):
        x, n = self._at_least_one(self._validate(images))
        r = self.explainable(x)
        out = {"probabilities": heads.probabilities(r["logits"], self.explainable.head),
               "class_ids": tf.cast(r["classes"], tf.int64)}
        out.update({k: r[k] for k in EXPLAIN_FIELDS if k in r})
        if self.modes is not None:
            out["mode"], out["mode_part_shares"], _ = self.modes.assign(
                r["classes"], r["contributions"], tf.reduce_sum(r["maps"], axis=[1, 2]))
        # Per-image outputs lose the blank image of an empty request; filter_classes is per model.
        out = {k: v[:n] for k, v in out.items()}
        out["filter_classes"] = tf.cast(self.explainable.filter_classes(), tf.int32)
        return out


def export_model(model, base_dir, name, version=None, layer_name=None, input_dtype="float32",
                 serving_warmup=None, trees=None, **deprecated):
    """Export ``model`` to ``<base_dir>/<name>/<version>/`` with ``serving_default`` and ``explain``.

    Args:
        model: a Keras classifier (ordinary, ``InterpretableModel``,
            ``CSGModel``) or an ``ExplainerDistiller`` (explainer + performer).
        base_dir, name: TF Serving's model base path and model name.
        version: integer version (default: the next free one).
        layer_name: layer explained by ``explain`` (default: the top conv layer).
        input_dtype: ``"float32"`` (pixel values 0-255) or ``"uint8"``.
        serving_warmup: write ``assets.extra/tf_serving_warmup_requests`` (needs
            the ``serving`` extra). None (default): when it is installed, with a
            notice otherwise; True: required. (``warmup=`` is its deprecated name.)
        trees: ``{class: DecisionTree}`` of the explained layer, with filter parts
            (:func:`keras_icnn.trees.load_trees`): ``explain`` also answers each image's
            decision mode and its part shares (module docstring).

    Returns:
        The version directory.

    Example:
        >>> path = export_model(model, "/models", "icnn")
        >>> served = tf.saved_model.load(path)
        >>> served.signatures["explain"](images=tf.constant(batch))
    """
    if not name or os.sep in str(name) or str(name) in (".", ".."):
        raise ValueError("`name` must be a plain folder name (TF Serving's model name). "
                         f"Received: name={name!r}")
    if version is not None:
        version = validation.positive_int(version, "version")
    warmup = _deprecated_keyword(deprecated, "warmup", "serving_warmup", serving_warmup)
    if warmup is None:  # auto: write it when the serving protos are installed
        warmup = serving_protos_available()
        if not warmup:
            print("warm-up requests not written: tensorflow-serving-api is not installed "
                  "(pip install 'keras_icnn[serving]')")
    elif warmup and not serving_protos_available():
        raise ImportError("serving_warmup=True needs tensorflow-serving-api for the request "
                          "protos: pip install 'keras_icnn[serving]', or pass "
                          "serving_warmup=False / --noserving_warmup")
    exporter = _Exporter(model, layer_name, input_dtype, trees)
    model_dir = validation.writable_directory(os.path.join(base_dir, name), "base_dir")
    version = version or next_version(model_dir)
    path = os.path.join(model_dir, str(version))
    if os.path.exists(path):
        raise FileExistsError(f"Version directory already exists: {path}")
    # Unknown rank: a wrong-rank request reaches _validate and gets its message.
    spec = tf.TensorSpec(None, exporter.input_dtype, name="images")
    if not model.built:  # e.g. a distiller never called: one forward pass builds it
        model(tf.zeros((1, exporter.height, exporter.width, exporter.channels)))
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", exporter.serve, input_signature=[spec])
    archive.add_endpoint("explain", exporter.explain, input_signature=[spec])
    archive.write_out(path, verbose=False)
    if exporter.modes is not None:
        from keras_icnn.reporting.outputs import write_json

        write_json(os.path.join(path, "assets.extra", "trees.json"),
                   {"part_names": exporter.modes.part_names,
                    "classes": sorted(int(c) for c in trees)})
    if warmup:
        write_warmup(path, name, exporter.height, exporter.width, exporter.input_dtype)
    return path


@dataclasses.dataclass
class ExportConfig:
    """Settings of ``keras-icnn-export`` (its flags are generated from these fields)."""

    model: str = option(None, "The .keras model (for an explainer: its performer).",
                        required=True)
    explainer: str = option("", "An explainer .keras to export together with --model.")
    layer: str = option("", "The layer to explain (default: the top conv layer). With "
                            "--explainer, the deprecated name of --explainer_layer.")
    explainer_layer: str = option("", "With --explainer: the performer layer the explainer "
                                      "reads (the explainer explains its own filters).")
    base_dir: str = option("/tmp/keras_icnn_models", "TF Serving model base directory.")
    name: str = option("icnn", "Model name (a folder under --base_dir).")
    version: int = option(0, "Version number (0: the next free one).")
    input_dtype: str = option("float32", "dtype of the images input.", INPUT_DTYPES)
    serving_warmup: bool = option(None, "Write assets.extra/tf_serving_warmup_requests (needs "
                                        "the serving extra). Default: when "
                                        "tensorflow-serving-api is installed.",
                                  aliases=("warmup",), kind=bool)
    trees: str = option("", "A folder of decision trees, one per class "
                            "(keras_icnn.trees.save_trees): explain also answers each image's "
                            "decision mode and its part shares.")

    def validate(self):
        """Raise a ValueError naming the first bad field."""
        validation.non_negative_int(self.version, "version")
        validation.one_of(self.input_dtype, "input_dtype", INPUT_DTYPES)
        if self.explainer and self.layer and self.explainer_layer:
            raise ValueError("--layer with --explainer is the deprecated name of "
                             "--explainer_layer: give only --explainer_layer.")
        if self.explainer and not (self.explainer_layer or self.layer):
            raise ValueError("--explainer needs --explainer_layer (the performer layer it "
                             "reads)")
        if not self.explainer and self.explainer_layer:
            raise ValueError("--explainer_layer applies with --explainer only. Received: "
                             f"explainer_layer={self.explainer_layer!r}")
        return self


def export_from_config(config):
    """Export ``config.model`` (with ``config.explainer``, as an explainer) as
    :func:`export_model` does, and write the settings to ``assets.extra/config.json``.
    Returns ``(version directory, model kind)``."""
    from keras_icnn.models import ExplainerDistiller
    from keras_icnn.recipes.common import load_model_file
    from keras_icnn.reporting.outputs import write_json

    config.validate()
    model = load_model_file(config.model, "model")
    if config.explainer:
        reads = config.explainer_layer
        if not reads:
            print("keras_icnn: --layer with --explainer is deprecated; use --explainer_layer.",
                  file=sys.stderr)
            reads = config.layer
        model = ExplainerDistiller(model, load_model_file(config.explainer, "explainer"), reads)
    layer = None if config.explainer else (config.layer or None)
    trees = None
    if config.trees:
        from keras_icnn.trees import load_trees

        trees = load_trees(config.trees)
    path = export_model(model, config.base_dir, config.name, config.version or None, layer,
                        config.input_dtype, config.serving_warmup, trees)
    write_json(os.path.join(path, "assets.extra", "config.json"), dataclasses.asdict(config))
    return path, model_kind(model)


def _deprecated_keyword(given, old, new, value):
    """``value`` of keyword ``new``, or of its deprecated name ``old`` (with a warning);
    any other keyword in ``given`` is a TypeError as Python would raise."""
    import warnings

    given = dict(given)
    if old in given:
        if value is not None:
            raise TypeError(f"give `{new}` only (`{old}` is its deprecated name)")
        warnings.warn(f"`{old}` is deprecated; use `{new}`.", DeprecationWarning, stacklevel=3)
        value = given.pop(old)
    if given:
        raise TypeError(f"unexpected keyword argument(s): {sorted(given)}")
    return value


def serving_protos_available():
    """Whether ``tensorflow_serving.apis`` (the ``serving`` extra) can be imported."""
    import importlib.util

    try:
        return importlib.util.find_spec("tensorflow_serving.apis") is not None
    except ModuleNotFoundError:
        return False


def write_warmup(path, name, height, width, dtype, batch_size=1):
    """``assets.extra/tf_serving_warmup_requests``: one PredictionLog per signature."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    for arg, value in (("height", height), ("width", width), ("batch_size", batch_size)):
        validation.positive_int(value, arg)
    dtype = tf.as_dtype(dtype)
    folder = os.path.join(path, "assets.extra")
    os.makedirs(folder, exist_ok=True)
    images = np.zeros((batch_size, height, width, 3), np.dtype(dtype.as_numpy_dtype))
    with tf.io.TFRecordWriter(os.path.join(folder, WARMUP_FILE)) as writer:
        for signature in ("serving_default", "explain"):
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=name, signature_name=signature))
            request.inputs["images"].CopyFrom(tf.make_tensor_proto(images))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return os.path.join(folder, WARMUP_FILE)
