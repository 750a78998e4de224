"""Backbones: three small built-in CNNs and ImageNet-pretrained ``keras.applications``.

Each builder returns a functional ``keras.Model`` taking RGB pixels in
[0, 255] and producing logits. The small ones (``vgg``, ``alexnet``,
``resnet20``) name their top conv layer (or, for the ResNet, the last stage's
output) ``"top_conv"``; the applications (``vgg16``, ``resnet50``,
``mobilenet_v2``) keep Keras' layer names, carry their ``preprocess_input`` as
an :class:`~keras_icnn.layers.ImagenetPreprocess` layer and end in global
average pooling and a Dense classifier named ``"logits"``.
:func:`default_layer` names the layer each method works on by default.
"""

import os

import keras

from keras_icnn import validation
from keras_icnn.config.choices import APPLICATION_BACKBONES, BACKBONES, BUILTIN_BACKBONES
from keras_icnn.layers.preprocess import ImagenetPreprocess
from keras_icnn.models import graph

BUILTIN = BUILTIN_BACKBONES
# name: (constructor name in keras.applications, preprocess mode, top layer, explainer layer)
APPLICATIONS = {
    "vgg16": ("VGG16", "caffe", "block5_conv3", "block5_conv2"),
    # Residual performers: the explainer reads the last block's input and stands in for the
    # block (ResNet-50); MobileNetV2's last 1x1 conv reads block 16's projection.
    "resnet50": ("ResNet50", "caffe", "conv5_block3_out", "conv5_block2_out"),
    "mobilenet_v2": ("MobileNetV2", "tf", "out_relu", "block_16_project_BN"),
}
assert tuple(APPLICATIONS) == APPLICATION_BACKBONES, "config.choices lists these backbones"
WEIGHTS_HELP = "imagenet (Keras' loader and ~/.keras cache), none, or a weights file path"
# Moving statistics settle within an epoch of a small dataset (Keras default 0.99 does not).
BN_MOMENTUM = 0.9


def _check(input_shape, num_classes, **sizes):
    """``(input_shape, num_classes)`` checked; ``sizes`` (width, dense_units, ...) must be
    integers >= 1."""
    for name, value in sizes.items():
        validation.positive_int(value, name)
    input_shape = tuple(int(v) for v in input_shape)
    if len(input_shape) != 3:
        raise ValueError(
            "`input_shape` must be (height, width, channels). "
            f"Received: input_shape={input_shape}"
        )
    if validation.positive_int(num_classes, "num_classes") < 2:
        raise ValueError(f"`num_classes` must be >= 2. Received: num_classes={num_classes}")
    return input_shape, int(num_classes)


def vgg_backbone(input_shape=(64, 64, 3), num_classes=6, width=16, dense_units=128,
                 dropout=0.3, name="vgg"):
    """VGG-style: three blocks of two 3x3 conv-BN-ReLU + max-pool, then ``top_conv``.

    Batch normalisation in the blocks (not in ``top_conv``) keeps training
    from stalling at chance for unlucky seeds, as plain VGG nets can.

    A 64x64 input gives 8x8 top maps with ``8 * width`` filters.

    Example:
        >>> model = vgg_backbone((64, 64, 3), num_classes=6)
        >>> model.get_layer("top_conv").output.shape
        (None, 8, 8, 128)
    """
    input_shape, num_classes = _check(input_shape, num_classes, width=width, dense_units=dense_units)
    inputs = keras.Input(input_shape, name="images")
    x = keras.layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    for block, filters in enumerate((width, 2 * width, 4 * width), start=1):
        for i in (1, 2):
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                                    name=f"block{block}_conv{i}")(x)
            x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"block{block}_bn{i}")(x)
            x = keras.layers.ReLU(name=f"block{block}_relu{i}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    x = keras.layers.Conv2D(8 * width, 3, padding="same", activation="relu",
                            name="top_conv")(x)
    return _dense_head(inputs, x, num_classes, dense_units, dropout, name)


def alexnet_backbone(input_shape=(64, 64, 3), num_classes=6, width=24, dense_units=128,
                     dropout=0.3, name="alexnet"):
    """AlexNet-style: a large strided first conv, pools, 3x3 convs (conv-BN-ReLU), ``top_conv``."""
    input_shape, num_classes = _check(input_shape, num_classes, width=width, dense_units=dense_units)
    inputs = keras.Input(input_shape, name="images")
    x = keras.layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    def conv_bn(x, filters, kernel, name, strides=1):
        x = keras.layers.Conv2D(filters, kernel, strides=strides, padding="same",
                                use_bias=False, name=name)(x)
        x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
        return keras.layers.ReLU(name=f"{name}_relu")(x)

    x = conv_bn(x, width, 7, "conv1", strides=2)
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = conv_bn(x, 2 * width, 5, "conv2")
    x = keras.layers.MaxPooling2D(2, name="pool2")(x)
    x = conv_bn(x, 4 * width, 3, "conv3")
    x = conv_bn(x, 4 * width, 3, "conv4")
    x = keras.layers.Conv2D(4 * width, 3, padding="same", activation="relu", name="top_conv")(x)
    return _dense_head(inputs, x, num_classes, dense_units, dropout, name)


def _dense_head(inputs, x, num_classes, dense_units, dropout, name):
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(dense_units, activation="relu", name="fc1")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


def _residual_block(x, filters, stride, name):
    shortcut = x
    y = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False,
                            name=f"{name}_conv1")(x)
    y = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn1")(y)
    y = keras.layers.ReLU(name=f"{name}_relu1")(y)
    y = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn2")(y)
    if stride != 1 or shortcut.shape[-1] != filters:
        if stride != 1:
            # A 1x1 conv with stride s equals subsampling by s then a 1x1 conv
            # with stride 1. Written this way because oneDNN's strided 1x1
            # backward-weights kernel writes past its buffer when the input has
            # fewer channels than its block (16 on AVX-512) and the batch is
            # smaller than the thread count (keras_icnn.compat.onednn.onednn_unsafe_convs).
            shortcut = keras.layers.MaxPooling2D(1, strides=stride,
                                                 name=f"{name}_subsample")(shortcut)
        shortcut = keras.layers.Conv2D(filters, 1, use_bias=False,
                                       name=f"{name}_proj")(shortcut)
        shortcut = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_proj_bn")(shortcut)
    return keras.layers.Add(name=f"{name}_add")([y, shortcut])


def resnet20_backbone(input_shape=(64, 64, 3), num_classes=6, width=16, blocks_per_stage=3,
                      name="resnet20"):
    """ResNet-20 style (3 stages of ``blocks_per_stage`` basic blocks, widths w, 2w, 4w).

    The last stage's output (after ReLU) is the layer named ``"top_conv"``;
    a 64x64 input gives 16x16 maps (a stride-2 stem pool brings them to 8x8).
    """
    input_shape, num_classes = _check(input_shape, num_classes, width=width, blocks_per_stage=blocks_per_stage)
    inputs = keras.Input(input_shape, name="images")
    x = keras.layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name="stem_conv")(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    x = keras.layers.MaxPooling2D(2, name="stem_pool")(x)
    for stage, filters in enumerate((width, 2 * width, 4 * width), start=1):
        for block in range(blocks_per_stage):
            stride = 2 if (stage > 1 and block == 0) else 1
            x = _residual_block(x, filters, stride, f"stage{stage}_block{block}")
            last = stage == 3 and block == blocks_per_stage - 1
            x = keras.layers.ReLU(name="top_conv" if last else f"stage{stage}_block{block}_out")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


def _check_weights(weights):
    if weights in (None, "none", ""):
        return None
    if weights == "imagenet":
        return "imagenet"
    if not os.path.isfile(str(weights)):
        raise FileNotFoundError(f"`weights` must be 'imagenet', 'none' or a weights file. "
                                f"Received: weights={weights!r} (no such file)")
    return str(weights)


def application_backbone(name, input_shape=(224, 224, 3), num_classes=1000, weights="imagenet",
                         dropout=0.0):
    """A ``keras.applications`` CNN with a new classifier: its layers, flattened into one
    functional graph (so any of them can be made interpretable, gated or explained).

    Args:
        name: ``"vgg16"``, ``"resnet50"`` or ``"mobilenet_v2"``.
        input_shape: (H, W, 3); at least 32x32.
        num_classes: classes of the new Dense classifier ``"logits"``.
        weights: ``"imagenet"`` (Keras' own loader: downloaded once into
            ``~/.keras/models`` or read from a pre-filled cache), ``"none"``
            (random) or the path of a weights file of the convolutional base
            (``include_top=False``), e.g. a ``.weights.h5`` it saved.
        dropout: dropout before the classifier.

    Example:
        >>> model = application_backbone("vgg16", (224, 224, 3), 200, weights="imagenet")
        >>> icnn = make_interpretable(model, default_layer("vgg16"))
    """
    if name not in APPLICATIONS:
        raise ValueError(f"`name` must be one of {tuple(APPLICATIONS)}. Received: name={name!r}")
    input_shape, num_classes = _check(input_shape, num_classes)
    if min(input_shape[:2]) < 32 or input_shape[2] != 3:
        raise ValueError(f"{name} needs RGB images of at least 32x32. "
                         f"Received: input_shape={input_shape}")
    constructor, mode, _, _ = APPLICATIONS[name]
    inputs = keras.Input(input_shape, name="images")
    x = ImagenetPreprocess(mode, name="preprocess")(inputs)
    base = getattr(keras.applications, constructor)(
        include_top=False, weights=_check_weights(weights), input_tensor=x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(base.output)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


_SPATIAL = (keras.layers.Conv2D, keras.layers.ReLU, keras.layers.Activation)


def default_layer(model_or_backbone, method="icnn"):
    """The layer a method works on by default: one rule, for a built model or a backbone name.

    For a backbone name (one of ``BACKBONES``): the top conv layer its ICNN or CSG conversion
    replaces (``method="icnn"`` or ``"csg"``), or the layer the explainer reads
    (``"explainer"``). For a built Keras model: its top conv layer, the last layer with a 4D
    output that a filter explanation applies to (a conv, its activation or an interpretable
    layer; in the flat graph of a model with nested sub-models,
    :func:`keras_icnn.models.graph.flatten`); ``method`` is not used there.

    Example:
        >>> default_layer("vgg16")
        'block5_conv3'
        >>> default_layer(keras_icnn.models.vgg_backbone())
        'top_conv'
    """
    if isinstance(model_or_backbone, keras.Model):
        return _top_conv_layer(model_or_backbone)
    name = model_or_backbone
    if name in BUILTIN:
        # ResNet-20 (3 blocks per stage): the input of its last block.
        top, explainer_layer = "top_conv", ("stage3_block1_out" if name == "resnet20"
                                            else "block3_pool")
    elif name in APPLICATIONS:
        _, _, top, explainer_layer = APPLICATIONS[name]
    else:
        raise ValueError(f"`backbone` must be one of {BACKBONES}. Received: backbone={name!r}")
    if method != "explainer":
        return top
    return explainer_layer


def _top_conv_layer(model):
    flat = graph.flatten(model, "default_layer")
    for layer in reversed(flat.layers):
        out = graph.layer_output(flat, layer.name) if not isinstance(
            layer, keras.layers.InputLayer) else None
        if len(getattr(out, "shape", ())) != 4:
            continue
        if isinstance(layer, _SPATIAL) or hasattr(layer, "part_mask"):
            return layer.name
    raise ValueError(f"Model {model.name!r} has no conv layer with a 4D output")


def get_backbone(name, input_shape=(64, 64, 3), num_classes=6, weights="none", **kwargs):
    """Build a backbone by name: one of ``BACKBONES``.

    ``weights`` applies to the ``keras.applications`` backbones (the built-in
    ones start from random weights; ``"none"`` is the only value they take).
    ``kwargs`` go to the builder (``width`` for the built-in ones).
    """
    if name not in BACKBONES:
        raise ValueError(f"`backbone` must be one of {BACKBONES}. Received: backbone={name!r}")
    if name in APPLICATIONS:
        kwargs.pop("width", None)
        return application_backbone(name, input_shape, num_classes, weights=weights, **kwargs)
    checked = _check_weights(weights)
    if checked == "imagenet":
        raise ValueError(f"The built-in backbone {name!r} has no ImageNet weights; "
                         f"--weights=imagenet applies to {tuple(APPLICATIONS)} (a built-in one "
                         "takes a weights file keras-icnn-pretrain wrote). "
                         f"Received: weights={weights!r}")
    builders = {"vgg": vgg_backbone, "alexnet": alexnet_backbone, "resnet20": resnet20_backbone}
    model = builders[name](input_shape=input_shape, num_classes=num_classes, **kwargs)
    if checked is not None:
        _load_base_weights(conv_base(model), checked, name)
    return model


def conv_base(model):
    """The convolutional base of a backbone built here: a ``keras.Model`` from its input to
    the input of its head (the ``flatten`` or ``gap`` layer), sharing the model's layers
    (loading weights into it sets the model's).

    Example:
        >>> base = conv_base(vgg_backbone((64, 64, 3), num_classes=6))
        >>> base.output.shape
        (None, 8, 8, 128)
    """
    for head in ("flatten", "gap"):
        if head in [layer.name for layer in model.layers]:
            return keras.Model(model.inputs, model.get_layer(head).input,
                               name=f"{model.name}_base")
    raise ValueError(f"Model {model.name!r} is not a backbone of keras_icnn.models.backbones: "
                     "no 'flatten' or 'gap' layer where its head starts")


def base_weights_model(model, name):
    """A model holding the weights ``--weights=PATH`` reads for backbone ``name``, copied
    from ``model`` (a backbone of that name, e.g. after pretraining): for a
    ``keras.applications`` backbone its own ``include_top=False`` network (the format its
    loader reads), for a built-in one :func:`conv_base`."""
    if name in APPLICATIONS:
        constructor = APPLICATIONS[name][0]
        base = getattr(keras.applications, constructor)(
            include_top=False, weights=None, input_shape=tuple(model.inputs[0].shape[1:]))
        for layer in base.layers:
            if layer.weights:
                layer.set_weights(model.get_layer(layer.name).get_weights())
        return base
    if name not in BUILTIN:
        raise ValueError(f"`backbone` must be one of {BACKBONES}. Received: backbone={name!r}")
    return conv_base(model)


def save_base_weights(model, name, path):
    """Write the convolutional base of ``model`` (backbone ``name``) to ``path`` (a
    ``.weights.h5`` file) in the format ``get_backbone(name, ..., weights=path)`` and every
    command's ``--weights=PATH`` read. Returns ``path``.

    Example:
        >>> model = get_backbone("vgg", (64, 64, 3), 30)
        >>> # ... train it on a pretraining corpus ...
        >>> save_base_weights(model, "vgg", "/tmp/pre/vgg.weights.h5")
        >>> fine = get_backbone("vgg", (64, 64, 3), 6, weights="/tmp/pre/vgg.weights.h5")
    """
    path = str(path)
    if not path.endswith(".weights.h5"):
        raise ValueError(f"`path` must end in .weights.h5 (Keras' weights format). "
                         f"Received: path={path!r}")
    base_weights_model(model, name).save_weights(path)
    return path


def _load_base_weights(base, path, name):
    import warnings

    try:
        with warnings.catch_warnings():
            # Keras 3.15 warns once per Add/merge node of a functional sub-model ("Skipping
            # nested container at '_operations_by_depth/...'"): they hold no weights, and a
            # missing or misshapen weight still raises below.
            warnings.filterwarnings("ignore", message="Skipping nested container")
            base.load_weights(path)
    except ValueError as err:
        raise ValueError(f"The weights file {path} does not fit the {name!r} backbone built "
                         f"here (a file keras-icnn-pretrain wrote for the same --backbone and "
                         f"--width is expected): {err}") from err
