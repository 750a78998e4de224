"""Process-bound test work started at the suite's first test and run beside the in-process tests.

Most tests run TensorFlow in the pytest process and keep about one of the CI machine's two cores
busy. A few run the package the way a user does, in fresh processes (the console scripts end to
end, the trainers on real layouts, multi-worker CSG, kill and resume, the shared
``keras-icnn-evaluate`` run); run where pytest reaches them, they wait for the processes they
start while the second core sits idle through the rest of the suite. Such work is a **job**:

    @background.job("console-scripts")
    def console_runs(directory):          # starts processes, writes only under `directory`
        ...
        return {...}                      # what the tests read

    @pytest.fixture(scope="module")
    def runs(tmp_path_factory):
        return background.result("console-scripts", tmp_path_factory)

``tests/conftest.py`` starts every job that a selected test of its module needs (``consumers``
narrows that to some test ids) on one background thread, one job after another, in the order
their first consumers run, at a lower priority (nice 10) than the in-process tests; ``result`` waits for the job and re-raises its exception in the
consuming test. A job touches no TensorFlow, Keras or pytest state of this process (it may import
numpy and the data writers); its processes are bounded by their own timeouts. Each job's wall
time is printed at the end of the run (``--durations`` sees only the wait).
"""
import concurrent.futures
import os
import threading
import time

_JOBS = {}  # name -> (consuming modules, function, consumers)
_STATE = {"executor": None, "futures": {}, "seconds": {}}
_LOCK = threading.Lock()


def job(name, modules=None, consumers=None):
    """Register ``function(directory) -> result`` as the background job ``name``.

    ``modules``: the test modules whose tests need it (default: the registering module's);
    ``consumers``: a predicate on a test's node id narrowing that to some of their tests.
    """
    def register(function):
        _JOBS[name] = (tuple(modules or (function.__module__,)), function, consumers)
        return function
    return register


def _lower_priority():
    """Run the jobs' processes at a lower priority than the in-process tests: they fill the
    core those leave idle instead of slowing them. On Linux the nice value is per thread and a
    process started from this thread inherits it."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):  # not Linux: the jobs run at the suite's priority
        pass


def _timed(name, function, directory):
    t0 = time.monotonic()
    try:
        return function(directory)
    finally:
        _STATE["seconds"][name] = time.monotonic() - t0


def _submit(name, tmp_path_factory):
    with _LOCK:
        if name not in _STATE["futures"]:
            if _STATE["executor"] is None:
                _STATE["executor"] = concurrent.futures.ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="background-job",
                    initializer=_lower_priority)
            directory = tmp_path_factory.mktemp(name)
            _STATE["futures"][name] = _STATE["executor"].submit(
                _timed, name, _JOBS[name][1], directory)
        return _STATE["futures"][name]


def start_needed(items, tmp_path_factory):
    """Submit the jobs the selected ``items`` need, in the order of their first consumer."""
    for item in items:
        module = getattr(getattr(item, "module", None), "__name__", None)
        for name, (owners, _, consumers) in _JOBS.items():
            if module in owners and (consumers is None or consumers(item.nodeid)):
                _submit(name, tmp_path_factory)


def result(name, tmp_path_factory):
    """The job's return value (started now if it was not); its exception is raised here."""
    return _submit(name, tmp_path_factory).result()


def shutdown():
    """Wait for the running job (each bounded by its processes' timeouts); drop queued ones."""
    if _STATE["executor"] is not None:
        _STATE["executor"].shutdown(wait=True, cancel_futures=True)


def report():
    """``[(name, seconds)]`` of the finished jobs."""
    return sorted(_STATE["seconds"].items(), key=lambda kv: -kv[1])
