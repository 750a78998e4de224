"""Moved to :mod:`keras_icnn.models.callbacks`; this path stays for the code and docs that use it (it is the
same module object, so attributes set through either path are seen through both)."""
import sys

from keras_icnn.models import callbacks

sys.modules[__name__] = callbacks
