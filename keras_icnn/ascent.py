"""Gradient ascent moved to :mod:`keras_icnn.explain.ascent`; this path stays for the code and
docs that use it."""
from keras_icnn.explain.ascent import class_images, filter_images  # noqa: F401
