"""The explainer's distillation maths (explainer paper §3): per-image gradient norms, the
paper's gradient-ratio weight of the filter loss, and the scale-free reconstruction error."""
import tensorflow as tf

from keras_icnn.ops.filter_loss import batch_sum


def per_image_norms(grad):
    """``||g_x,f||`` over the map of each image and filter: [B, h, w, F] -> [B, F] (float32)."""
    return tf.sqrt(tf.reduce_sum(tf.square(tf.cast(grad, tf.float32)), axis=[1, 2]))


def gradient_ratio(task_grad, filter_grad, fraction):
    """The explainer paper's ``lambda_f = c E_x||dLoss_task/dx_f|| / E_x||dLoss_f/dx_f||``.

    Expectations over the images of the global batch (all replicas under a
    ``tf.distribute`` strategy) of per-image gradient norms; a filter whose
    filter-loss gradient is zero on every image gets ``lambda_f = 0``.

    Args:
        task_grad, filter_grad: [B, h, w, F] gradients with respect to ``x_f``.
        fraction: ``c`` (a scalar).

    Returns:
        float32 [F], without gradient.
    """
    task = batch_sum(per_image_norms(task_grad))
    filt = batch_sum(per_image_norms(filter_grad))
    return tf.stop_gradient(tf.cast(fraction, tf.float32) * tf.math.divide_no_nan(task, filt))


def relative_squared_error(reconstruction, target):
    """``mean_b ||r - t||^2 / mean_b ||t||^2`` over flattened features (float32).

    Scale-free: the paper's ``lambda_l = 5e4 / E||max(x*, 0)||`` assumes
    MatConvNet's summed losses; dividing by the target's mean energy makes one
    weight fit every layer and every performer.
    """
    r = tf.reshape(tf.cast(reconstruction, tf.float32), [tf.shape(reconstruction)[0], -1])
    t = tf.reshape(tf.cast(target, tf.float32), [tf.shape(target)[0], -1])
    scale = tf.stop_gradient(tf.reduce_mean(tf.reduce_sum(tf.square(t), -1))) + 1e-12
    return tf.reduce_mean(tf.reduce_sum(tf.square(r - t), -1)) / scale
