"""How labels reach interpretable layers during ``fit`` without a second input.

``InterpretableModel.train_step`` opens ``label_scope(y)`` around its forward
pass; every ``InterpretableConv`` called inside it (at any depth of a
functional graph) reads the labels with :func:`current_scope` and reports its
unweighted filter loss back to the scope for monitoring. The scope is
thread-local, so each replica of a ``tf.distribute`` strategy (one thread per
replica) sees only its own labels. It lives only while a step is traced, so
it works in eager, graph and XLA-compiled steps alike.
"""

import contextlib
import threading

_state = threading.local()


class LabelScope:
    """Labels of the current training step and the filter losses it produced.

    ``use_gate`` tells ``ClassSpecificGate`` layers to take the CSG path
    (gate by ``G[y]``); otherwise they are the identity.
    """

    def __init__(self, labels, use_gate=False):
        self.labels = labels
        self.use_gate = use_gate
        self.filter_losses = []
        self.finite_maps = []  # (layer name, bool scalar: all maps finite)


def current_scope():
    """The innermost active :class:`LabelScope`, or ``None``."""
    stack = getattr(_state, "stack", None)
    return stack[-1] if stack else None


@contextlib.contextmanager
def label_scope(labels, use_gate=False):
    """Make ``labels`` visible to every interpretable layer called inside.

    Example:
        >>> with label_scope(y) as scope:
        ...     y_pred = model(x, training=True)
        >>> scope.filter_losses  # one scalar per interpretable layer
    """
    if not hasattr(_state, "stack"):
        _state.stack = []
    scope = LabelScope(labels, use_gate)
    _state.stack.append(scope)
    try:
        yield scope
    finally:
        _state.stack.pop()
