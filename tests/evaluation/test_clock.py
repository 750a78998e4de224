"""StageClock: wall seconds per stage, summed when a stage repeats, kept when a stage raises."""
import pytest

from keras_icnn.evaluation import clock as clock_lib


def test_stages_sum_in_first_run_order_and_a_raising_stage_still_counts(monkeypatch):
    ticks = iter([0.0, 1.5, 2.0, 2.25, 3.0, 4.125, 10.0, 10.5])
    monkeypatch.setattr(clock_lib.time, "perf_counter", lambda: next(ticks))
    clock = clock_lib.StageClock()
    with clock("stream"):
        pass  # 1.5 s
    with clock("ascent"):
        pass  # 0.25 s
    with clock("stream"):
        pass  # 1.125 s more
    with pytest.raises(RuntimeError):
        with clock("graph"):
            raise RuntimeError("boom")  # 0.5 s, recorded all the same
    assert list(clock.seconds) == ["stream", "ascent", "graph"]
    assert clock.seconds == {"stream": 2.625, "ascent": 0.25, "graph": 0.5}
    assert clock.rounded(1) == {"stream": 2.6, "ascent": 0.2, "graph": 0.5}
