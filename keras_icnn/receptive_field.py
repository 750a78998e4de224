"""Moved to :mod:`keras_icnn.models.receptive_field`; this path stays for the code and docs that use it (it is the
same module object, so attributes set through either path are seen through both)."""
import sys

from keras_icnn.models import receptive_field

sys.modules[__name__] = receptive_field
