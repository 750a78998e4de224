"""keras_icnn: CNNs whose filters mean object parts, for TensorFlow / Keras 3.

Imported at once: ``templates``, ``losses``, ``layers``, ``models``. Imported on first use
(``keras_icnn.viz`` after ``import keras_icnn`` just works): ``data``, ``metrics``,
``explain``, ``viz`` (its functions need the ``viz`` extra, matplotlib, and say so),
``adversarial``, ``export``, ``distribute``, ``recipes``, ``report``, ``receptive_field``,
``callbacks`` (TensorBoard summaries).

Example:

    import keras_icnn
    examples = keras_icnn.data.synthetic_parts.make_examples(8, num_classes=2)
"""

__version__ = "0.1.0"

from keras_icnn import layers  # noqa: E402,F401
from keras_icnn import losses  # noqa: E402,F401
from keras_icnn import templates  # noqa: E402,F401
from keras_icnn import models  # noqa: E402,F401
from keras_icnn import _lazy  # noqa: E402

__getattr__, __dir__ = _lazy.submodules(__name__, (
    "data", "metrics", "explain", "viz", "adversarial", "export", "distribute", "recipes",
    "report", "receptive_field", "callbacks", "ascent", "relu_gradients", "imaging", "trees",
    "graphs"))
