"""Moved to :mod:`keras_icnn.ops.imaging`; this path stays for the code and docs that use it (it is the
same module object, so attributes set through either path are seen through both)."""
import sys

from keras_icnn.ops import imaging

sys.modules[__name__] = imaging
