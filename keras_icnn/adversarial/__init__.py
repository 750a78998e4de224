"""Adversarial samples for CSG's applications (CSG §5.2, appendices I-J): white-box and
black-box attacks (:mod:`.attacks`) and the adversarial-sample detector's features and error
(:mod:`.detection`).

Example:
    >>> from keras_icnn import adversarial
    >>> targets = adversarial.random_targets(labels, num_classes, seed=0)
    >>> adv = adversarial.pgd(model, images, labels, targets=targets)
    >>> adversarial.success_rate(model, images, adv, labels, targets)
"""
from keras_icnn.adversarial.attacks import (
    DEFAULT_PIXEL_RANGE, attack_succeeded, cw_l2, fgsm, local_search, one_pixel, pgd,
    probabilities, random_targets, success_rate)
from keras_icnn.adversarial.detection import (
    FEATURE_SITES, conv_features, detection_error, feature_layers, per_class_split)

__all__ = ["DEFAULT_PIXEL_RANGE", "attack_succeeded", "cw_l2", "fgsm", "local_search",
           "one_pixel", "pgd", "probabilities", "random_targets", "success_rate",
           "FEATURE_SITES", "conv_features", "detection_error", "feature_layers",
           "per_class_split"]
