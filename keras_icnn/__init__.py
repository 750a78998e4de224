"""keras_icnn: CNNs whose filters mean object parts, for TensorFlow / Keras 3.

Subpackages: ``templates``, ``losses``, ``layers``, ``models``, ``data``.
"""

__version__ = "0.1.0"

from keras_icnn import layers  # noqa: E402,F401
from keras_icnn import losses  # noqa: E402,F401
from keras_icnn import templates  # noqa: E402,F401
from keras_icnn import models  # noqa: E402,F401
