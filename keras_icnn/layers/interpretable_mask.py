"""InterpretableMask: the filter loss and the part mask on a given layer's maps, no conv of
its own (ICNN §3 on a keras.applications base: the loss and mask after its top conv)."""
import keras
import tensorflow as tf

from keras_icnn.layers.interpretable_conv import InterpretableConv
from keras_icnn.layers.part_mask import validate_feature_map_shape


_CONV_ONLY = ("filters", "kernel_size", "strides", "padding", "use_bias", "kernel_initializer",
              "bias_initializer", "kernel_regularizer")


@keras.saving.register_keras_serializable(package="keras_icnn")
class InterpretableMask(InterpretableConv):
    """The filter loss and part mask of :class:`InterpretableConv` on existing maps.

    For a block that already is conv -> BatchNorm -> ReLU (ResNet-50,
    MobileNetV2 and most ``keras.applications`` models): the block stays as it
    is and this layer, placed on the ReLU's output, adds the mutual-information
    filter loss and the part mask there. Its input must be post-ReLU
    (``>= 0``); it has no kernel. ``make_interpretable`` inserts it.

    Args:
        num_classes, single_category, positive_class, gradient, gradient_form,
        mu, beta, learnable_beta, loss_weight, loss_schedule, target_decay:
            as in :class:`InterpretableConv`.

    Example:
        >>> x = keras.layers.Conv2D(64, 3, padding="same")(inputs)
        >>> x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
        >>> x = InterpretableMask(num_classes=6)(x)
    """

    def __init__(self, num_classes=None, **kwargs):
        for key in _CONV_ONLY:
            kwargs.pop(key, None)
        super().__init__(1, kernel_size=1, padding="same", use_bias=False,
                         num_classes=num_classes, **kwargs)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError("InterpretableMask expects a 4D input [batch, height, width, "
                             f"channels] with known channels. Received: {tuple(input_shape)}")
        validate_feature_map_shape(input_shape, "InterpretableMask")
        self.filters = int(input_shape[-1])
        self._build_filter_state(tuple(input_shape))

    def conv_relu(self, inputs):
        """The maps themselves (post-ReLU already; the ReLU keeps them so)."""
        return tf.nn.relu(inputs)

    def get_config(self):
        config = super().get_config()
        for key in _CONV_ONLY:
            config.pop(key, None)
        return config
