#!/usr/bin/env python3
"""Where a delivery's CPU goes, thread by thread: keyhook's threads beside the floor client,
in one regime, ~40k matches.

    python3 bench/threads.py idle 3
    python3 bench/threads.py awake 3 target/release/keyhook
    python3 bench/threads.py awake 3 target/release/keyhook 16

The optional last argument is the concurrency: `run-task --concurrency N`, beside the floor
client over as many connections (`floor --connections N`).

Each repetition runs the floor client, then `run-task deliver --force` (one keep-alive
connection, durable log on), and polls /proc every 2 ms while each runs: per thread, the time
on a CPU and the time waiting on a run queue (`/proc/<pid>/task/<tid>/schedstat`, in ns),
and user and system time (`stat`, in clock ticks: coarse), each per delivery (per request
for the floor client), by thread name (the main thread has the binary's name, `keyhook`: it
records the run, then claims and commits; `keyhook-reader` reads the licenses and builds the
bodies; `keyhook-send1` POSTs; `keyhook-checkpt` copies the WAL into the state file).

Caveats: a thread is seen as of the last poll before it ended (up to 2 ms of its time lost),
and one that starts and ends between two polls not at all; the polling itself takes some CPU,
which with the CPUs kept awake adds to the run-queue waits, and the rates printed are a little
below bench.py's. Uses bench.py's receiver, floor client, databases and busy loops.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as B  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
POLL = 0.002


def poll(process):
    """Polls `process` until it ends: {tid: (name, user ticks, system ticks, on-CPU ns,
    run-queue ns)}, the last figures seen of each thread, and the wall time."""
    seen = {}
    started = time.monotonic()
    while process.poll() is None:
        try:
            tids = os.listdir(f"/proc/{process.pid}/task")
        except OSError:
            tids = []
        for tid in tids:
            base = f"/proc/{process.pid}/task/{tid}"
            try:
                with open(f"{base}/stat") as file:
                    stat = file.read()
                with open(f"{base}/schedstat") as file:
                    sched = file.read().split()
            except OSError:
                continue
            name = stat[stat.index("(") + 1:stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2:].split()
            seen[tid] = (name, int(fields[11]), int(fields[12]), int(sched[0]), int(sched[1]))
        time.sleep(POLL)
    return seen, time.monotonic() - started


def row(name, per, user, system, on_cpu, waited):
    return (f"  {name:16} {user / TICK * 1e6 / per:6.2f} {system / TICK * 1e6 / per:6.2f} "
            f"{on_cpu / 1e3 / per:8.2f} {waited / 1e3 / per:8.2f}")


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in B.REGIMES:
        sys.exit(__doc__)
    regime, reps = sys.argv[1], int(sys.argv[2])
    binary = os.path.abspath(sys.argv[3] if len(sys.argv) > 3 else "target/release/keyhook")
    concurrency = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    work = tempfile.mkdtemp(prefix="keyhook-threads-")
    data = os.environ.get("KEYHOOK_AB_DATA", os.path.join(work, "data"))
    os.makedirs(data, exist_ok=True)
    c_bins = B.compile_c(work)
    config = os.path.join(work, "config")
    keyhook = B.Keyhook(binary, config)
    dbs, _ = B.generate_databases(keyhook, [100_000], data, reuse=True)
    db = dbs[100_000]
    receiver = B.Receiver(c_bins["receiver"])
    B.write_config(config, receiver.url, receiver.url, B.choose_forty(db)[0], 100)
    header = f"  {'thread':16} {'user':>6} {'system':>6} {'on a CPU':>8} {'run queue':>8}  (us each)"
    try:
        with B.BusyLoops(regime == "awake"):
            for rep in range(reps):
                requests = 40_000
                floor = subprocess.Popen(
                    [c_bins["floor"], "--port", str(receiver.port), "--requests", str(requests),
                     "--body-bytes", "900", "--split", "0", "--connections", str(concurrency)],
                    stdout=subprocess.DEVNULL)
                seen, seconds = poll(floor)
                if floor.returncode != 0:
                    sys.exit(f"the floor client exited {floor.returncode}")
                print(f"run {rep + 1} ({regime}, {concurrency} connection(s)): floor client "
                      f"{requests / seconds:,.0f} requests/s")
                print(header)
                totals = [0, 0, 0, 0]
                for name, *figures in seen.values():
                    if concurrency == 1:
                        print(row(name, requests, *figures))
                    totals = [t + f for t, f in zip(totals, figures)]
                print(row("(all)", requests, *totals))
                state = os.path.join(work, f"state-{rep}.db")
                os.sync()  # the previous run's writes must not be flushed during this one
                before = receiver.count()
                run = subprocess.Popen(keyhook.cmd("run-task", "deliver", "--force",
                                                   "--concurrency", str(concurrency), db=db,
                                                   state=state),
                                       stdout=subprocess.DEVNULL)
                seen, seconds = poll(run)
                delivered = receiver.count() - before
                if run.returncode != 0 or not delivered:
                    sys.exit(f"run-task exited {run.returncode} after {delivered} deliveries")
                print(f"  keyhook {delivered / seconds:,.0f} deliveries/s")
                print(header)
                totals = [0, 0, 0, 0]
                for name, *figures in sorted(seen.values(), key=lambda thread: -thread[3]):
                    print(row(name, delivered, *figures))
                    totals = [t + f for t, f in zip(totals, figures)]
                print(row("(all)", delivered, *totals), flush=True)
                for suffix in ("", "-wal", "-shm"):
                    if os.path.exists(state + suffix):
                        os.remove(state + suffix)
                shutil.rmtree(state + ".locks", ignore_errors=True)
    finally:
        receiver.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
