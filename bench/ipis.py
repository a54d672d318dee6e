#!/usr/bin/env python3
"""What a cross-CPU round trip costs on this machine: the floor client against the benchmark's
receiver with both pinned to one CPU, pinned to two, and left to the scheduler, with the CPUs
idle or kept awake (a `nice -n 19` busy loop per core).

    python3 bench/ipis.py awake 3
    python3 bench/ipis.py idle 3

Prints per placement: the floor's rate, its CPU per request (user + system, `wait4`) and the
machine's rescheduling IPIs per request (`RES` in /proc/interrupts). Pinning is a diagnosis
here, not something keyhook does: it shows why the same build's CPUs-awake figures split into
two groups from one run to the next (bench/README.md, "Rescheduling IPIs"). Needs 2 CPUs.
"""
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as B  # noqa: E402

REQUESTS = 40000


def main():
    allowed = sorted(os.sched_getaffinity(0))
    if len(sys.argv) != 3 or sys.argv[1] not in B.REGIMES or len(allowed) < 2:
        sys.exit(__doc__)
    regime, reps = sys.argv[1], int(sys.argv[2])
    first, second = allowed[:2]
    placements = (("one CPU", {first}, {first}), ("two CPUs", {first}, {second}),
                  ("the scheduler's", None, None))
    work = tempfile.mkdtemp(prefix="keyhook-ipis-")
    c_bins = B.compile_c(work)
    receiver = B.Receiver(c_bins["receiver"])
    results = {name: [] for name, _, _ in placements}
    try:
        with B.BusyLoops(regime == "awake"):
            for _ in range(reps):
                for name, receiver_cpus, floor_cpus in placements:
                    os.sched_setaffinity(receiver.process.pid, receiver_cpus or set(allowed))
                    floor = B.measure_floor(c_bins["floor"], receiver, REQUESTS, 1,
                                            cpus=floor_cpus)
                    row = (floor["rps"], floor["cpu_us_per_request"], floor["ipis_per_request"])
                    results[name].append(row)
                    print(f"{name}: {row[0]:,.0f}/s, CPU {row[1]:.1f} us/request, "
                          f"IPIs {B.fmt(row[2], 2)} per request", flush=True)
    finally:
        receiver.stop()
        shutil.rmtree(work, ignore_errors=True)
    for name, rows in results.items():
        print(f"median, {name} ({regime}): {B.median([r[0] for r in rows]):,.0f}/s, CPU "
              f"{B.median([r[1] for r in rows]):.1f} us/request, IPIs "
              f"{B.fmt(B.median([r[2] for r in rows if r[2] is not None]), 2)} per request")


if __name__ == "__main__":
    main()
