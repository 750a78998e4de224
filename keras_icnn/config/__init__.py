"""Configuration: the choice lists several rooms check against (:mod:`.choices`), the options
every command shares as dataclasses (:mod:`.options`) and the absl flags generated from them
(:mod:`.flags`). The submodules load on first use (``options`` reads the data's registry)."""

from keras_icnn import _lazy

__getattr__, __dir__ = _lazy.submodules(__name__, ("choices", "flags", "options"))
