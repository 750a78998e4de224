"""The label scope (layers/label_context.py): nested scopes, per thread, popped on error."""
import threading

import pytest

from keras_icnn.layers.label_context import current_scope, label_scope


def test_scopes_nest_and_are_popped_even_on_error():
    assert current_scope() is None
    with label_scope([1, 2]) as outer:
        assert current_scope() is outer and outer.labels == [1, 2] and not outer.use_gate
        with label_scope([3], use_gate=True) as inner:
            assert current_scope() is inner and inner.use_gate
            assert inner.filter_losses == [] and inner.finite_maps == []
        assert current_scope() is outer
        with pytest.raises(RuntimeError):
            with label_scope([4]):
                raise RuntimeError("boom")
        assert current_scope() is outer
    assert current_scope() is None


def test_another_thread_does_not_see_the_scope():
    seen = []
    with label_scope([1]):
        t = threading.Thread(target=lambda: seen.append(current_scope()))
        t.start()
        t.join()
    assert seen == [None]
