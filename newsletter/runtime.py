"""Process-wide runtime settings for the long-running commands (``serve``, ``simulate``,
``demo``).

CPython's garbage collector runs a young collection every 700 allocations and a full one
every hundred of those, and a full collection walks every tracked object in the process: the
imported modules, the app, and whatever the command caches (the tracking buffer keeps the
facts and click/open histories of up to 100,000 messages; the simulator keeps its world).
In a server each full collection stops the event loop for 100-200 ms, which was the whole p99
of the tracking benchmark (178-204 ms with the defaults, 28-36 ms with ``tune_gc`` at
4,600-5,900 requests/s, peak memory unchanged: benchmarks/README.md, "Tracking throughput");
in the simulator it is a fifth of the CPU. These commands make little cyclic garbage, so the
collector can run far less often without holding more memory.
"""

from __future__ import annotations

import gc

# gen0 / gen1 / gen2 thresholds (CPython's defaults: 700, 10, 10)
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc(*, freeze: bool = False) -> None:
    """Collect far less often; with `freeze`, also move what exists now out of the
    collector's sight (for a process that only serves: call it once the app is built).

    Frozen objects are still freed when nothing refers to them, but a cycle among them is
    never collected, so only a dedicated process (``serve``) freezes, not a command that may
    run inside another program (the simulator, the demo).
    """
    if freeze:
        gc.collect()
        gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
