"""Moved to :mod:`keras_icnn.compat` (:mod:`.multi_worker` and :mod:`.onednn`); this path
stays for the code and docs that use it."""
from keras_icnn.compat.multi_worker import (  # noqa: F401
    PATCHED_SOURCES, VERIFIED_KERAS, patch_multi_worker_fit, source_hashes)
from keras_icnn.compat.onednn import (  # noqa: F401
    ONEDNN_1X1_CHANNEL_BLOCK, onednn_enabled, onednn_unsafe_convs, warn_onednn_unsafe_convs)
