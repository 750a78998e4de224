"""One explanation of a prediction for any model: which filters, which parts, how much.

:func:`explain` returns an :class:`Explanation` (``explanation.py``); :class:`Explainable` is the
traceable core it, the report and the exported signature share (``explainable.py``); the
attribution maths is :mod:`keras_icnn.ops.attribution`. Every name the former module
``keras_icnn/explain.py`` offered is here.

Example:
    >>> from keras_icnn.explain import explain
    >>> e = explain(model, images)
    >>> e.contribution_shares[0].argsort()[::-1][:3]   # the 3 filters that matter most
"""
from keras_icnn.explain.explainable import (  # noqa: F401
    HEATMAPS, KINDS, METHODS, PIXEL_METHODS, Explainable, check_methods, default_layer,
    explainable_for, model_kind)
from keras_icnn.explain.explanation import (  # noqa: F401
    INTERPOLATIONS, Explanation, explain)
from keras_icnn.ops.attribution import grad_cam, gradient_x_activation, pixel_maps  # noqa: F401
from keras_icnn.validation import check_images  # noqa: F401
