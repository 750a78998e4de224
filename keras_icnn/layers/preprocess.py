"""ImagenetPreprocess: a keras.applications model's ``preprocess_input`` as a layer."""

import keras
import tensorflow as tf

MODES = ("caffe", "tf", "torch")
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)


@keras.saving.register_keras_serializable(package="keras_icnn")
class ImagenetPreprocess(keras.layers.Layer):
    """RGB pixels in [0, 255] to what an ImageNet-pretrained backbone expects.

    Inside the model, so a saved or exported model takes raw pixels and
    serving needs no preprocessing code.

    Args:
        mode: ``"caffe"`` (VGG16, ResNet50: RGB->BGR, minus the ImageNet mean),
            ``"tf"`` (MobileNetV2: scaled to [-1, 1]) or ``"torch"`` (scaled to
            [0, 1], minus mean, over std), as ``keras.applications.imagenet_utils``.

    Example:
        >>> x = ImagenetPreprocess("caffe")(keras.Input((224, 224, 3)))
    """

    def __init__(self, mode="caffe", **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"`mode` must be one of {MODES}. Received: mode={mode!r}")
        self.mode = mode

    def call(self, inputs):
        x = tf.cast(inputs, self.compute_dtype)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "torch":
            return (x / 255.0 - tf.constant(_TORCH_MEAN, x.dtype)) / tf.constant(_TORCH_STD, x.dtype)
        return x[..., ::-1] - tf.constant(_CAFFE_MEAN_BGR, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["mode"] = self.mode
        return config
