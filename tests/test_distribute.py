import pytest

from keras_icnn import distribute


def test_mirrored_on_two_logical_cpus_is_reused():
    a = distribute.get_strategy("mirrored", num_cpu_devices=2)
    b = distribute.get_strategy("mirrored", num_cpu_devices=2)
    assert a is b and a.num_replicas_in_sync == 2
    assert distribute.get_strategy("default").num_replicas_in_sync == 1


def test_bad_strategy_arguments(monkeypatch):
    with pytest.raises(ValueError, match="`strategy` must be one of"):
        distribute.get_strategy("tpu")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="needs the TF_CONFIG environment variable"):
        distribute.get_strategy("multi_worker")
    with pytest.raises(RuntimeError, match="already initialised with 2 logical CPU"):
        distribute.get_strategy("mirrored", num_cpu_devices=3)
