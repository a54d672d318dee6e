#!/usr/bin/env python3
"""keyhook's event benchmark: latency under `watch`, dispatch throughput, trigger cost.

    python3 bench/events.py            # about 3 minutes on 2 cores
    python3 bench/events.py --quick    # smaller: 10 s of latency, 20k events, 20k-row bulk update

(a) latency from commit to the receiver under `keyhook watch` at 100 changes/s: a writer
    inserts one license per transaction on a fixed 10 ms schedule (ActivationKey `LAT-<n>`),
    records the monotonic time after each commit; a Python receiver (a separate process,
    HTTP/1.1 keep-alive) records the monotonic time each body is read and its ActivationKey.
    p50 and p99 of arrival - commit. Targets: p50 <= 50 ms, p99 <= 250 ms.
(b) dispatch throughput: 100k events in the outbox (one bulk UPDATE with triggers installed,
    plus the single-row commits of (c)), then `keyhook dispatch` (sequential, durable) to the C
    receiver (bench/receiver.c) until its count says all arrived; against the floor client
    (bench/floor.c) on the same receiver, measured right before and after. Target >= 0.7 x floor.
(c) trigger cost to the writer (Python's sqlite3, default rollback journal, synchronous=FULL):
    single-row UPDATE committed alone (median of N, alternating between two copies of the same
    100k-license database, one with triggers), and an UPDATE of all 100k rows in one transaction.

Reuses bench.py's helpers (build, C receiver and floor) without changing it. Writes
bench/events-results.md and prints the same table. Everything talks to 127.0.0.1 only; the
temporary data (about 350 MB at full size) is deleted at the end unless --keep.
"""

import argparse
import datetime as dt
import http.client
import os
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (bench.py's helpers; main() only runs as a script)

BENCH_DIR = bench.BENCH_DIR
SECRET = "bench-secret-0123456789"

RECEIVER_PY = r'''
import json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

out = open(sys.argv[1], "w", buffering=1)

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and
    # the client's delayed ACK add about 40 ms to every answer.
    disable_nagle_algorithm = True
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        arrived = time.monotonic_ns()
        try:
            key = json.loads(body)["LicenseInfo"]["ActivationKey"]
        except Exception:
            key = "?"
        out.write(f"{arrived} {key}\n")
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print("PORT", server.server_address[1], flush=True)
server.serve_forever()
'''


def log(message):
    bench.log(message)


def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def percentile(values, p):
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def keyhook_cmd(binary, config, db, state, *args):
    return [binary, "--config", config, "--db", db, "--state", state, *args]


def write_webhook(config, url, events):
    os.makedirs(os.path.join(config, "webhooks"), exist_ok=True)
    with open(os.path.join(config, "webhooks", "bench.toml"), "w") as f:
        f.write(f'name = "bench"\nurl = "{url}"\nevents = {events}\nsecret = "{SECRET}"\n')


# --------------------------------------------------------------------------------------------
# (a) latency under watch


def measure_latency(keyhook, work, seconds, rate):
    config = os.path.join(work, "lat-config")
    db = os.path.join(work, "lat.db")
    state = os.path.join(work, "lat-state.db")
    os.makedirs(config)
    arrivals_file = os.path.join(work, "arrivals.txt")
    script = os.path.join(work, "receiver.py")
    with open(script, "w") as f:
        f.write(RECEIVER_PY)
    receiver = subprocess.Popen([sys.executable, script, arrivals_file],
                                stdout=subprocess.PIPE, text=True)
    port = int(receiver.stdout.readline().split()[1])
    write_webhook(config, f"http://127.0.0.1:{port}/hooks", '["license.created"]')
    bench.run([keyhook, "--config", config, "--db", db, "db", "init"])
    bench.run([keyhook, "--config", config, "--db", db, "events", "install"])
    watch_err = open(os.path.join(work, "watch-stderr.txt"), "w+")
    watch = subprocess.Popen(keyhook_cmd(keyhook, config, db, state, "watch"),
                             stdout=subprocess.PIPE, stderr=watch_err, text=True)
    first = watch.stdout.readline()
    if not first.startswith("watching"):
        raise RuntimeError(f"watch did not start: {first!r}")
    threading.Thread(target=watch.stdout.read, daemon=True).start()
    conn = sqlite3.connect(db, isolation_level=None)
    commits = {}
    n = int(seconds * rate)
    interval = 1.0 / rate
    start = time.monotonic()
    late = 0
    load_before = load()
    for i in range(n):
        target = start + i * interval
        pause = target - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        else:
            late += 1
        key = f"LAT-{i}"
        conn.execute("INSERT INTO LicenseKeys (ActivationKey, Email) VALUES (?, ?)",
                     (key, f"lat{i}@example.com"))
        commits[key] = time.monotonic_ns()
    elapsed = time.monotonic() - start
    # Wait (bounded) for the last arrivals.
    deadline = time.monotonic() + 30
    arrivals = {}
    while time.monotonic() < deadline:
        arrivals = {}
        with open(arrivals_file) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2:
                    arrivals.setdefault(parts[1], int(parts[0]))
        if len(arrivals) >= n:
            break
        time.sleep(0.2)
    load_after = load()
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    watch.send_signal(signal.SIGTERM)
    watch.wait(timeout=10)
    usage_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    watch_cpu = ((usage_after.ru_utime - usage_before.ru_utime)
                 + (usage_after.ru_stime - usage_before.ru_stime))
    receiver.kill()
    receiver.wait()
    conn.close()
    watch_err.seek(0)
    warnings = [line for line in watch_err.read().splitlines() if line.startswith("warning")]
    watch_err.close()
    if warnings:
        log(f"watch printed {len(warnings)} warnings, the first: {warnings[0]}")
    latencies = [(arrivals[k] - commits[k]) / 1e6 for k in commits if k in arrivals]
    return {
        "changes": n,
        "rate": n / elapsed,
        "seconds": elapsed,
        "late_ticks": late,
        "arrived": len(latencies),
        "p50_ms": percentile(latencies, 50) if latencies else None,
        "p90_ms": percentile(latencies, 90) if latencies else None,
        "p99_ms": percentile(latencies, 99) if latencies else None,
        "max_ms": max(latencies) if latencies else None,
        "load": f"{load_before} -> {load_after}",
        "watch_warnings": len(warnings),
        "watch_cpu_s": watch_cpu,
    }


# --------------------------------------------------------------------------------------------
# (c) trigger cost to the writer


def single_commits(db_plain, db_events, runs, rows):
    plain_conn = sqlite3.connect(db_plain, isolation_level=None)
    events_conn = sqlite3.connect(db_events, isolation_level=None)
    for conn in (plain_conn, events_conn):
        conn.execute("PRAGMA synchronous = FULL")
    times = {"plain": [], "events": []}
    for i in range(runs):
        order = [("plain", plain_conn), ("events", events_conn)]
        if i % 2:
            order.reverse()
        for name, conn in order:
            row = 1 + (i * 7919) % rows
            t = time.perf_counter()
            changed = conn.execute("UPDATE LicenseKeys SET Comment = ? WHERE ID = ?",
                                   (f"single {i}", row)).rowcount
            times[name].append(time.perf_counter() - t)
            assert changed == 1, f"license {row} is in the demo database"
    plain_conn.close()
    events_conn.close()
    return {name: statistics.median(values) * 1000 for name, values in times.items()}


def bulk_update(db):
    conn = sqlite3.connect(db, isolation_level=None)
    t = time.perf_counter()
    conn.execute("BEGIN")
    changed = conn.execute("UPDATE LicenseKeys SET Comment = 'bulk'").rowcount
    conn.execute("COMMIT")
    seconds = time.perf_counter() - t
    conn.close()
    return seconds, changed


# --------------------------------------------------------------------------------------------
# (b) dispatch throughput


def measure_dispatch(keyhook, binaries, work, db, expected, floor_requests):
    receiver = bench.Receiver(binaries["receiver"])
    config = os.path.join(work, "tp-config")
    state = os.path.join(work, "tp-state.db")
    os.makedirs(config)
    write_webhook(config, receiver.url, '["license.*"]')
    floor_before = bench.measure_floor(binaries["floor"], receiver, floor_requests, 3)
    before = receiver.count()
    load_before = load()
    passes = 0
    recorded_at = None
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    while True:
        passes += 1
        errors = tempfile.TemporaryFile(mode="w+")
        child = subprocess.Popen(keyhook_cmd(keyhook, config, db, state, "dispatch"),
                                 stdout=subprocess.PIPE, stderr=errors, text=True)
        # `dispatch` says (and flushes) "... deliveries recorded" when its record phase ends:
        # the time of that line splits the pass into recording and sending.
        for line in child.stdout:
            if recorded_at is None and "deliveries recorded" in line:
                recorded_at = time.perf_counter() - t
        child.wait()
        errors.seek(0)
        stderr = errors.read()
        errors.close()
        if child.returncode != 0:
            log(f"dispatch exited {child.returncode}: {stderr[-500:]}")
        if receiver.count() - before >= expected or passes >= 5:
            break
    seconds = time.perf_counter() - t
    usage_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = ((usage_after.ru_utime - usage_before.ru_utime)
           + (usage_after.ru_stime - usage_before.ru_stime))
    delivered = receiver.count() - before
    load_after = load()
    floor_after = bench.measure_floor(binaries["floor"], receiver, floor_requests, 3)
    receiver.stop()
    state_bytes = sum(os.path.getsize(state + suffix) for suffix in ("", "-wal")
                      if os.path.exists(state + suffix))
    floor = statistics.median(floor_before["rps_each"] + floor_after["rps_each"])
    rate = delivered / seconds
    return {
        "expected": expected,
        "delivered": delivered,
        "passes": passes,
        "seconds": seconds,
        "rate": rate,
        "floor_before": floor_before["rps"],
        "floor_after": floor_after["rps"],
        "floor": floor,
        "ratio": rate / floor,
        "state_bytes": state_bytes,
        "load": f"{load_before} -> {load_after}",
        "cpu_s": cpu,
        "record_s": recorded_at,
    }


# --------------------------------------------------------------------------------------------


def split(tp):
    """The record phase (start to the "deliveries recorded" line) and the send phase (the rest)."""
    if tp.get("record_s") is None or tp["passes"] != 1:
        return "phases not split"
    record = tp["record_s"] / max(tp["expected"], 1) * 1e6
    send = (tp["seconds"] - tp["record_s"]) / max(tp["delivered"], 1) * 1e6
    return (f"record phase {tp['record_s']:.2f} s ({record:.0f} µs per event, process start "
            f"included), send phase {tp['seconds'] - tp['record_s']:.2f} s ({send:.0f} µs per delivery)")


def verdict(ok):
    return "met" if ok else "**not met**"


def report(args, results, keyhook):
    lat, cost, tp = results["latency"], results["cost"], results["dispatch"]
    commit = bench.git_commit_of(keyhook) or "unknown"
    lines = [
        "# keyhook event benchmark",
        "",
        f"`{results['command']}` on {results['date']}, commit {commit}, "
        f"{os.cpu_count()} cores, SQLite {sqlite3.sqlite_version} (the writer's).",
        "Load averages (1, 5, 15 min) are read before and after each figure; the machine is "
        "shared, so a figure taken above 0.7 is marked noisy.",
        "",
        "| figure | measured | target | | load |",
        "| --- | --- | --- | --- | --- |",
    ]

    def noisy(load_text):
        peak = max(float(part) for part in load_text.replace("->", " ").split()[0::3])
        return " (noisy)" if peak > 0.7 else ""

    if lat:
        lines.append(
            f"| (a) commit → receiver under `watch`, {lat['changes']:,} inserts at "
            f"{lat['rate']:.0f}/s | p50 {lat['p50_ms']:.1f} ms, p90 {lat['p90_ms']:.1f} ms, "
            f"p99 {lat['p99_ms']:.1f} ms, max {lat['max_ms']:.1f} ms ({lat['arrived']:,} of "
            f"{lat['changes']:,} arrived); `watch` used {lat['watch_cpu_s']:.2f} s of CPU "
            f"({lat['watch_cpu_s'] / max(lat['arrived'], 1) * 1e6:,.0f} µs per event, idle time "
            f"included) | p50 ≤ 50 ms, p99 ≤ 250 ms | "
            f"{verdict(lat['p50_ms'] <= 50 and lat['p99_ms'] <= 250 and lat['arrived'] == lat['changes'])} | "
            f"{lat['load']}{noisy(lat['load'])} |")
    if tp:
        lines.append(
            f"| (b) `keyhook dispatch` of {tp['expected']:,} events, sequential, durable | "
            f"{tp['rate']:,.0f}/s ({tp['delivered']:,} in {tp['seconds']:.2f} s, "
            f"{tp['passes']} pass(es)); floor {tp['floor']:,.0f}/s (before {tp['floor_before']:,.0f}, "
            f"after {tp['floor_after']:,.0f}): **{tp['ratio']:.2f} x**; CPU (user + system) "
            f"{tp['cpu_s'] / max(tp['delivered'], 1) * 1e6:.0f} µs per delivery; {split(tp)} "
            f"| ≥ 0.7 x floor | "
            f"{verdict(tp['ratio'] >= 0.7 and tp['delivered'] == tp['expected'])} | "
            f"{tp['load']}{noisy(tp['load'])} |")
    if cost:
        lines.append(
            f"| (c) one-row `UPDATE` committed alone (median of {cost['runs']}) | "
            f"{cost['single']['plain']:.2f} ms without triggers, "
            f"{cost['single']['events']:.2f} ms with | (reported) | | "
            f"{cost['single_load']}{noisy(cost['single_load'])} |")
        lines.append(
            f"| (c) `UPDATE` of all {cost['rows']:,} rows in one transaction | "
            f"{cost['bulk_plain']:.2f} s without triggers, {cost['bulk_events']:.2f} s with "
            f"({cost['bulk_events'] / cost['bulk_plain']:.1f} x; outbox +{cost['outbox_mb']:.0f} MB) "
            f"| (reported) | | {cost['bulk_load']}{noisy(cost['bulk_load'])} |")
    lines += [
        "",
        "How each is taken: see the docstring of `bench/events.py`. (a) uses a small Python "
        "receiver (it must timestamp each arrival and read its ActivationKey), so its own "
        "parsing (well under 1 ms) is inside the figure. (b) uses the C receiver "
        "(`bench/receiver.c`), whose `/__count` counts arrivals, and the floor is the C client "
        "(`bench/floor.c`, 900-byte bodies, one keep-alive connection) against that same "
        "receiver; keyhook's bodies are QLM-shaped events of about 1.1 kB.",
    ]
    if tp:
        lines.append(
            f"State database after (b): {tp['state_bytes'] / 1e6:.0f} MB, "
            f"{tp['state_bytes'] / max(tp['delivered'], 1):,.0f} bytes per delivery.")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        with open(os.path.join(BENCH_DIR, "events-results.md"), "w") as f:
            f.write(text)


def main():
    parser = argparse.ArgumentParser(description="keyhook's event benchmark")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--keyhook", default=os.environ.get("KEYHOOK_BIN"))
    parser.add_argument("--only", choices=["latency", "dispatch"],
                        help="run one part ((c) runs with dispatch: it makes its events)")
    parser.add_argument("--no-write", action="store_true", help="print, do not write the .md")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    keyhook = bench.build_keyhook(args)
    work = tempfile.mkdtemp(prefix="keyhook-events-bench-")
    results = {
        "command": "python3 bench/events.py" + (" --quick" if args.quick else ""),
        "date": dt.date.today().isoformat(),
        "latency": None, "cost": None, "dispatch": None,
    }
    rows = 20_000 if args.quick else 100_000
    try:
        binaries = bench.compile_c(work)
        if args.only in (None, "latency"):
            log("(a) latency under watch")
            results["latency"] = measure_latency(keyhook, work, 10 if args.quick else 30, 100)
            log(f"    {results['latency']}")
        if args.only in (None, "dispatch"):
            log(f"(c) trigger cost: a {rows:,}-license demo database, twice")
            plain = os.path.join(work, "plain.db")
            events = os.path.join(work, "events.db")
            bench.run([keyhook, "--config", work, "--db", plain, "--now", bench.NOW, "--timezone", "UTC",
                       "db", "demo", "--licenses", str(rows), "--force"])
            shutil.copy(plain, events)
            bench.run([keyhook, "--config", work, "--db", events, "events", "install"])
            runs = 100 if args.quick else 300
            single_load = load()
            single = single_commits(plain, events, runs, rows)
            single_load += " -> " + load()
            bulk_load = load()
            bulk_plain, _ = bulk_update(plain)
            size_before = os.path.getsize(events)
            bulk_events, changed = bulk_update(events)
            bulk_load += " -> " + load()
            os.remove(plain)
            results["cost"] = {
                "runs": runs, "single": single, "single_load": single_load,
                "rows": changed, "bulk_plain": bulk_plain, "bulk_events": bulk_events,
                "bulk_load": bulk_load,
                "outbox_mb": (os.path.getsize(events) - size_before) / 1e6,
            }
            log(f"    {results['cost']}")
            expected = sqlite3.connect(events).execute(
                "SELECT count(*) FROM keyhook_outbox").fetchone()[0]
            log(f"(b) dispatch of {expected:,} events")
            results["dispatch"] = measure_dispatch(keyhook, binaries, work, events, expected,
                                                   20_000 if args.quick else 50_000)
            log(f"    {results['dispatch']}")
        report(args, results, keyhook)
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
