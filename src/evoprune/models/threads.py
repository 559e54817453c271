"""Thread pools sized to the cores this process may use, and BLAS calls sized to the free ones.

More threads than cores do not share a core politely: a BLAS worker waits, spinning, for
one that is not scheduled, and a product of a few milliseconds takes a scheduler time
slice or more. Measured with the paper's search pinned to one core: 0.12 s with one
OpenBLAS thread, 1.0 s with two; with two CPU-bound processes beside it 0.4 s and 2.2 s.
So the pools are sized once to the usable cores (affinity, cgroup quota), and the
search's own products (:func:`blas_limited`) use only the cores other runnable tasks
leave free at that moment.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Iterator

_CONTROLLER: list = []  # (modules imported, threadpoolctl controller), made on first use


def usable_cores() -> int:
    """CPU cores this process may use: its affinity, capped by a cgroup CPU quota (containers)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    for path, parse in (
        ("/sys/fs/cgroup/cpu.max", lambda text: text.split()[:2]),  # cgroup v2: "quota period"
        ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", lambda text: [text.strip(), "100000"]),  # v1
    ):
        try:
            quota, period = parse(Path(path).read_text())
            if quota not in ("max", "-1"):
                cores = min(cores, max(1, -(-int(quota) // int(period))))
            break
        except (OSError, ValueError):
            continue
    return max(cores, 1)


def free_cores(
    cores: int | None = None, loadavg: str = "/proc/loadavg", tasks: str = "/proc/self/task"
) -> int:
    """Usable cores that no other process's runnable task takes right now (at least 1).

    Reads the kernel's count of runnable tasks (``loadavg``'s fourth field) and leaves out
    this process's own (its threads in state ``R``, the caller and any BLAS worker still
    spinning after the last product among them); without ``loadavg``, every usable core
    counts as free.
    """
    cores = cores or usable_cores()
    try:
        running = int(Path(loadavg).read_text().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return cores
    return max(1, min(cores, cores - (running - max(_own_running(tasks), 1))))


def _own_running(tasks: str) -> int:
    """This process's threads that are runnable (``R`` in their ``stat``)."""
    count = 0
    for task in Path(tasks).glob("*/stat"):
        try:
            count += task.read_text().rsplit(")", 1)[1].split()[0] == "R"
        except (OSError, IndexError):
            continue
    return count


def size_thread_pools(cores: int | None = None) -> int:
    """Sizes the BLAS (threadpoolctl) and TensorFlow thread pools to ``cores`` (default: usable).

    TensorFlow's pools can only be sized before its runtime starts (otherwise they stay as
    they are). Returns the size.
    """
    cores = cores or usable_cores()
    controller = _controller()
    if controller is not None:
        controller.limit(limits=cores)
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(cores)
        tf.config.threading.set_inter_op_parallelism_threads(cores)
    except RuntimeError:  # the runtime already started (a caller used TensorFlow first)
        pass
    return cores


@contextlib.contextmanager
def blas_limited() -> Iterator[int]:
    """Within the block, BLAS uses the :func:`free_cores` only (yields their number)."""
    controller = _controller()
    cores = free_cores()  # looked up here, at call time (tests replace it)
    if controller is None:
        yield cores
        return
    with controller.limit(limits=cores, user_api="blas"):
        yield cores


def _controller():
    """threadpoolctl's controller of this process's thread pools (``None`` without threadpoolctl).

    Made again when modules were imported since (``len(sys.modules)`` changed): a module
    imported later (SciPy) can load a BLAS library of its own, which an older controller
    would not limit. Making one takes about a millisecond; the check is free.
    """
    if not _CONTROLLER or _CONTROLLER[0][0] != len(sys.modules):
        try:
            from threadpoolctl import ThreadpoolController

            controller = ThreadpoolController()
        except ImportError:  # pragma: no cover (a dependency)
            controller = None
        _CONTROLLER[:] = [(len(sys.modules), controller)]
    return _CONTROLLER[0][1]
