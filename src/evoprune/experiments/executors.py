"""Run independent trials (dict in, dict out) serially, on a spawn process pool or on Dask."""

from __future__ import annotations

import contextlib
import gc
import importlib
import multiprocessing
import signal
import threading
from collections import deque
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack
from uuid import uuid4

from evoprune.errors import ConfigError, EvopruneError, Terminated, plural, require_extra

EXECUTORS = ("dask", "local", "serial")
CONNECT_TIMEOUT_S = 10  # seconds to reach an existing Dask scheduler

OnResult = Callable[[dict, dict], None]


class TrialError(EvopruneError):
    """A trial raised an exception, or lost its worker process more often than allowed."""


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Inside, SIGTERM raises :class:`~evoprune.errors.Terminated` in the main thread.

    SIGTERM's default action ends the process at once, leaving its spawn workers and Dask
    processes running; raised as an exception it runs the cleanup a Ctrl-C runs (workers
    terminated, the cluster closed). A handler the caller installed is kept, and outside
    the main thread nothing changes.
    """
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def handle(signum, frame) -> None:
        raise Terminated("terminated (SIGTERM)")

    signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def check_executor(executor: str) -> None:
    """Refuses an unknown executor, or ``dask`` without the ``dask`` extra, before any work.

    Raises:
        ConfigError: not one of :data:`EXECUTORS`.
        MissingExtraError: ``dask`` while Dask or distributed is not installed.
    """
    if executor not in EXECUTORS:
        raise ConfigError(
            f"Unknown executor. Expected one of: {', '.join(EXECUTORS)}. Received: {executor!r}"
        )
    if executor == "dask":
        require_extra("dask", "the Dask executor", "dask", "distributed")


def resolve(path: str) -> Callable[[dict], dict]:
    """Imports a task function from a dotted path.

    Args:
        path: ``"package.module:function"`` (``"package.module.function"`` also works).

    Returns:
        The function, which takes a spec dict and returns a result dict.

    Raises:
        ConfigError: the path is malformed, or the module or function cannot be found.
    """
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(f"Expected a task path 'module:function'. Received: {path!r}")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"Cannot import task {path!r}: {exc}") from exc
    if not callable(fn):
        raise ConfigError(f"Expected task {path!r} to be callable. Received: {type(fn).__name__}")
    return fn


def _call(task: str, spec: dict) -> dict:
    """Worker entry point: resolves ``task`` in this process and runs it on ``spec``."""
    result = resolve(task)(spec)
    if not isinstance(result, dict):
        raise TypeError(f"Expected task {task!r} to return a dict. Received: {type(result).__name__}")
    return result


def _failed(spec: dict, exc: BaseException) -> TrialError:
    """The error raised for a trial whose task raised ``exc``."""
    return TrialError(f"Trial {spec['key']!r} failed: {type(exc).__name__}: {exc}")


def _lost(spec: dict, times: int, detail: object) -> TrialError:
    """The error raised for a trial whose worker died ``times`` times."""
    return TrialError(
        f"Trial {spec['key']!r} lost its worker process {plural(times, 'time')}; giving up ({detail})."
    )


def run_tasks(
    task: str,
    specs: list[dict],
    executor: str = "local",
    workers: int = 2,
    scheduler: str | None = None,
    done_keys: Collection[str] = frozenset(),
    on_result: OnResult | None = None,
    retries: int = 2,
) -> list[dict]:
    """Runs ``task`` on every spec whose key is not done yet.

    Args:
        task: dotted path of the task function, resolved in each worker (see :func:`resolve`).
        specs: JSON-serializable dicts, each with a unique string ``"key"``.
        executor: ``"serial"`` (in-process), ``"local"`` (spawn process pool) or ``"dask"``.
        workers: processes of the local pool or of the local Dask cluster.
        scheduler: address of an existing Dask scheduler to join (``executor="dask"`` only);
            ``None`` starts a local cluster for this call.
        done_keys: keys of trials already recorded; their specs are skipped.
        on_result: called as ``on_result(spec, result)`` in this process as each trial ends.
        retries: extra attempts of a trial whose worker process died.

    Returns:
        The results of the trials that ran, in the order of ``specs``.

    Raises:
        ConfigError: unknown executor, ``workers < 1``, ``retries < 0`` or bad spec keys.
        MissingExtraError: ``dask`` without the ``dask`` extra.
        EvopruneError: the Dask scheduler cannot be reached.
        TrialError: a task raised (after the other trials are cancelled), or a trial lost
            its worker more than ``retries`` times.
    """
    check_executor(executor)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"Expected workers >= 1. Received: workers={workers!r}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"Expected retries >= 0. Received: retries={retries!r}")
    seen: set[str] = set()
    for spec in specs:
        key = spec.get("key") if isinstance(spec, dict) else None
        if not isinstance(key, str) or key in seen:
            reason = "a duplicate" if key in seen else "a spec dict without a string"
            raise ConfigError(
                f"Expected every spec to have a unique string 'key'. Received {reason} key: {key!r}"
            )
        seen.add(key)
    pending = [spec for spec in specs if spec["key"] not in done_keys]
    results: dict[str, dict] = {}

    def emit(spec: dict, result: dict) -> None:
        results[spec["key"]] = result
        if on_result is not None:
            on_result(spec, result)

    if pending:
        with sigterm_raises():  # SIGTERM and SIGINT stop the workers before the process ends
            if executor == "serial":
                _run_serial(task, pending, emit)
            elif executor == "local":
                _run_local(task, pending, workers, retries, emit)
            else:
                _run_dask(task, pending, workers, scheduler, retries, emit)
    return [results[spec["key"]] for spec in pending]


def _run_serial(task: str, pending: list[dict], emit: OnResult) -> None:
    """Runs the trials one after the other in this process."""
    for spec in pending:
        try:
            result = _call(task, spec)
        except Exception as exc:
            raise _failed(spec, exc) from exc
        emit(spec, result)


def _terminate(pool: ProcessPoolExecutor, grace_s: float = 5.0) -> None:
    """Kills the pool's workers (cancelling running trials) and shuts the pool down.

    Workers get SIGTERM, and SIGKILL after ``grace_s`` seconds; none outlives the call.
    """
    processes = list((getattr(pool, "_processes", None) or {}).values())
    terminate = getattr(pool, "terminate_workers", None)  # Python >= 3.14
    if terminate is not None:
        terminate()
    else:
        for proc in processes:
            proc.terminate()
    for proc in processes:
        proc.join(grace_s)
        if proc.is_alive():
            proc.kill()
            proc.join()
    pool.shutdown(wait=True, cancel_futures=True)


def _run_local(task: str, pending: list[dict], workers: int, retries: int, emit: OnResult) -> None:
    """Runs the trials on a spawn pool; a dead worker's pool is rebuilt, its trials resubmitted.

    At most ``workers`` trials are in flight, so the trials charged with an attempt when the
    pool breaks are those that were running (the pool kills all its workers when one dies).
    """
    context = multiprocessing.get_context("spawn")  # TensorFlow is not fork-safe
    queue = deque(pending)
    attempts = {spec["key"]: 0 for spec in pending}
    while queue:
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
        inflight: dict[Future, dict] = {}
        lost: list[tuple[dict, BaseException]] = []
        try:
            while (queue or inflight) and not lost:
                while queue and len(inflight) < workers:
                    spec = queue.popleft()
                    try:
                        inflight[pool.submit(_call, task, spec)] = spec
                    except BrokenProcessPool as broken:
                        lost.append((spec, broken))
                        break
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                for future in done:
                    spec = inflight.pop(future)
                    exc = future.exception()
                    if exc is None:
                        emit(spec, future.result())
                    elif isinstance(exc, BrokenProcessPool):
                        lost.append((spec, exc))
                    else:
                        raise _failed(spec, exc) from exc
            if lost:
                pool.shutdown(wait=True, cancel_futures=True)  # settles every future
                for future, spec in inflight.items():
                    if not future.cancelled() and future.exception() is None:
                        emit(spec, future.result())
                    else:
                        lost.append((spec, BrokenProcessPool("worker process died")))
                inflight.clear()
            pool.shutdown(wait=True)
        except BaseException:  # a failed trial, Ctrl-C, SIGTERM (see sigterm_raises)
            _terminate(pool)
            raise
        for spec, exc in reversed(lost):
            attempts[spec["key"]] += 1
            if attempts[spec["key"]] > retries:
                raise _lost(spec, attempts[spec["key"]], exc) from exc
            queue.appendleft(spec)


def _run_dask(
    task: str, pending: list[dict], workers: int, scheduler: str | None, retries: int, emit: OnResult
) -> None:
    """Runs the trials on a Dask cluster (joined at ``scheduler`` or started locally)."""
    import dask
    from distributed import Client, KilledWorker, LocalCluster, as_completed

    with ExitStack() as stack:
        if scheduler:
            try:
                client = Client(scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
            except (OSError, TimeoutError, ValueError) as error:
                message = str(error).splitlines()[0] if str(error) else type(error).__name__
                gc.collect()  # closes the half-built client while its event loop still runs
                raise EvopruneError(
                    f"Cannot reach the Dask scheduler at {scheduler} within "
                    f"{CONNECT_TIMEOUT_S} s ({message})."
                ) from None
        else:
            # A trial running on a worker that dies is rescheduled up to `retries` times.
            stack.enter_context(dask.config.set({"distributed.scheduler.allowed-failures": retries}))
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                )
            )
            client = Client(cluster, set_as_default=False)
        stack.callback(client.close)
        token = uuid4().hex[:8]  # keeps keys unique on a shared cluster
        futures = {
            client.submit(_call, task, spec, key=f"trial-{spec['key']}-{token}", pure=False, retries=0): spec
            for spec in pending
        }  # a raising task fails again: no retry
        try:
            for future in as_completed(futures, loop=client.loop):
                spec = futures[future]
                if future.status == "finished":
                    emit(spec, future.result())
                    future.release()
                    continue
                exc = future.exception() if future.status == "error" else None
                if isinstance(exc, KilledWorker):
                    raise _lost(spec, exc.allowed_failures + 1, "Dask KilledWorker") from exc
                if exc is None:
                    raise TrialError(f"Trial {spec['key']!r} was cancelled on the Dask cluster.")
                raise _failed(spec, exc) from exc
        except BaseException:
            client.cancel(list(futures), force=True)
            raise
