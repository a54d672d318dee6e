#!/usr/bin/env python3
"""keyhook on PostgreSQL (issue 14): the figures beside bench.py's, in one invocation.

    python3 bench/postgres.py           # about 3 minutes on 2 cores
    python3 bench/postgres.py --quick   # sanity check: smaller runs (under a minute)

The server is KEYHOOK_BENCH_POSTGRES (default postgres://postgres@127.0.0.1:5432/test); the
benchmark creates a database of its own there (`keyhook_bench`) and drops it at the end.

  (1) sequential `run-task --force` with the state on PostgreSQL vs in a SQLite file: the same
      receiver (bench/receiver.c), the same SQLite license database, ~4k and ~40k matches;
  (2) 1, 2 and 3 hosts (`run-due --host hN` at the same pinned instant, the same PostgreSQL
      state) sending one slot's run to a receiver answering after 20 ms; every delivery id
      must arrive exactly once;
  (3) `dry-run --count` on 1M licenses in PostgreSQL vs `psql -c` with the same count.
It writes bench/postgres-results.md (and bench/postgres-results.json); see bench/README.md.
"""

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the helpers of the main benchmark)
from bench import NOW, TIMEZONE, SECRET, USER_DATA, fmt, log, median  # noqa: E402

DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432/test"
DATABASE = "keyhook_bench"
SIZES = {"~4k": 4000, "~40k": 40000}
HOSTS = (1, 2, 3)
SLOW_MS = 20
HOSTS_SPEEDUP = 1.8  # 2 hosts vs 1
DRY_RUN_RATIO = 1.3  # dry-run --count vs psql
WINDOW_SQL = bench.WINDOW_SQL
# Placeholders expanded as keyhook binds them on PostgreSQL (timestamp).
WINDOW_LITERAL = ("SubscriptionExpiryDate > '{0}'::timestamp AND "
                  "SubscriptionExpiryDate < '{1}'::timestamp").format(
    bench.TODAY_START.strftime("%Y-%m-%d %H:%M:%S"),
    (bench.TODAY_START + dt.timedelta(days=30)).strftime("%Y-%m-%d %H:%M:%S"))
SCAN_SQL = "Disabled = 0 AND Email LIKE '%a%'"  # no index helps: a full scan


def with_database(url, name):
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def with_schema(url, schema):
    return url + ("&" if "?" in url else "?") + f"schema={schema}"


def psql(url, *sql, check=True):
    cmd = ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", url]
    for statement in sql:
        cmd += ["-c", statement]
    return subprocess.run(cmd, capture_output=True, text=True, check=check).stdout.strip()


def postgres_cpu_seconds():
    """CPU time of the PostgreSQL server: every `postgres` process's own, plus what its
    finished children (backends of closed connections) left in the postmaster's cutime."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as file:
                text = file.read()
        except OSError:
            continue
        comm = text[text.index("(") + 1:text.rindex(")")]
        if comm != "postgres":
            continue
        fields = text[text.rindex(")") + 2:].split()
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


class Server:
    """The benchmark's own database on the server; dropped by close() unless kept."""

    def __init__(self, base, keep):
        self.base, self.keep = base, keep
        self.url = with_database(base, DATABASE)
        self.schemas = 0

    def create(self):
        psql(self.base, f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)",
             f"CREATE DATABASE {DATABASE}")

    def has_licenses(self, n):
        try:
            return int(psql(self.url, "SELECT count(*) FROM LicenseKeys")) == n
        except subprocess.CalledProcessError:
            return False

    def fresh_state(self):
        self.schemas += 1
        return with_schema(self.url, f"bench_state_{self.schemas}")

    def drop_state(self, state_url):
        schema = state_url.rsplit("schema=", 1)[1]
        psql(self.url, f"DROP SCHEMA IF EXISTS {schema} CASCADE")

    def close(self):
        if self.keep:
            log(f"kept database {DATABASE} (--keep-db)")
            return
        psql(self.base, f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)", check=False)
        log(f"dropped database {DATABASE}")


def write_config(config, fast_url, slow_url, slow_count):
    os.makedirs(os.path.join(config, "searches"), exist_ok=True)
    os.makedirs(os.path.join(config, "tasks"), exist_ok=True)
    searches = {"window30": WINDOW_SQL, "scan": SCAN_SQL, "slow": f"ID <= {slow_count}"}
    searches.update({f"first{n}": f"ID <= {n}" for n in SIZES.values()})
    for stem, sql in searches.items():
        with open(os.path.join(config, "searches", f"{stem}.toml"), "w") as file:
            file.write(f'name = "Bench {stem}"\nsql = "{sql}"\n')
    tasks = {f"deliver{n}": (f"first{n}", fast_url, "every 1 day") for n in SIZES.values()}
    tasks["slow"] = ("slow", slow_url, "every 1 hour")
    for stem, (search, url, schedule) in tasks.items():
        with open(os.path.join(config, "tasks", f"{stem}.toml"), "w") as file:
            file.write(f'name = "Bench {stem}"\nsearch = "{search}"\nschedule = "{schedule}"\n\n'
                       f'[webhook]\nurl = "{url}"\nsecret = "{SECRET}"\n'
                       f'user_data = "{USER_DATA}"\ntimeout = "30s"\n')


# --------------------------------------------------------------------------------------------
# (1) PostgreSQL state vs SQLite state


def run_task_once(keyhook, task, db, state, receiver, work, cap):
    before = receiver.count()
    receiver.first()
    server_cpu = postgres_cpu_seconds()
    os.sync()
    outcome = bench.measured(keyhook.cmd("run-task", task, "--force", "--json", db=db,
                                         state=state), None, cap, work)
    time.sleep(0.3)  # the postmaster reaps the closed connection's backend (its cutime)
    server_cpu = postgres_cpu_seconds() - server_cpu
    first_ns = receiver.first()
    delivered = receiver.count() - before
    sample = {
        "seconds": outcome["seconds"],
        "delivered": delivered,
        "rps": delivered / outcome["seconds"],
        "cpu_us": outcome["cpu_seconds"] / delivered * 1e6 if delivered else None,
        "server_cpu_us": server_cpu / delivered * 1e6 if delivered else None,
        "record_us": ((first_ns - outcome["started_ns"]) / 1e3 / delivered
                      if first_ns and delivered else None),
        "returncode": outcome["returncode"],
    }
    if outcome["returncode"] != 0:
        sample["error"] = (outcome["stderr"] or outcome["stdout"]).strip()[-400:]
    return sample


def summarize(samples):
    def mid(key):
        values = [s[key] for s in samples if s.get(key) is not None]
        return median(values) if values else None
    return {"runs": len(samples), "delivered": samples[0]["delivered"],
            "errors": [s["error"] for s in samples if "error" in s],
            "rps": mid("rps"), "rps_each": [round(s["rps"], 1) for s in samples],
            "cpu_us": mid("cpu_us"), "server_cpu_us": mid("server_cpu_us"),
            "record_us": mid("record_us"), "seconds": mid("seconds")}


def measure_states(keyhook, server, db, receiver, work, runs, cap):
    results = {}
    for label, n in SIZES.items():
        task = f"deliver{n}"
        samples = {"sqlite": [], "postgres": []}
        for i in range(runs):
            # Alternated, so drift on the shared machine hits both alike.
            for kind in ("sqlite", "postgres"):
                if kind == "sqlite":
                    state = os.path.join(work, f"state-{n}-{i}.db")
                else:
                    state = server.fresh_state()
                    # Migrated before timing, as a deployed state is: not counted.
                    bench.run(keyhook.cmd("status", db=db, state=state))
                sample = run_task_once(keyhook, task, db, state, receiver, work, cap)
                samples[kind].append(sample)
                log(f"  {label} {kind:8} state: {sample['delivered']} delivered in "
                    f"{sample['seconds']:.2f} s ({sample['rps']:.0f}/s), keyhook CPU "
                    f"{fmt(sample['cpu_us'])} us, server CPU {fmt(sample['server_cpu_us'])} us "
                    f"per delivery{', exit ' + str(sample['returncode']) if sample['returncode'] else ''}")
                if kind == "sqlite":
                    for suffix in ("", "-wal", "-shm"):
                        if os.path.exists(state + suffix):
                            os.remove(state + suffix)
                    shutil.rmtree(state + ".locks", ignore_errors=True)
                else:
                    server.drop_state(state)
        results[label] = {"matches": n, **{k: summarize(v) for k, v in samples.items()}}
        sq, pg = results[label]["sqlite"]["rps"], results[label]["postgres"]["rps"]
        results[label]["ratio"] = pg / sq if sq else None
    return results


# --------------------------------------------------------------------------------------------
# (2) several hosts on one state


# The hourly slot at NOW is due once the task was first seen an hour before.
SEEN_AT = "2026-11-23T09:00:30"


def measure_hosts(keyhook, server, db, receiver_bin, work, count, cap):
    results = {}
    for hosts in HOSTS:
        ids_file = os.path.join(work, f"ids-{hosts}.txt")
        receiver = bench.Receiver(None, cmd=[receiver_bin, "--port", "0", "--delay-ms",
                                             str(SLOW_MS), "--log-ids", ids_file])
        config = os.path.join(work, f"config-hosts-{hosts}")
        write_config(config, receiver.url, receiver.url, count)
        state = server.fresh_state()
        base = [keyhook.binary, "--config", config, "--timezone", TIMEZONE, "--db", db,
                "--state", state]
        # First seen an hour earlier (nothing due then), so the slot at NOW is due.
        bench.run(base + ["--now", SEEN_AT, "--host", "prep", "run-due"])
        server_cpu = postgres_cpu_seconds()
        start = time.perf_counter()
        processes = [subprocess.Popen(base + ["--now", NOW, "--host", f"h{i + 1}", "run-due"],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True)
                     for i in range(hosts)]
        outputs, codes = [], []
        for process in processes:
            try:
                out, _ = process.communicate(timeout=cap)
            except subprocess.TimeoutExpired:
                process.kill()
                out, _ = process.communicate()
            outputs.append(out.strip())
            codes.append(process.returncode)
        seconds = time.perf_counter() - start
        server_cpu = postgres_cpu_seconds() - server_cpu
        receiver.stop()
        with open(ids_file) as file:
            ids = [line.strip() for line in file if line.strip()]
        per_host = psql(server.url, f"SET search_path = {state.rsplit('schema=', 1)[1]}",
                        "SELECT host || '=' || count(*) FROM attempts GROUP BY host "
                        "ORDER BY host")
        server.drop_state(state)
        result = {
            "hosts": hosts, "seconds": seconds, "received": len(ids),
            "unique": len(set(ids)), "rps": len(ids) / seconds,
            "exit_codes": codes, "per_host": per_host.replace("\n", ", "),
            "server_cpu_s": server_cpu, "outputs": outputs,
        }
        results[hosts] = result
        log(f"  {hosts} host(s): {len(ids)} received ({len(set(ids))} distinct ids) in "
            f"{seconds:.2f} s ({result['rps']:.1f}/s); attempts by host: {result['per_host']}; "
            f"exits {codes}")
    one = results[1]["rps"]
    for result in results.values():
        result["speedup"] = result["rps"] / one if one else None
    return results


# --------------------------------------------------------------------------------------------
# (3) dry-run --count on 1M licenses vs psql


def measure_dry_run(keyhook, server, config, runs):
    results = {}
    for search, literal in (("window30", WINDOW_LITERAL), ("scan", SCAN_SQL)):
        ours_cmd = [keyhook.binary, "--config", config, "--now", NOW, "--timezone", TIMEZONE,
                    "--db", server.url, "dry-run", search, "--count"]
        sql = f"SELECT count(*) FROM LicenseKeys WHERE {literal}"
        theirs_cmd = ["psql", "-X", "-A", "-t", server.url, "-c", sql]
        ours, theirs, counts = [], [], set()
        for _ in range(runs):
            for cmd, times in ((ours_cmd, ours), (theirs_cmd, theirs)):
                seconds, result = bench.timed(cmd)
                if result.returncode != 0:
                    sys.exit(f"bench: {' '.join(cmd)} failed: {result.stderr.strip()}")
                counts.add(int(result.stdout.strip().splitlines()[-1]))
                times.append(seconds)
        if len(counts) != 1:
            sys.exit(f"bench: dry-run {search} and psql disagree on the count: {counts}")
        results[search] = {"sql": sql, "count": counts.pop(), "runs": runs,
                           "keyhook_ms": median(ours) * 1e3, "psql_ms": median(theirs) * 1e3,
                           "keyhook_ms_each": [round(t * 1e3, 1) for t in ours],
                           "psql_ms_each": [round(t * 1e3, 1) for t in theirs]}
        results[search]["ratio"] = median(ours) / median(theirs)
        log(f"  dry-run {search} --count: {results[search]['count']} in "
            f"{results[search]['keyhook_ms']:.0f} ms vs psql {results[search]['psql_ms']:.0f} ms "
            f"({results[search]['ratio']:.2f} x)")
    return results


# --------------------------------------------------------------------------------------------
# The report


def verdict(ok):
    return "n/a" if ok is None else ("met" if ok else "**NOT met**")


def markdown(r):
    lines = ["# keyhook on PostgreSQL: benchmark results", "",
             "Written by `python3 bench/postgres.py` (see bench/README.md)."
             + (" **--quick run: smaller counts.**" if r["quick"] else ""), ""]
    m = r["machine"]
    lines += [f"- date: {m['date']}; commit: {m['keyhook_commit']}",
              f"- machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']}, Linux {m['kernel']}",
              f"- PostgreSQL: {r['server_version']} on 127.0.0.1 (database `{DATABASE}`, made "
              "for the run and dropped after it)",
              f"- load average (1 min): {r['load_before']:.2f} before, {r['load_after']:.2f} "
              f"after; other processes used {fmt(r['others_cpu_pct'])}% of the machine's CPU "
              "during the run (other engineers compile on this machine: figures move with it)",
              f"- total time: {r['total_seconds']:.0f} s", ""]
    lines += ["## Targets", "", "| target | measured | goal | |", "| --- | --- | --- | --- |"]
    for name, measured, goal, ok in r["targets"]:
        lines.append(f"| {name} | {measured} | {goal} | {verdict(ok)} |")
    lines += ["", "## (1) Sequential `run-task --force`: state on PostgreSQL vs SQLite", "",
              "Same receiver (bench/receiver.c, answers at once), same SQLite license database "
              f"({r['licenses']} demo licenses), `ID <= N`; medians of {r['state_runs']} runs, "
              "alternated. CPU per delivery: keyhook's user + system time (`wait4`), and the "
              "PostgreSQL server's (its processes' `/proc` times) beside it. Record: process "
              "start to the first POST's arrival, per match.", "",
              "| matches | state | deliveries/s | keyhook CPU us/delivery | server CPU "
              "us/delivery | record us/match | PG / SQLite |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for label, entry in r["states"].items():
        for kind in ("sqlite", "postgres"):
            s = entry[kind]
            ratio = f"{entry['ratio']:.2f} x" if kind == "postgres" and entry["ratio"] else ""
            lines.append(f"| {label} ({s['delivered']}) | {kind} | {fmt(s['rps'], 0)} "
                         f"| {fmt(s['cpu_us'])} | {fmt(s['server_cpu_us'])} "
                         f"| {fmt(s['record_us'], 2)} | {ratio} |")
    lines += ["", f"## (2) Several hosts, one state, a receiver answering after {SLOW_MS} ms", "",
              f"`run-due --host hN` started together on N hosts (processes) at the same pinned "
              f"instant; the slot's run has {r['slow_count']} deliveries, `--concurrency` 1 on "
              "each host. Throughput: ids received / wall time from the first start to the last "
              "exit. The receiver logs every `X-Keyhook-Delivery` id.", "",
              "| hosts | wall s | received | distinct ids | deliveries/s | x one host | "
              "attempts by host | exits |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for h in r["hosts"].values():
        lines.append(f"| {h['hosts']} | {h['seconds']:.2f} | {h['received']} | {h['unique']} | "
                     f"{h['rps']:.1f} | {h['speedup']:.2f} | {h['per_host']} | "
                     f"{' '.join(map(str, h['exit_codes']))} |")
    lines += ["", "## (3) `dry-run --count` on 1M licenses in PostgreSQL vs `psql -c`", "",
              f"Whole-process wall times, medians of {r['dry_runs']} runs each, alternated; the "
              "counts agree.", "", "| search | count | keyhook ms | psql ms | ratio |",
              "| --- | --- | --- | --- | --- |"]
    for search, d in r["dry_run"].items():
        lines.append(f"| `{search}` | {d['count']} | {d['keyhook_ms']:.0f} | {d['psql_ms']:.0f} | "
                     f"{d['ratio']:.2f} x |")
    lines += ["", "psql's query: `" + r["dry_run"]["window30"]["sql"] + "`", "",
              "## Notes", "",
              "- Server CPU is every `postgres` process's, so other users' queries count too "
              "(the SQLite rows show that noise). Per delivery the PostgreSQL state writes four "
              "row versions (the insert when recorded, the claim, the outcome, the attempt), "
              "each delivery row carrying its ~900-byte body; that server work, not round "
              "trips, is most of the gap to the SQLite state.",
              "- Round trips per delivery: recording one `INSERT ... SELECT FROM unnest(...)` "
              "per 1,000 matches; claims one `UPDATE ... FOR UPDATE SKIP LOCKED` per batch "
              "(64 first, then ~250 ms of POSTs at the pace seen, at most 1,024); outcomes "
              "BEGIN, one `UPDATE ... FROM unnest`, one `INSERT ... SELECT FROM unnest`, COMMIT "
              "per group (starting within 2 ms of an answer; workers wait while 512 are uncommitted).",
              "- Several hosts: the host that loses a slot's claim waits for the run to be "
              "recorded and sends its deliveries beside the recording host (README, \"Sharing a "
              "slot's run\"); 'attempts by host' is read from the state's `attempts` table.", ""]
    return "\n".join(lines)


def targets(r):
    out = []
    two = r["hosts"][2]
    out.append(("2 hosts vs 1, 20 ms receiver", f"{two['speedup']:.2f} x", f">= {HOSTS_SPEEDUP} x",
                two["speedup"] >= HOSTS_SPEEDUP))
    three = r["hosts"][3]
    out.append(("3 hosts vs 1 (reported)", f"{three['speedup']:.2f} x", "", None))
    dup = all(h["received"] == h["unique"] == r["slow_count"] for h in r["hosts"].values())
    out.append(("every delivery id received exactly once (1, 2, 3 hosts)",
                "yes" if dup else "no", "yes", dup))
    for search, d in r["dry_run"].items():
        out.append((f"`dry-run {search} --count` on 1M vs psql", f"{d['ratio']:.2f} x",
                    f"<= {DRY_RUN_RATIO} x", d["ratio"] <= DRY_RUN_RATIO))
    for label, entry in r["states"].items():
        out.append((f"run-task PG state / SQLite state, {label} (reported)",
                    f"{entry['ratio']:.2f} x" if entry["ratio"] else "n/a", "", None))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keyhook", default=os.environ.get("KEYHOOK_BIN"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--keep-db", action="store_true",
                        help="keep (and reuse next time) the benchmark's database")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--out-dir", default=bench.BENCH_DIR)
    args = parser.parse_args()
    base = os.environ.get("KEYHOOK_BENCH_POSTGRES", DEFAULT_SERVER)
    started = time.perf_counter()
    load_before = bench.load_average()
    busy_before, own_before = bench.machine_busy_seconds(), bench.own_cpu_seconds()
    pg_before = postgres_cpu_seconds()
    binary = bench.build_keyhook(args)
    work = tempfile.mkdtemp(prefix="keyhook-pgbench-")
    c_bins = bench.compile_c(work)
    server = Server(base, args.keep_db)
    licenses_pg = 100_000 if args.quick else 1_000_000
    results = {"quick": args.quick, "machine": bench.machine_info(binary)}
    results["server_version"] = psql(base, "SHOW server_version")
    try:
        if not (args.keep_db and server.has_licenses(licenses_pg)):
            server.create()
            log(f"writing {licenses_pg} demo licenses to PostgreSQL ({DATABASE})")
            bench.run([binary, "db", "demo", "--licenses", str(licenses_pg), "--force",
                       "--db", server.url, "--now", NOW, "--timezone", TIMEZONE])
            psql(server.url, "VACUUM ANALYZE")
        licenses = 100_000 if not args.quick else 10_000
        db = os.path.join(work, "licenses.db")
        log(f"writing {licenses} demo licenses to {db}")
        bench.run([binary, "db", "demo", "--licenses", str(licenses), "--force", "--db", db,
                   "--now", NOW, "--timezone", TIMEZONE])
        if args.quick:
            SIZES.clear()
            SIZES.update({"~4k": 4000})
        slow_count = 200 if args.quick else 1000
        receiver = bench.Receiver(c_bins["receiver"])
        config = os.path.join(work, "config")
        write_config(config, receiver.url, receiver.url, slow_count)
        keyhook = bench.Keyhook(binary, config)
        results.update({"licenses": licenses, "slow_count": slow_count,
                        "state_runs": 2 if args.quick else 3, "dry_runs": 3 if args.quick else 7})
        log("(3) dry-run --count vs psql")
        results["dry_run"] = measure_dry_run(keyhook, server, config, results["dry_runs"])
        log("(1) run-task: PostgreSQL state vs SQLite state")
        results["states"] = measure_states(keyhook, server, db, receiver, work,
                                           results["state_runs"], cap=120)
        receiver.stop()
        log(f"(2) 1, 2 and 3 hosts, receiver answering after {SLOW_MS} ms")
        results["hosts"] = measure_hosts(keyhook, server, db, c_bins["receiver"], work,
                                         slow_count, cap=120)
    finally:
        server.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    busy = bench.machine_busy_seconds() - busy_before
    own = bench.own_cpu_seconds() - own_before
    pg = postgres_cpu_seconds() - pg_before
    total = time.perf_counter() - started
    results["others_cpu_pct"] = max(0.0, busy - own - pg) / (total * os.cpu_count()) * 100
    results["load_before"], results["load_after"] = load_before, bench.load_average()
    results["total_seconds"] = total
    results["targets"] = targets(results)
    text = markdown(results)
    print(text)
    with open(os.path.join(args.out_dir, "postgres-results.md"), "w") as file:
        file.write(text)
    with open(os.path.join(args.out_dir, "postgres-results.json"), "w") as file:
        json.dump(results, file, indent=2, default=str)
    return 0 if all(ok is not False for *_, ok in results["targets"]) else 1


if __name__ == "__main__":
    sys.exit(main())
