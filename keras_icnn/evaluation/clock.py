"""Where an evaluation's time goes: wall seconds per named stage."""
import contextlib
import time


class StageClock:
    """Wall seconds per named stage (``with clock("stream"): ...``), summed when a stage
    repeats; ``seconds`` is the dict, in the order the stages first ran."""

    def __init__(self):
        self.seconds = {}

    @contextlib.contextmanager
    def __call__(self, stage):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - t0

    def rounded(self, digits=2):
        """``seconds`` rounded (for a report)."""
        return {stage: round(s, digits) for stage, s in self.seconds.items()}
