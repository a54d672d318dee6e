#!/usr/bin/env python3
"""Two (or more) keyhook binaries side by side against the floor, in one regime, ~40k matches:
the A/B of a change on a machine whose speed moves from one hour to the next.

    python3 bench/ab.py idle 3 old/keyhook target/release/keyhook
    python3 bench/ab.py awake 3 old/keyhook target/release/keyhook

Each repetition runs every binary once, each between two floor measurements (their mean is
that run's floor), so the binaries meet the same minutes of the machine. Prints per run and
the medians: rate / floor (whole run and sending phase), CPU us per delivery (user + system)
and how much more that is than the floor client's CPU per request in the same minutes,
record phase us per match, and rescheduling IPIs per delivery (keyhook) and per request (the
floor client): near 0, the two ends of each round trip shared a CPU; 2, they never did (see
bench/README.md, "Rescheduling IPIs"). Uses bench.py's receiver, floor client and
measurements.
"""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as B  # noqa: E402


def main():
    if len(sys.argv) < 4 or sys.argv[1] not in B.REGIMES:
        sys.exit(__doc__)
    regime, reps, binaries = sys.argv[1], int(sys.argv[2]), [os.path.abspath(b) for b in sys.argv[3:]]
    work = tempfile.mkdtemp(prefix="keyhook-ab-")
    data = os.environ.get("KEYHOOK_AB_DATA", os.path.join(work, "data"))
    os.makedirs(data, exist_ok=True)
    c_bins = B.compile_c(work)
    config = os.path.join(work, "config")
    dbs, _ = B.generate_databases(B.Keyhook(binaries[0], config), [100_000], data, reuse=True)
    db = dbs[100_000]
    receiver = B.Receiver(c_bins["receiver"])
    B.write_config(config, receiver.url, receiver.url, B.choose_forty(db)[0], 100)
    gnu_time = B.ensure_gnu_time()
    results = {binary: [] for binary in binaries}
    try:
        with B.BusyLoops(regime == "awake"):
            for _ in range(reps):
                for binary in binaries:
                    before = B.measure_floor(c_bins["floor"], receiver, 40000, 1)
                    run = B.measure_run_task(B.Keyhook(binary, config), "deliver", db, receiver,
                                             1, 240, 180, gnu_time, work)
                    after = B.measure_floor(c_bins["floor"], receiver, 40000, 1)
                    floor = (before["rps"] + after["rps"]) / 2
                    floor_cpu = (before["cpu_us_per_request"] + after["cpu_us_per_request"]) / 2
                    floor_ipis = B.mean_known(before["ipis_per_request"], after["ipis_per_request"])
                    row = (run["rps"] / floor, run["send_rps"] / floor,
                           run["cpu_us_per_delivery"], run["record_us_per_match"],
                           run["cpu_us_per_delivery"] - floor_cpu,
                           run["ipis_per_delivery"], floor_ipis)
                    results[binary].append(row)
                    print(f"{binary}: {row[0]:.3f} x floor ({floor:,.0f}/s), sending {row[1]:.3f} x, "
                          f"CPU {row[2]:.1f} us/delivery ({row[4]:.1f} more than the floor "
                          f"client's per request), record {row[3]:.2f} us/match, IPIs "
                          f"{B.fmt(row[5], 2)} per delivery (floor {B.fmt(row[6], 2)})", flush=True)
    finally:
        receiver.stop()
    for binary, rows in results.items():
        medians = [B.median([row[i] for row in rows if row[i] is not None]) for i in range(7)]
        print(f"median {binary} ({regime}): {medians[0]:.3f} x floor, sending {medians[1]:.3f} x, "
              f"CPU {medians[2]:.1f} us/delivery ({medians[4]:.1f} more than the floor "
              f"client's), record {medians[3]:.2f} us/match, IPIs {B.fmt(medians[5], 2)} per "
              f"delivery (floor {B.fmt(medians[6], 2)})")


if __name__ == "__main__":
    main()
