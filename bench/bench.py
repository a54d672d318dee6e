#!/usr/bin/env python3
"""keyhook's benchmark: one command, every figure a ratio measured in the same invocation.

    python3 bench/bench.py            # full: 10k, 100k and 1M licenses (about 10 minutes)
    python3 bench/bench.py --quick    # sanity check: 10k licenses only, fewer runs

By default it builds the keyhook of the repository it lives in (`cargo build --release
--locked`) and benchmarks target/release/keyhook; `--keyhook PATH` (or env KEYHOOK_BIN)
benchmarks another binary instead, without building.

What it measures (medians of several runs; see bench/README.md):
  (a) `keyhook dry-run <30-day window> --count` vs the sqlite3 shell's count(*), per database;
  (b) `keyhook run-task <task> --force` deliveries/s at ~4k, ~40k, ~400k matches, against a
      C receiver on 127.0.0.1, next to a C "floor" client and a stdlib Python reference;
  (c) peak RSS of each run-task;
  (d) `keyhook run-due` with 100 tasks and nothing due;
  (e) `--concurrency 1` vs `--concurrency 16` for 2,000 deliveries to a 20 ms receiver;
  (f) state database bytes per delivery.
It prints a markdown table and writes bench/results.json and bench/results.md.
"""

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)

NOW = "2026-11-23T10:00:00"  # the pinned clock of every keyhook call (and of the demo data)
TODAY_START = dt.datetime(2026, 11, 23, 0, 0, 1)  # [today_start] at NOW, in UTC
TIMEZONE = "UTC"
SECRET = "bench-secret-0123456789"
TASK_NAME = "Bench Deliveries"
USER_DATA = "bench"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"

# The 30-day window of the README's example search, as the sqlite3 shell gets it.
WINDOW_SQL = "SubscriptionExpiryDate > [today_start] And SubscriptionExpiryDate < [today_start+30]"
WINDOW_LITERAL = (
    "SubscriptionExpiryDate > '{0}' AND SubscriptionExpiryDate < '{1}'".format(
        TODAY_START.strftime(DATE_FORMAT),
        (TODAY_START + dt.timedelta(days=30)).strftime(DATE_FORMAT),
    )
)

# Targets (see the brief in bench/README.md).
FLOOR_RATIO = 0.9  # answers in one write
SPLIT_FLOOR_RATIO = 0.85  # answers in three writes
RECORD_US_PER_MATCH = 6.0
REFERENCE_RATIO = 4.0
DRY_RUN_RATIO = 1.5
RSS_GROWTH = 1.2
RSS_LIMIT_MB = 50.0
RUN_DUE_LIMIT_MS = 20.0
CONCURRENCY_SPEEDUP = 12.0
# Issue 15: CPUs idle vs kept awake (a niced busy loop per core), at ~40k matches.
AWAKE_FLOOR_RATIO = 0.6
IDLE_FLOOR_RATIO = 0.95
CPU_US_PER_DELIVERY = 25.0
FAST_CONCURRENCY_SPEEDUP = 1.5


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(cmd, **kwargs):
    kwargs.setdefault("check", True)
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    return subprocess.run(cmd, **kwargs)


def median(values):
    return statistics.median(values) if values else None


def fmt(value, digits=1, unit=""):
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    if abs(value) >= 100 or digits == 0:
        text = f"{value:,.0f}"
    else:
        text = f"{value:,.{digits}f}"
    return text + unit


def size_label(n):
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else f"{n // 1000}k"


# --------------------------------------------------------------------------------------------
# Setup: tools, binaries, machine


def ensure_gnu_time():
    """/usr/bin/time -v for peak RSS; installed with apt-get when absent and running as root."""
    if os.path.exists("/usr/bin/time"):
        return "/usr/bin/time"
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("installing GNU time (apt-get install -y time)")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        result = subprocess.run(["apt-get", "install", "-y", "time"], env=env,
                                capture_output=True, text=True)
        if result.returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "time"], env=env, capture_output=True)
        if os.path.exists("/usr/bin/time"):
            return "/usr/bin/time"
    log("no /usr/bin/time: peak RSS comes from wait4()'s ru_maxrss instead")
    return None


def build_keyhook(args):
    if args.keyhook:
        path = os.path.abspath(args.keyhook)
        if not os.access(path, os.X_OK):
            sys.exit(f"bench: {path} is not an executable keyhook binary")
        return path
    log(f"building keyhook: cargo build --release --locked (in {REPO_DIR})")
    result = subprocess.run(["cargo", "build", "--release", "--locked"], cwd=REPO_DIR)
    if result.returncode != 0:
        sys.exit("bench: cargo build failed; point --keyhook (or KEYHOOK_BIN) at a binary")
    return os.path.join(REPO_DIR, "target", "release", "keyhook")


def build_tls_receiver(args):
    """The HTTPS receiver (examples/bench_tls_receiver.rs), built in release mode; None (and
    the HTTPS figure is n/a) when it cannot be built."""
    if args.tls_receiver:
        return os.path.abspath(args.tls_receiver)
    log("building the HTTPS receiver: cargo build --release --locked --example "
        "bench_tls_receiver")
    result = subprocess.run(["cargo", "build", "--release", "--locked", "--example",
                             "bench_tls_receiver"], cwd=REPO_DIR)
    if result.returncode != 0:
        log("could not build examples/bench_tls_receiver.rs: no HTTPS figure")
        return None
    return os.path.join(REPO_DIR, "target", "release", "examples", "bench_tls_receiver")


def compile_c(work):
    binaries = {}
    for name, extra in (("receiver", ["-pthread"]), ("floor", ["-pthread"])):
        out = os.path.join(work, name)
        run(["gcc", "-O2", "-Wall", *extra, "-o", out, os.path.join(BENCH_DIR, f"{name}.c")])
        binaries[name] = out
    return binaries


def git_commit_of(binary):
    """The commit (and whether the tree was dirty) of the repository a binary was built in."""
    directory = os.path.dirname(binary)
    while directory != os.path.dirname(directory):
        if os.path.exists(os.path.join(directory, ".git")):
            try:
                commit = run(["git", "-C", directory, "rev-parse", "HEAD"]).stdout.strip()
                dirty = run(["git", "-C", directory, "status", "--porcelain", "--untracked-files=no"]
                            ).stdout.strip()
                return commit + (" (+uncommitted changes)" if dirty else "")
            except (subprocess.CalledProcessError, FileNotFoundError):
                return None
        directory = os.path.dirname(directory)
    return None


def machine_info(keyhook):
    def first_line(cmd):
        try:
            return run(cmd).stdout.strip().splitlines()[0]
        except (subprocess.CalledProcessError, FileNotFoundError, IndexError):
            return None

    cpu = None
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = None
    try:
        with open("/proc/meminfo") as file:
            kb = int(file.readline().split()[1])
            memory = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": memory,
        "kernel": platform.release(),
        "rustc": first_line(["rustc", "--version"]),
        "gcc": first_line(["gcc", "--version"]),
        "python": platform.python_version(),
        "sqlite3_shell": first_line(["sqlite3", "--version"]),
        "keyhook": first_line([keyhook, "--version"]),
        "keyhook_binary": keyhook,
        "keyhook_commit": git_commit_of(keyhook),
        "date": dt.datetime.now().isoformat(timespec="seconds"),
    }


# --------------------------------------------------------------------------------------------
# The receiver


class Receiver:
    """bench/receiver.c; with split=True it answers in three writes (status line, header
    fields, body)."""

    scheme = "http"

    def __init__(self, binary, delay_ms=0, split=False, cmd=None):
        if cmd is None:
            cmd = [binary, "--port", "0"] + (["--delay-ms", str(delay_ms)] if delay_ms else [])
            cmd += ["--split", "1"] if split else []
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
        line = self.process.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"receiver did not start: {line!r}")
        self.port = int(line.split()[1])
        self.url = f"{self.scheme}://127.0.0.1:{self.port}/hooks/qlm"

    def connection(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def get(self, path):
        connection = self.connection()
        connection.request("GET", path)
        answer = int(connection.getresponse().read())
        connection.close()
        return answer

    def count(self):
        return self.get("/__count")

    def first(self):
        """CLOCK_MONOTONIC ns at which the first request since the last call arrived (None if
        this receiver cannot tell)."""
        return self.get("/__first") or None

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class TlsReceiver(Receiver):
    """examples/bench_tls_receiver.rs: keyhook's own receiver over TLS, its certificate signed
    by a CA made at start-up and written to `ca_file`."""

    scheme = "https"

    def __init__(self, binary, ca_file):
        self.ca_file = ca_file
        super().__init__(None, cmd=[binary, ca_file])

    def connection(self):
        import ssl
        context = ssl.create_default_context(cafile=self.ca_file)
        return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=10, context=context)

    def first(self):
        return None


# --------------------------------------------------------------------------------------------
# Timing processes


def timed(cmd, timeout=600, env=None):
    """Whole-process wall time (s) of cmd, and its completed result."""
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    return time.perf_counter() - start, result


def children_of(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as file:
            return [int(p) for p in file.read().split()]
    except OSError:
        return []


def measured(cmd, gnu_time, cap_seconds, work, env=None):
    """Runs cmd with peak RSS measured; SIGTERMs it after cap_seconds (then SIGKILL).

    Returns dict: seconds, returncode, stdout, stderr, rss_kb, capped, started_ns (the
    CLOCK_MONOTONIC time it was started, as the receivers' `GET /__first` counts) and
    cpu_seconds (user + system time of the process and its children, from wait4())."""
    rss_file = os.path.join(work, "time-v.txt")
    full = [gnu_time, "-v", "-o", rss_file] + cmd if gnu_time else cmd
    out_path, err_path = os.path.join(work, "cmd.out"), os.path.join(work, "cmd.err")
    with open(out_path, "w") as out, open(err_path, "w") as err:
        started_ns = time.monotonic_ns()
        start = time.perf_counter()
        process = subprocess.Popen(full, stdout=out, stderr=err, env=env)
        capped = False
        rusage = None
        deadline = start + cap_seconds
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                rusage = usage
                break
            now = time.perf_counter()
            if now >= deadline and not capped:
                capped = True
                targets = children_of(process.pid) if gnu_time else [process.pid]
                for target in targets or [process.pid]:
                    try:
                        os.kill(target, signal.SIGTERM)
                    except ProcessLookupError:
                        pass
                deadline = now + 15
            elif now >= deadline and capped:
                for target in children_of(process.pid) + [process.pid]:
                    try:
                        os.kill(target, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                deadline = now + 3600
            time.sleep(0.005)
        seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    rss_kb = None
    returncode = process.returncode
    if gnu_time:
        try:
            with open(rss_file) as file:
                text = file.read()
            found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
            rss_kb = int(found.group(1)) if found else None
            exit_found = re.search(r"Exit status: (\d+)", text)
            signal_found = re.search(r"Command terminated by signal (\d+)", text)
            if exit_found:
                returncode = int(exit_found.group(1))
            elif signal_found:
                returncode = 128 + int(signal_found.group(1))
        except OSError:
            pass
    else:
        rss_kb = rusage.ru_maxrss if rusage else None
    with open(out_path) as file:
        stdout = file.read()
    with open(err_path) as file:
        stderr = file.read()
    cpu = rusage.ru_utime + rusage.ru_stime if rusage else None
    return {"seconds": seconds, "returncode": returncode, "stdout": stdout, "stderr": stderr,
            "rss_kb": rss_kb, "capped": capped, "started_ns": started_ns, "cpu_seconds": cpu}


def machine_busy_seconds():
    """CPU seconds the whole machine has spent busy (all CPUs), from /proc/stat."""
    try:
        with open("/proc/stat") as file:
            fields = [int(x) for x in file.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal ...: user + nice + system only (interrupt
    # time is mostly this benchmark's own loopback traffic, and steal is the hypervisor's).
    busy = sum(fields[:3])
    return busy / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds():
    import resource
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def repeat(runs, budget_seconds, once):
    """Calls once() up to `runs` times, but stops repeating when the next run would take the
    measurement past `budget_seconds` (at least one run always happens)."""
    results, spent = [], 0.0
    for _ in range(runs):
        start = time.perf_counter()
        results.append(once())
        took = time.perf_counter() - start
        spent += took
        if spent + took > budget_seconds:
            break
        if isinstance(results[-1], dict) and results[-1].get("error"):
            break  # a failing command fails the same way again
    return results


# --------------------------------------------------------------------------------------------
# keyhook


class Keyhook:
    def __init__(self, binary, config):
        self.binary = binary
        self.config = config

    def cmd(self, *args, db=None, state=None, config=None):
        base = [self.binary, "--config", config or self.config, "--now", NOW,
                "--timezone", TIMEZONE]
        if db:
            base += ["--db", db]
        if state:
            base += ["--state", state]
        return base + list(args)

    def has_command(self, name):
        result = subprocess.run([self.binary, name, "--help"], capture_output=True, text=True)
        return result.returncode == 0

    def has_flag(self, command, flag):
        result = subprocess.run([self.binary, command, "--help"], capture_output=True, text=True)
        return result.returncode == 0 and flag in result.stdout

    def count(self, search, db):
        result = run(self.cmd("dry-run", search, "--count", db=db))
        return int(result.stdout.strip().splitlines()[-1])


def write_config(config, receiver_url, slow_url, forty_sql, concurrency_matches,
                 split_url=None, tls=None):
    """The searches and tasks; `tls` is (url, ca_file) of the HTTPS receiver."""
    os.makedirs(os.path.join(config, "searches"), exist_ok=True)
    os.makedirs(os.path.join(config, "tasks"), exist_ok=True)
    searches = {
        "window30": ("Bench 30-Day Window", WINDOW_SQL),
        "forty": ("Bench Forty Percent", forty_sql),
        "firstn": ("Bench First N", f"ID <= {concurrency_matches}"),
    }
    for stem, (name, sql) in searches.items():
        with open(os.path.join(config, "searches", f"{stem}.toml"), "w") as file:
            file.write(f'name = "{name}"\nsql = "{sql}"\n')
    tasks = {
        "deliver": ("forty", receiver_url, TASK_NAME, None),
        "slow": ("firstn", slow_url, "Bench Slow Receiver", None),
    }
    if split_url:
        tasks["deliver_split"] = ("forty", split_url, "Bench Split Answers", None)
    if tls:
        tasks["deliver_tls"] = ("forty", tls[0], "Bench HTTPS", tls[1])
    for stem, (search, url, name, ca_file) in tasks.items():
        with open(os.path.join(config, "tasks", f"{stem}.toml"), "w") as file:
            file.write(
                f'name = "{name}"\nsearch = "{search}"\nschedule = "every 1 day"\n'
                f'at = "08:00"\n\n[webhook]\nurl = "{url}"\nsecret = "{SECRET}"\n'
                f'user_data = "{USER_DATA}"\ntimeout = "30s"\n'
                + (f'ca_file = "{ca_file}"\n' if ca_file else "")
            )


def long_timeout_config(config, work):
    """A copy of the config folder whose keyhook.toml allows a 10-minute search."""
    long = os.path.join(work, "config-long-timeout")
    if not os.path.exists(long):
        shutil.copytree(config, long)
        with open(os.path.join(long, "keyhook.toml"), "w") as file:
            file.write('query_timeout = "10m"\n')
    return long


def deadline_error(result):
    return any("deadline" in error for error in result["errors"])


def choose_forty(db, target_fraction=0.40):
    """`SubscriptionExpiryDate > [today_start+K]` with K (days) chosen so that it matches
    closest to 40% of the licenses of `db` (the demo data scales, so one K fits all sizes)."""
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    total = connection.execute("SELECT count(*) FROM LicenseKeys").fetchone()[0]

    def count(days):
        bound = (TODAY_START + dt.timedelta(days=days)).strftime(DATE_FORMAT)
        return connection.execute(
            "SELECT count(*) FROM LicenseKeys WHERE SubscriptionExpiryDate > ?", (bound,)
        ).fetchone()[0]

    want = target_fraction * total
    low, high = -800, 800  # count(days) falls as days grows
    while high - low > 1:
        middle = (low + high) // 2
        if count(middle) >= want:
            low = middle
        else:
            high = middle
    days = min((low, high), key=lambda d: abs(count(d) - want))
    connection.close()
    if days == 0:
        placeholder = "[today_start]"
    else:
        placeholder = f"[today_start{'+' if days > 0 else '-'}{abs(days)}]"
    bound = (TODAY_START + dt.timedelta(days=days)).strftime(DATE_FORMAT)
    return f"SubscriptionExpiryDate > {placeholder}", "SubscriptionExpiryDate > ?", [bound]


# --------------------------------------------------------------------------------------------
# The measurements


def generate_databases(keyhook, sizes, data_dir, reuse):
    dbs, gen = {}, {}
    for n in sizes:
        path = os.path.join(data_dir, f"licenses-{size_label(n)}.db")
        if reuse and os.path.exists(path):
            dbs[n], gen[n] = path, None
            log(f"reusing {path}")
            continue
        log(f"generating {size_label(n)} licenses: keyhook db demo --licenses {n}")
        seconds, result = timed([keyhook.binary, "db", "demo", "--licenses", str(n), "--force",
                                 "--db", path, "--now", NOW, "--timezone", TIMEZONE],
                                timeout=1800)
        if result.returncode != 0:
            sys.exit(f"bench: db demo failed: {result.stderr}")
        dbs[n], gen[n] = path, seconds
        log(f"  {seconds:.1f} s, {os.path.getsize(path) / 1e6:.0f} MB")
    return dbs, gen


def resched_ipis():
    """The machine's rescheduling IPIs so far (the `RES` row of `/proc/interrupts`, every CPU),
    or None where there is no such row. One is sent when a thread wakes another on a different
    CPU that is running something: on a virtual machine each costs the sender a VM exit."""
    try:
        with open("/proc/interrupts") as file:
            for line in file:
                fields = line.split()
                if fields and fields[0] == "RES:":
                    return sum(int(field) for field in fields[1:] if field.isdigit())
    except OSError:
        pass
    return None


def per(count_after, count_before, n):
    """(after - before) / n, or None when either count is unknown or n is 0."""
    if count_after is None or count_before is None or not n:
        return None
    return (count_after - count_before) / n


def measure_floor(floor_bin, receiver, requests, runs, split=False, cpus=None, connections=1):
    """The floor client's rate, and its CPU (user + system, from wait4()) per request: one
    `write` and one `read` per round trip, so mostly the kernel's side of the loopback. With
    `cpus`, the client runs on those CPUs only (bench/ipis.py's diagnosis); with
    `connections`, that many threads share the requests, each over its own connection."""
    rates, cpus_used, ipis = [], [], []
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    for _ in range(runs):
        cmd = [floor_bin, "--port", str(receiver.port), "--requests", str(requests),
               "--body-bytes", "900", "--split", "1" if split else "0",
               "--connections", str(connections)]
        ipis_before = resched_ipis()
        process = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, preexec_fn=pin)
        stdout = process.stdout.read()
        process.stdout.close()
        _, status, usage = os.wait4(process.pid, 0)
        ipis.append(per(resched_ipis(), ipis_before, requests))
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise subprocess.CalledProcessError(process.returncode, cmd, stdout)
        rates.append(float(stdout.split("RPS")[1]))
        cpus_used.append((usage.ru_utime + usage.ru_stime) / requests * 1e6)
    return {"requests": requests, "runs": len(rates), "rps_each": rates, "rps": median(rates),
            "cpu_us_per_request": median(cpus_used),
            "ipis_per_request": median([i for i in ipis if i is not None])}


def verify_payloads(keyhook, db, where, params, work):
    """Checks the reference signs the same bodies as keyhook: every match of the smallest
    database, compared as sets (keyhook reads a SQLite table in rowid order, the reference in
    whatever order SQLite's plan gives)."""
    try:
        shown = run(keyhook.cmd("dry-run", "deliver", "--payloads", db=db)).stdout
        theirs = re.findall(r"X-QLM-Signature: ([0-9a-f]{64})", shown)
        ours_out = run([sys.executable, os.path.join(BENCH_DIR, "reference.py"), "--db", db,
                        "--where", where, *sum((["--param", p] for p in params), []),
                        "--url", "http://127.0.0.1:9/", "--secret", SECRET, "--name", TASK_NAME,
                        "--user-data", USER_DATA, "--dump", "1000000000"]).stdout
        ours = [json.loads(line)["signature"] for line in ours_out.splitlines() if line]
    except subprocess.CalledProcessError as error:
        return f"could not compare: {error.stderr.strip()[:200]}"
    if not theirs:
        return "could not compare: no signatures in `dry-run --payloads`"
    if sorted(theirs) == sorted(ours):
        return f"identical ({len(ours)} bodies and signatures)"
    return f"DIFFERENT: {len(set(theirs) & set(ours))} of {len(theirs)} signatures match"


def measure_dry_run(keyhook, db, runs):
    k_times, s_times, counts = [], [], set()
    sql = f"SELECT count(*) FROM LicenseKeys WHERE {WINDOW_LITERAL}"
    for _ in range(runs):
        seconds, result = timed(keyhook.cmd("dry-run", "window30", "--count", db=db))
        if result.returncode != 0:
            return {"error": result.stderr.strip()[:300]}
        k_times.append(seconds)
        counts.add(("keyhook", result.stdout.strip().splitlines()[-1]))
        seconds, result = timed(["sqlite3", db, sql])
        s_times.append(seconds)
        counts.add(("sqlite3", result.stdout.strip()))
    keyhook_count = {v for k, v in counts if k == "keyhook"}
    sqlite_count = {v for k, v in counts if k == "sqlite3"}
    return {
        "runs": runs,
        "keyhook_ms": median(k_times) * 1000,
        "sqlite3_ms": median(s_times) * 1000,
        "keyhook_ms_each": [round(t * 1000, 2) for t in k_times],
        "sqlite3_ms_each": [round(t * 1000, 2) for t in s_times],
        "ratio": median(k_times) / median(s_times),
        "count_keyhook": ",".join(sorted(keyhook_count)),
        "count_sqlite3": ",".join(sorted(sqlite_count)),
        "counts_agree": keyhook_count == sqlite_count,
    }


def measure_reference(db, where, params, receiver, runs, budget):
    def once():
        before = receiver.count()
        seconds, result = timed([sys.executable, os.path.join(BENCH_DIR, "reference.py"),
                                 "--db", db, "--where", where,
                                 *sum((["--param", p] for p in params), []),
                                 "--url", receiver.url, "--secret", SECRET, "--name", TASK_NAME,
                                 "--user-data", USER_DATA], timeout=1800)
        delivered = receiver.count() - before
        if result.returncode != 0:
            raise RuntimeError(f"reference failed: {result.stderr[-500:]}")
        return {"seconds": seconds, "delivered": delivered, "rps": delivered / seconds}

    results = repeat(runs, budget, once)
    return {
        "runs": len(results),
        "delivered": results[0]["delivered"],
        "rps_each": [round(r["rps"], 1) for r in results],
        "rps": median([r["rps"] for r in results]),
    }


def state_bytes(state):
    total = 0
    for suffix in ("", "-wal"):
        if os.path.exists(state + suffix):
            total += os.path.getsize(state + suffix)
    return total


def measure_run_task(keyhook, task, db, receiver, runs, budget, cap, gnu_time, work,
                     concurrency=None, config=None, env=None):
    samples = []

    def once():
        state = os.path.join(work, f"state-{task}-{len(samples)}.db")
        before = receiver.count()
        receiver.first()  # starts the receiver's "first request" clock over
        args = ["run-task", task, "--force", "--json"]
        if concurrency is not None:
            args += ["--concurrency", str(concurrency)]
        os.sync()  # the previous run's writes must not be flushed during this one
        ipis_before = resched_ipis()
        outcome = measured(keyhook.cmd(*args, db=db, state=state, config=config), gnu_time, cap,
                           work, env=env)
        ipis_after = resched_ipis()
        first_ns = receiver.first()
        delivered = receiver.count() - before
        summary = {}
        try:
            summary = json.loads(outcome["stdout"][outcome["stdout"].index("{"):])
        except (ValueError, json.JSONDecodeError):
            pass
        sample = {
            "seconds": outcome["seconds"],
            "delivered": delivered,
            "matched": summary.get("matched"),
            "keyhook_elapsed": summary.get("elapsed"),
            "rps": delivered / outcome["seconds"],
            "rss_kb": outcome["rss_kb"],
            "capped": outcome["capped"],
            "returncode": outcome["returncode"],
            "state_bytes": state_bytes(state),
            "cpu_seconds": outcome["cpu_seconds"],
            "ipis_per_delivery": per(ipis_after, ipis_before, delivered),
            # Process start to the first request's arrival: start-up, the search, building
            # every body and recording every pending delivery (all before the first POST).
            "record_seconds": ((first_ns - outcome["started_ns"]) / 1e9
                               if first_ns and delivered else None),
        }
        # The sending phase alone: from the first request's arrival to the process's end.
        if sample["record_seconds"] is not None and outcome["seconds"] > sample["record_seconds"]:
            sample["send_rps"] = delivered / (outcome["seconds"] - sample["record_seconds"])
        if outcome["returncode"] != 0 and not outcome["capped"]:
            sample["error"] = (outcome["stderr"] or outcome["stdout"]).strip()[-400:]
        samples.append(sample)
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(state + suffix):
                os.remove(state + suffix)
        shutil.rmtree(state + ".locks", ignore_errors=True)
        log(f"  run-task {task}{'' if concurrency is None else f' -c {concurrency}'}: "
            f"{delivered} delivered in {outcome['seconds']:.2f} s "
            f"({sample['rps']:.0f}/s), peak RSS {fmt((outcome['rss_kb'] or 0) / 1024)} MB"
            f"{', STOPPED at the cap' if outcome['capped'] else ''}"
            f"{', exit ' + str(outcome['returncode']) if outcome['returncode'] else ''}")
        return sample

    repeat(runs, budget, once)
    first = samples[0]
    rss = [s["rss_kb"] for s in samples if s["rss_kb"]]
    cpu = [s["cpu_seconds"] / s["delivered"] for s in samples
           if s["cpu_seconds"] is not None and s["delivered"]]
    record = [s["record_seconds"] / s["matched"] for s in samples
              if s["record_seconds"] is not None and s["matched"]]
    ipis = [s["ipis_per_delivery"] for s in samples if s["ipis_per_delivery"] is not None]
    return {
        "runs": len(samples),
        "settings": "defaults" if config is None else "query_timeout = \"10m\"",
        "matched": first["matched"],
        "delivered": first["delivered"],
        "capped": any(s["capped"] for s in samples),
        "errors": [s["error"] for s in samples if "error" in s],
        "seconds": median([s["seconds"] for s in samples]),
        "seconds_each": [round(s["seconds"], 3) for s in samples],
        "rps": median([s["rps"] for s in samples]),
        "rps_each": [round(s["rps"], 1) for s in samples],
        "received_each": [s["delivered"] for s in samples],
        "rss_mb": median(rss) / 1024 if rss else None,
        "rss_mb_max": max(rss) / 1024 if rss else None,
        "state_bytes": first["state_bytes"],
        "cpu_us_per_delivery": median(cpu) * 1e6 if cpu else None,
        "cpu_us_per_delivery_each": [round(c * 1e6, 1) for c in cpu],
        "record_seconds": median([s["record_seconds"] for s in samples
                                  if s["record_seconds"] is not None]),
        "record_us_per_match": median(record) * 1e6 if record else None,
        "record_us_per_match_each": [round(r * 1e6, 2) for r in record],
        "send_rps": median([s["send_rps"] for s in samples if "send_rps" in s]),
        "ipis_per_delivery": median(ipis),
        "ipis_per_delivery_each": [round(i, 3) for i in ipis],
        # Every match is recorded before the first POST, so this is per recorded delivery
        # (the same as per sent delivery when the run completed).
        "state_bytes_per_delivery": (first["state_bytes"] / (first["matched"] or first["delivered"])
                                     if (first["matched"] or first["delivered"]) else None),
    }


DEFAULT_TRANSPORT_ENV = "KEYHOOK_BENCH_DEFAULT_TRANSPORT"


def measure_answers(keyhook, c_bins, db, matches, receivers, runs, budget, cap, gnu_time, work):
    """(g) At one size: keyhook vs the floor against a receiver answering in one write and one
    answering in three; keyhook with ureq instead of its own plain-HTTP client against both (the A/B of
    src/delivery/plain.rs); keyhook over HTTPS. Each keyhook figure is taken right after
    the floor it is compared with."""
    out = {"matches": matches}
    requests = max(1000, min(matches, 40000))
    ab_env = dict(os.environ, **{DEFAULT_TRANSPORT_ENV: "1"})
    for mode, task in (("whole", "deliver"), ("split", "deliver_split")):
        receiver = receivers[mode]
        os.sync()
        floor = measure_floor(c_bins["floor"], receiver, requests, 3)
        log(f"(g) floor, answers {mode}: {floor['rps']:,.0f} req/s")
        custom = measure_run_task(keyhook, task, db, receiver, runs, budget, cap, gnu_time, work)
        default = measure_run_task(keyhook, task, db, receiver, runs, budget, cap, gnu_time, work,
                                   env=ab_env)
        out[mode] = {"floor": floor, "keyhook": custom, "keyhook_default_connector": default}
    tls = receivers.get("tls")
    if tls:
        log("(g) keyhook over HTTPS")
        out["https"] = measure_run_task(keyhook, "deliver_tls", db, tls, runs, budget, cap,
                                        gnu_time, work)
    return out


class BusyLoops:
    """A `nice -n 19` busy loop per core while it is open (when `on`): the CPUs never idle,
    so a loopback round trip does not wait for a sleeping virtual CPU to wake, and what is
    left to see is each side's own CPU cost."""

    def __init__(self, on):
        self.on, self.loops = on, []

    def __enter__(self):
        if self.on:
            self.loops = [subprocess.Popen(["nice", "-n", "19", "sh", "-c", "while :; do :; done"])
                          for _ in range(os.cpu_count() or 1)]
            time.sleep(0.3)
        return self

    def __exit__(self, *exc):
        for loop in self.loops:
            loop.kill()
        for loop in self.loops:
            loop.wait()
        return False


def load_average():
    with open("/proc/loadavg") as file:
        return float(file.read().split()[0])


REGIMES = ("idle", "awake")


def mean_known(a, b):
    """The mean of two figures, or None when either is unknown."""
    return None if a is None or b is None else (a + b) / 2


def measure_regimes(keyhook, c_bins, dbs, labels, results, receiver, gnu_time, work, cap, quick):
    """(h) The side by side of issue 15, per size and regime: the floor right before and right
    after keyhook, with the busy loops (awake) running for the whole pair or not (idle)."""
    out = {}
    for n, db in dbs.items():
        label = labels[n]
        matches = results["databases"][size_label(n)]["forty_matches"]
        runs = 1 if n >= 1_000_000 or quick else 3
        out[label] = {}
        for regime in REGIMES:
            log(f"(h) ~{label} matches, CPUs {regime}")
            with BusyLoops(regime == "awake"):
                load_before = load_average()
                requests = max(1000, min(matches, 40000))
                before = measure_floor(c_bins["floor"], receiver, requests, 3)
                run = measure_run_task(keyhook, "deliver", db, receiver, runs, 240, cap,
                                       gnu_time, work)
                if deadline_error(run) and run["delivered"] == 0:
                    # As in (b): the search hit the default 5 s deadline on a slow minute.
                    log("  the search hit its deadline: again with query_timeout = 10m")
                    results["notes"].append(
                        f"(h) ~{label}, CPUs {regime}: the search hit the default "
                        f"`query_timeout` (5 s); measured again with `query_timeout = \"10m\"`.")
                    run = measure_run_task(keyhook, "deliver", db, receiver, runs, 240, cap,
                                           gnu_time, work,
                                           config=long_timeout_config(keyhook.config, work))
                after = measure_floor(c_bins["floor"], receiver, requests, 3)
                load_after = load_average()
            floor = (before["rps"] + after["rps"]) / 2
            out[label][regime] = {
                "keyhook_rps": run["rps"],
                "keyhook_rps_each": run["rps_each"],
                "send_rps": run["send_rps"],
                "floor_rps": floor,
                "floor_rps_before": before["rps"],
                "floor_rps_after": after["rps"],
                "ratio": run["rps"] / floor,
                "cpu_us_per_delivery": run["cpu_us_per_delivery"],
                "cpu_us_per_delivery_each": run["cpu_us_per_delivery_each"],
                "floor_cpu_us_per_request": (before["cpu_us_per_request"]
                                             + after["cpu_us_per_request"]) / 2,
                "record_us_per_match": run["record_us_per_match"],
                "ipis_per_delivery": run["ipis_per_delivery"],
                "floor_ipis_per_request": mean_known(before["ipis_per_request"],
                                                     after["ipis_per_request"]),
                "delivered": run["delivered"],
                "matched": run["matched"],
                "runs": run["runs"],
                "load_before": load_before,
                "load_after": load_after,
            }
            r = out[label][regime]
            log(f"  keyhook {r['keyhook_rps']:,.0f}/s, floor {floor:,.0f}/s: {r['ratio']:.2f} x; "
                f"CPU {fmt(r['cpu_us_per_delivery'], 1)} us/delivery; rescheduling IPIs "
                f"{fmt(r['ipis_per_delivery'], 2)} per delivery (floor "
                f"{fmt(r['floor_ipis_per_request'], 2)}); "
                f"load {load_before:.2f} -> {load_after:.2f}")
    return out


def measure_fast_concurrency(keyhook, floor_bin, db, receiver, gnu_time, work, cap, quick):
    """(i) --concurrency 16 vs 1 against the receiver that answers at once, per regime; beside
    it, the floor client over 1 and over 16 connections in the same minutes: how much 16
    connections can gain on this machine's CPUs for a sender that does nothing else."""
    out = {}
    runs = 2 if quick else 3
    for regime in REGIMES:
        with BusyLoops(regime == "awake"):
            load = load_average()
            c1 = measure_run_task(keyhook, "deliver", db, receiver, runs, 120, cap, gnu_time,
                                  work, concurrency=1)
            c16 = measure_run_task(keyhook, "deliver", db, receiver, runs, 120, cap, gnu_time,
                                   work, concurrency=16)
            requests = c1["delivered"] or 40_000
            floor1 = measure_floor(floor_bin, receiver, requests, runs)
            floor16 = measure_floor(floor_bin, receiver, requests, runs, connections=16)
        out[regime] = {
            "delivered": c1["delivered"],
            "c1_rps": c1["rps"], "c16_rps": c16["rps"],
            "c1_cpu_us": c1["cpu_us_per_delivery"], "c16_cpu_us": c16["cpu_us_per_delivery"],
            "c16_received_each": c16["received_each"], "matched": c16["matched"],
            "speedup": c16["rps"] / c1["rps"], "load": load,
            "floor_c1_rps": floor1["rps"], "floor_c16_rps": floor16["rps"],
            "floor_speedup": floor16["rps"] / floor1["rps"],
            "floor_c16_cpu_us": floor16["cpu_us_per_request"],
        }
        log(f"(i) CPUs {regime}: -c 1 {c1['rps']:,.0f}/s, -c 16 {c16['rps']:,.0f}/s: "
            f"{out[regime]['speedup']:.2f} x; floor client 1 / 16 connections "
            f"{floor1['rps']:,.0f} / {floor16['rps']:,.0f} req/s: "
            f"{out[regime]['floor_speedup']:.2f} x")
    return out


def measure_run_due(keyhook, db, receiver_url, receiver, work, runs):
    if not keyhook.has_command("run-due"):
        return {"available": False, "note": "`run-due` is not a command of this build"}
    config = os.path.join(work, "config-run-due")
    os.makedirs(os.path.join(config, "searches"), exist_ok=True)
    os.makedirs(os.path.join(config, "tasks"), exist_ok=True)
    with open(os.path.join(config, "searches", "window30.toml"), "w") as file:
        file.write(f'name = "Bench 30-Day Window"\nsql = "{WINDOW_SQL}"\n')
    for index in range(100):
        with open(os.path.join(config, "tasks", f"task{index:03d}.toml"), "w") as file:
            file.write(
                f'name = "Bench Task {index:03d}"\nsearch = "window30"\n'
                f'schedule = "0 0 1 1 *"\n\n[webhook]\nurl = "{receiver_url}"\n'
                f'secret = "{SECRET}"\nuser_data = "{USER_DATA}"\n'
            )
    state = os.path.join(work, "state-run-due.db")
    cmd = keyhook.cmd("run-due", db=db, state=state, config=config)
    before = receiver.count()
    try:
        first_seconds, first = timed(cmd, timeout=120)
    except subprocess.TimeoutExpired:
        return {"available": True, "error": "the first run-due (recording first-seen) took > 120 s"}
    if first.returncode != 0:
        return {"available": True, "error": (first.stderr or first.stdout).strip()[-400:]}
    times, outputs = [], set()
    for _ in range(runs):
        seconds, result = timed(cmd, timeout=60)
        if result.returncode != 0:
            return {"available": True, "error": (result.stderr or result.stdout).strip()[-400:]}
        times.append(seconds)
        outputs.add(result.stdout.strip())
    # The cost of starting any process, for scale.
    spawn = [timed(["/bin/true"])[0] for _ in range(runs)]
    return {
        "available": True,
        "tasks": 100,
        "runs": len(times),
        "first_call_ms": first_seconds * 1000,
        "ms": median(times) * 1000,
        "ms_each": [round(t * 1000, 2) for t in times],
        "spawn_true_ms": median(spawn) * 1000,
        "sent_anything": receiver.count() != before,
        "printed_anything": any(outputs),
    }


# --------------------------------------------------------------------------------------------
# Targets and output


def verdict(ok):
    return "met" if ok else "NOT met"


def sending(run, floor):
    """The sending phase's rate and ratio, as words for a target's "measured" cell."""
    if not run.get("send_rps"):
        return ""
    return (f"; sending phase alone (after the record phase): {run['send_rps']:,.0f}/s = "
            f"{run['send_rps'] / floor['rps']:.3f} x")


def record_ceiling(r):
    """The best ratio to the floor a run can reach with this record phase: every match is
    recorded before the first POST, so even sending at exactly the floor's pace takes
    N x (record phase + the floor's round trip)."""
    if r.get("record_us_per_match") is None or not r.get("floor_rps"):
        return None
    return 1 / (1 + r["record_us_per_match"] * r["floor_rps"] / 1e6)


def phases(r):
    """The sending phase's ratio and the record phase's ceiling, as words for a target."""
    words = []
    if r.get("send_rps"):
        words.append(f"sending phase {r['send_rps'] / r['floor_rps']:.2f} x")
    ceiling = record_ceiling(r)
    if ceiling is not None:
        words.append(f"ceiling set by the record phase {ceiling:.2f} x")
    return f"; {', '.join(words)}" if words else ""


def floor_scaling(fast):
    """What 16 connections gain for the floor client in (i), as text ("" for older results)."""
    if "floor_speedup" not in fast.get("idle", {}):
        return ""
    idle, awake = fast["idle"], fast.get("awake", {})
    awake_text = f", awake {awake['floor_speedup']:.2f} x" if "floor_speedup" in awake else ""
    return f"; the floor client's own 16 vs 1 connections: idle {idle['floor_speedup']:.2f} x{awake_text}"


def evaluate_regimes(results, quick):
    """Issue 15's targets, from (h) and (i)."""
    targets = []
    size = "4k" if quick else "40k"
    main = results.get("regimes", {}).get(size)
    if main:
        awake, idle = main["awake"], main["idle"]
        targets.append({
            "target": f"CPUs kept awake: run-task >= {AWAKE_FLOOR_RATIO} x floor (~{size})",
            "measured": f"{awake['keyhook_rps']:,.0f}/s vs {awake['floor_rps']:,.0f}/s: "
                        f"{awake['ratio']:.2f} x (load {awake['load_before']:.1f})"
                        + phases(awake),
            "status": verdict(awake["ratio"] >= AWAKE_FLOOR_RATIO),
        })
        cpu = awake["cpu_us_per_delivery"]
        targets.append({
            "target": f"CPUs kept awake: <= {CPU_US_PER_DELIVERY:g} us CPU per delivery (~{size})",
            "measured": f"{fmt(cpu, 1, ' us')} (idle: {fmt(idle['cpu_us_per_delivery'], 1, ' us')}); "
                        f"the floor client in the same minutes: "
                        f"{fmt(awake.get('floor_cpu_us_per_request'), 1, ' us')} per request",
            "status": verdict(cpu is not None and cpu <= CPU_US_PER_DELIVERY),
        })
        record = awake["record_us_per_match"]
        targets.append({
            "target": f"record phase <= {RECORD_US_PER_MATCH:g} us per match (~{size}, awake)",
            "measured": fmt(record, 1, " us"),
            "status": verdict(record is not None and record <= RECORD_US_PER_MATCH),
        })
        targets.append({
            "target": f"CPUs idle: run-task >= {IDLE_FLOOR_RATIO} x floor (~{size})",
            "measured": f"{idle['keyhook_rps']:,.0f}/s vs {idle['floor_rps']:,.0f}/s: "
                        f"{idle['ratio']:.2f} x (load {idle['load_before']:.1f})"
                        + phases(idle),
            "status": verdict(idle["ratio"] >= IDLE_FLOOR_RATIO),
        })
    fast = results.get("fast_concurrency", {}).get("idle")
    if fast:
        targets.append({
            "target": f"--concurrency 16 >= {FAST_CONCURRENCY_SPEEDUP} x sequential, receiver "
                      "answering at once",
            "measured": f"{fast['c16_rps']:,.0f}/s vs {fast['c1_rps']:,.0f}/s: "
                        f"{fast['speedup']:.3f} x (CPUs idle; awake: "
                        f"{results['fast_concurrency']['awake']['speedup']:.3f} x)"
                        + floor_scaling(results["fast_concurrency"]),
            "status": verdict(fast["speedup"] >= FAST_CONCURRENCY_SPEEDUP),
        })
    return targets


def evaluate(results, quick):
    targets = []
    rt, ref = results["run_task"], results["reference"]
    size = "4k" if quick else "40k"
    floor = results["floor_at"].get(size)
    main = rt.get(size)
    if main and ref.get(size) and floor:
        vs_floor = main["rps"] / floor["rps"]
        vs_ref = main["rps"] / ref[size]["rps"]
        targets.append({
            "target": f"run-task sequential deliveries/s >= {FLOOR_RATIO} x floor "
                      f"(~{size} matches, durable log on)",
            "measured": f"{main['rps']:,.0f}/s = {vs_floor:.3f} x floor ({floor['rps']:,.0f}/s)"
                        + sending(main, floor),
            "status": verdict(vs_floor >= FLOOR_RATIO),
        })
        # Where the floor is a sequential sender's ceiling (the CPUs awake, or a fast
        # loopback), four times the reference can lie above it: say how far, when missed.
        wanted = REFERENCE_RATIO * ref[size]["rps"]
        reach = ("" if wanted <= floor["rps"] or main["rps"] >= wanted else
                 f"; {REFERENCE_RATIO:g} x reference = {wanted:,.0f}/s = "
                 f"{wanted / floor['rps']:.2f} x the floor")
        targets.append({
            "target": f"run-task sequential deliveries/s >= {REFERENCE_RATIO:g} x Python "
                      f"reference (~{size} matches)",
            "measured": f"{vs_ref:.2f} x reference ({ref[size]['rps']:,.0f}/s){reach}",
            "status": verdict(vs_ref >= REFERENCE_RATIO),
        })
    answers = results.get("answers", {})
    split = answers.get("split")
    if split:
        ratio = split["keyhook"]["rps"] / split["floor"]["rps"]
        targets.append({
            "target": f"run-task sequential deliveries/s >= {SPLIT_FLOOR_RATIO} x floor, receiver "
                      f"answering in three writes (~{size} matches, durable log on)",
            "measured": f"{split['keyhook']['rps']:,.0f}/s = {ratio:.3f} x floor "
                        f"({split['floor']['rps']:,.0f}/s)" + sending(split['keyhook'],
                                                                     split['floor']),
            "status": verdict(ratio >= SPLIT_FLOOR_RATIO),
        })
    record = main.get("record_us_per_match") if main else None
    if record is not None:
        each = ", ".join(f"{label}: {r['record_us_per_match']:.1f}"
                         for label, r in rt.items() if r.get("record_us_per_match") is not None)
        targets.append({
            "target": f"record phase (start-up, search, bodies, pending rows: process start to "
                      f"the first request) <= {RECORD_US_PER_MATCH:g} us per match (~{size})",
            "measured": f"{record:.1f} us per match ({each})",
            "status": verdict(record <= RECORD_US_PER_MATCH),
        })
    dry = results["dry_run"]
    big = max(dry, key=lambda k: int(k.replace("M", "000000").replace("k", "000")))
    if dry.get(big) and "ratio" in dry[big]:
        ok = dry[big]["ratio"] <= DRY_RUN_RATIO
        note = "" if big == "1M" else f" (on {big}: quick mode has no 1M database)"
        status = verdict(ok)
        if big != "1M":
            # On a small database both take a few milliseconds: process start-up decides.
            status = f"n/a (for information: {status} on {big})"
        targets.append({
            "target": f"dry-run --count on 1M <= {DRY_RUN_RATIO} x sqlite3 shell{note}",
            "measured": f"{dry[big]['keyhook_ms']:.1f} ms vs {dry[big]['sqlite3_ms']:.1f} ms "
                        f"= {dry[big]['ratio']:.2f} x",
            "status": status,
        })
    small, large = rt.get("4k"), rt.get("400k")
    if large and large["delivered"] == 0 and large["errors"]:
        targets.append({
            "target": f"run-task peak RSS at 400k <= {RSS_GROWTH} x at 4k, and < {RSS_LIMIT_MB:g} MB",
            "measured": "run-task failed at 400k: " + large["errors"][0].splitlines()[-1][:200],
            "status": "NOT met",
        })
    elif small and large and small["rss_mb"] and large["rss_mb"]:
        growth = large["rss_mb"] / small["rss_mb"]
        ok = growth <= RSS_GROWTH and large["rss_mb"] < RSS_LIMIT_MB
        partial = large["capped"]
        status = verdict(ok)
        if partial and ok:
            status = ("inconclusive (the 400k run was stopped at the time cap, after recording "
                      "every match; RSS within the target so far)")
        targets.append({
            "target": f"run-task peak RSS at 400k <= {RSS_GROWTH} x at 4k, and < {RSS_LIMIT_MB:g} MB",
            "measured": f"{large['rss_mb']:.1f} MB vs {small['rss_mb']:.1f} MB = {growth:.2f} x"
                        + (f" (400k run stopped at the cap after recording "
                           f"{large['matched'] or 0:,} matches and sending "
                           f"{large['delivered']:,})" if partial else ""),
            "status": status,
        })
    else:
        targets.append({
            "target": f"run-task peak RSS at 400k <= {RSS_GROWTH} x at 4k, and < {RSS_LIMIT_MB:g} MB",
            "measured": "n/a (quick mode)" if quick else "n/a",
            "status": "n/a",
        })
    due = results["run_due"]
    if due.get("available") and "ms" in due:
        ok = due["ms"] < RUN_DUE_LIMIT_MS and not due["sent_anything"]
        targets.append({
            "target": f"run-due, 100 tasks, nothing due < {RUN_DUE_LIMIT_MS:g} ms",
            "measured": f"{due['ms']:.1f} ms (starting /bin/true: {due['spawn_true_ms']:.1f} ms)"
                        + ("; it SENT requests" if due["sent_anything"] else ""),
            "status": verdict(ok),
        })
    else:
        targets.append({
            "target": f"run-due, 100 tasks, nothing due < {RUN_DUE_LIMIT_MS:g} ms",
            "measured": "n/a: " + due.get("note", due.get("error", "")),
            "status": "n/a" if not due.get("available") else "error",
        })
    conc = results["concurrency"]
    if conc.get("available") and "speedup" in conc:
        exact = all(n == conc["deliveries"]
                    for r in (conc["c1"], conc["c16"]) for n in r["received_each"])
        ok = conc["speedup"] >= CONCURRENCY_SPEEDUP and exact
        extra = "" if exact else (
            f"; but the receiver got {conc['c16']['received_each']} POSTs at 16 (and "
            f"{conc['c1']['received_each']} at 1) for {conc['deliveries']:,} deliveries")
        targets.append({
            "target": f"--concurrency 16 >= {CONCURRENCY_SPEEDUP:g} x faster than 1 "
                      f"({conc['deliveries']:,} deliveries, {conc['delay_ms']} ms receiver)",
            "measured": f"{conc['c1']['seconds']:.2f} s vs {conc['c16']['seconds']:.2f} s "
                        f"= {conc['speedup']:.1f} x" + extra,
            "status": verdict(ok),
        })
    else:
        targets.append({
            "target": f"--concurrency 16 >= {CONCURRENCY_SPEEDUP:g} x faster than 1",
            "measured": "n/a: " + conc.get("note", conc.get("error", "")),
            "status": "n/a",
        })
    return targets


def record_cell(r):
    if r.get("record_us_per_match") is None:
        return "n/a"
    return f"{r['record_seconds']:.2f} s = {r['record_us_per_match']:.1f} us/match"


def answers_section(results, add):
    a = results.get("answers")
    if not a:
        return
    add(f"\n## (g) answers in one write vs three, ureq instead of keyhook's client, HTTPS "
        f"(~{a['matches']:,} matches, sequential, median)\n")
    add("The split receiver writes the status line, the header fields and the body in three "
        "calls on a TCP_NODELAY socket. \"ureq\" is the same keyhook binary with "
        f"`{DEFAULT_TRANSPORT_ENV}=1`, which makes src/delivery/plain.rs leave plain http:// "
        "to ureq, as https:// always is (benchmark only): the A/B of keyhook's own "
        "plain-HTTP client.\n")
    add("Rates are whole-process (record phase included); \"sending\" is the rate from the first "
        "request's arrival to the end of the process, the part the HTTP client affects.\n")
    add("| receiver | floor/s | keyhook/s | vs floor | sending/s | vs floor | CPU per delivery "
        "| keyhook with ureq/s | vs floor | sending/s | CPU per delivery "
        "| keyhook client / ureq (sending) |")
    add("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for mode, words in (("whole", "one write per answer"), ("split", "three writes per answer")):
        m = a.get(mode)
        if not m:
            continue
        f, k, d = m["floor"]["rps"], m["keyhook"], m["keyhook_default_connector"]
        ks, ds = k.get("send_rps"), d.get("send_rps")
        add(f"| {words} | {f:,.0f} | {k['rps']:,.0f} | {k['rps'] / f:.3f} x | {fmt(ks)} | "
            f"{fmt(ks / f if ks else None, 3, ' x')} | "
            f"{fmt(k.get('cpu_us_per_delivery'), 1, ' us')} | {d['rps']:,.0f} | "
            f"{d['rps'] / f:.3f} x | {fmt(ds)} | {fmt(d.get('cpu_us_per_delivery'), 1, ' us')} | "
            f"{fmt(ks / ds if ks and ds else None, 2, ' x')} |")
    h = a.get("https")
    if h:
        plain = a["whole"]["keyhook"]
        add(f"\nHTTPS (keyhook's own receiver over TLS, examples/bench_tls_receiver.rs, a "
            f"private CA trusted through `ca_file`, one keep-alive connection): "
            f"**{h['rps']:,.0f} deliveries/s**, CPU **{fmt(h.get('cpu_us_per_delivery'), 1, ' us')}"
            f"** per delivery (runs: {', '.join(f'{x:,.0f}' for x in h['rps_each'])}); plain "
            f"HTTP in the same minute: {plain['rps']:,.0f}/s, "
            f"{fmt(plain.get('cpu_us_per_delivery'), 1, ' us')} per delivery. The HTTPS receiver "
            f"is Rust (rustls) rather than C, so part of the gap is the receiver's.")
        for error in h["errors"]:
            add(f"\nHTTPS error: {error[:300]}")
    else:
        add("\nHTTPS: n/a (no HTTPS receiver).")


def regimes_section(results, add):
    regimes = results.get("regimes")
    if not regimes:
        return
    add("\n## (h) CPUs idle vs kept awake: keyhook vs the floor, side by side\n")
    add("`run-task deliver --force`, sequential, durable log on, whole process; the floor "
        "client measured right before and right after (their mean is the floor); *awake*: a "
        "`nice -n 19` busy loop per core for the whole trio. CPU is keyhook's user + system "
        "(`wait4`) per delivery, record phase included; the load average is `/proc/loadavg` "
        "before and after (the busy loops add about one per core). Rates move with the "
        "machine, and so does CPU per delivery: the kernel's side of each loopback round "
        "trip. The floor client's CPU per request (user + system, the mean of its runs before "
        "and after; one `write` and one `read` of a 900-byte request per round trip, as "
        "keyhook makes one `sendto` and one `recvfrom` of a ~1.3 KB one) shows that side in "
        "the same minutes; the difference is, roughly, keyhook's own work per delivery. The "
        "record phase moves much less. *Sending*: the rate from the first request's arrival "
        "to the end, over the floor. *Ceiling*: the ratio a run would reach if it sent at "
        "exactly the floor's pace after this record phase (every match is recorded before the "
        "first POST): 1 / (1 + record phase x floor rate). *IPIs*: the machine's rescheduling "
        "interrupts (`RES` in `/proc/interrupts`) during keyhook's run per delivery, and during "
        "the floor client's per request: a round trip whose two ends sit on different CPUs costs "
        "two, and on a virtual machine each costs its sender a VM exit (see bench/README.md, "
        "\"Rescheduling IPIs\"); near 0 means the sender and the receiver shared a CPU.\n")
    add("| matches | CPUs | keyhook/s | floor/s | ratio | sending | ceiling | CPU per delivery "
        "| floor client CPU per request | difference | record phase per match "
        "| IPIs (keyhook / floor) | load |")
    add("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, by_regime in regimes.items():
        for regime, r in by_regime.items():
            if r["matched"] is None or r["keyhook_rps"] is None:
                add(f"| ~{label} | {regime} | failed: see the notes | | | | | | | | | | |")
                continue
            floor_cpu = r.get("floor_cpu_us_per_request")
            own = (r["cpu_us_per_delivery"] - floor_cpu
                   if r["cpu_us_per_delivery"] is not None and floor_cpu is not None else None)
            send = r.get("send_rps") and r["send_rps"] / r["floor_rps"]
            add(f"| ~{label} ({r['matched']:,}) | {regime} | {r['keyhook_rps']:,.0f} | "
                f"{r['floor_rps']:,.0f} | {r['ratio']:.2f} x | {fmt(send, 2, ' x')} | "
                f"{fmt(record_ceiling(r), 2, ' x')} | "
                f"{fmt(r['cpu_us_per_delivery'], 1, ' us')} | {fmt(floor_cpu, 1, ' us')} | "
                f"{fmt(own, 1, ' us')} | {fmt(r['record_us_per_match'], 1, ' us')} | "
                f"{fmt(r.get('ipis_per_delivery'), 2)} / {fmt(r.get('floor_ipis_per_request'), 2)} | "
                f"{r['load_before']:.2f} -> {r['load_after']:.2f} |")
    fast = results.get("fast_concurrency")
    if fast:
        add("\n## (i) --concurrency 16 vs 1, receiver answering at once\n")
        add("| CPUs | deliveries | -c 1 /s | -c 16 /s | speedup | CPU per delivery (1 / 16) "
            "| floor client, 1 / 16 connections | its speedup | -c 16 / floor at 16 | load |")
        add("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for regime, r in fast.items():
            floors = ("n/a | n/a | n/a" if "floor_speedup" not in r else
                      f"{r['floor_c1_rps']:,.0f} / {r['floor_c16_rps']:,.0f} req/s | "
                      f"{r['floor_speedup']:.2f} x | {r['c16_rps'] / r['floor_c16_rps']:.2f} x")
            add(f"| {regime} | {r['delivered']:,} | {r['c1_rps']:,.0f} | {r['c16_rps']:,.0f} | "
                f"{r['speedup']:.2f} x | {fmt(r['c1_cpu_us'], 1)} / {fmt(r['c16_cpu_us'], 1)} us "
                f"| {floors} | {r['load']:.2f} |")
        add("\nThe floor client's own speedup from 16 connections is what this machine's CPUs "
            "allow a sender that does nothing else; keyhook's run also records every match "
            "before the first POST, in both of its runs.")


def floor_range(results):
    """The slowest and fastest floor measured anywhere in this run, as text."""
    rates = list(results["floor"]["rps_each"]) + list(results["floor_end"]["rps_each"])
    for floor in results.get("floor_at", {}).values():
        rates += floor["rps_each"]
    for by_regime in (results.get("regimes") or {}).values():
        for r in by_regime.values():
            rates += [r["floor_rps_before"], r["floor_rps_after"]]
    return f"{min(rates):,.0f} to {max(rates):,.0f} req/s"


def markdown(results):
    m, lines = results["machine"], []
    add = lines.append
    add(f"# keyhook benchmark ({'quick' if results['quick'] else 'full'})\n")
    add(f"- machine: {m['nproc']} cores, {m['cpu']}, {m['memory']}, Linux {m['kernel']}")
    add(f"- {m['rustc']}; {m['gcc']}; Python {m['python']}; sqlite3 shell {m['sqlite3_shell']}")
    add(f"- keyhook: {m['keyhook']} at `{m['keyhook_binary']}`"
        + (f", commit {m['keyhook_commit']}" if m.get("keyhook_commit") else ""))
    other = results.get("other_cpu")
    if other:
        add(f"- CPU used by other processes during the run: {other['seconds']:.0f} s "
            f"({other['share_of_machine']:.0%} of the machine)")
    add(f"- date {m['date']}; total benchmark time {results['total_seconds']:.0f} s; clock pinned "
        f"at {NOW} {TIMEZONE}; all traffic on 127.0.0.1")
    add(f"- payload check: Python reference vs `keyhook dry-run --payloads`: "
        f"{results['payload_check']}\n")

    add("## Targets\n")
    add("| target | measured | status |")
    add("| --- | --- | --- |")
    for t in results["targets"]:
        add(f"| {t['target']} | {t['measured']} | {t['status']} |")

    add("\n## Databases and searches\n")
    add(f"Delivery search: `{results['forty_search']}` (chosen for ~40% of the licenses); "
        f"30-day window: `{WINDOW_SQL}`.\n")
    add("| licenses | `db demo` time | file | 30-day window matches | delivery search matches |")
    add("| --- | --- | --- | --- | --- |")
    for label, d in results["databases"].items():
        add(f"| {label} | {fmt(d['generate_seconds'], 1, ' s') if d['generate_seconds'] is not None else 'reused'}"
            f" | {d['mb']:.0f} MB | {d['window_matches']:,} | {d['forty_matches']:,} |")

    if "dry_run" not in results:  # --regimes-only
        regimes_section(results, add)
        if results.get("notes"):
            add("\n## Notes\n")
            for note in results["notes"]:
                add(f"- {note}")
        return "\n".join(lines) + "\n"

    add("\n## (a) dry-run --count vs sqlite3 shell (whole process, median)\n")
    add("| licenses | matches | keyhook dry-run --count | sqlite3 shell | ratio |")
    add("| --- | --- | --- | --- | --- |")
    for label, d in results["dry_run"].items():
        if "error" in d:
            add(f"| {label} | error: {d['error']} | | | |")
            continue
        agree = "" if d["counts_agree"] else f" (sqlite3: {d['count_sqlite3']}!)"
        add(f"| {label} | {d['count_keyhook']}{agree} | {d['keyhook_ms']:.1f} ms | "
            f"{d['sqlite3_ms']:.1f} ms | {d['ratio']:.2f} x |")

    floor = results["floor"]
    add("\n## (b, c, f) run-task deliveries (sequential, whole process, median)\n")
    add(f"Receiver (C, thread per connection) measured with the floor client (C, one keep-alive "
        f"connection, 900-byte body, {floor['requests']:,} requests, median of {floor['runs']}): "
        f"**{floor['rps']:,.0f} req/s** (runs: {', '.join(f'{r:,.0f}' for r in floor['rps_each'])}); "
        f"again at the end of the benchmark: {results['floor_end']['rps']:,.0f} req/s. "
        f"This machine's loopback round trip is not steady (in this run the floor client "
        f"made {floor_range(results)} from one measurement to the next), so the floor is also "
        f"measured right before each size's reference and keyhook runs, and \"vs floor\" uses "
        f"that adjacent figure.")
    split = results.get("floor_split")
    if split:
        add(f"For scale, the same floor writing each request in two calls (headers, then body): "
            f"{split['rps']:,.0f} req/s.")
    add("")
    add("The Python reference (bench/reference.py) does the query, JSON, signing and keep-alive "
        "POSTs, but keeps NO durable log; keyhook also records every delivery and attempt in its "
        "state database, so it does more work per delivery.\n")
    add("| matches | runs | keyhook deliveries/s | adjacent floor/s | vs floor | Python reference/s | keyhook / reference "
        "| wall time | peak RSS | state bytes per recorded delivery | record phase | CPU per delivery |")
    add("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, r in results["run_task"].items():
        ref = results["reference"].get(label)
        near = results["floor_at"].get(label, floor)
        capped = " (stopped at cap)" if r["capped"] else ""
        if r.get("settings", "defaults") != "defaults":
            capped += f" [{r['settings']}]"
        of = "" if r["matched"] in (None, r["delivered"]) else f" of {r['matched']:,}"
        vs_ref = f"{r['rps'] / ref['rps']:.2f} x" if ref else "n/a"
        add(f"| {r['delivered']:,}{of}"
            f" | {r['runs']} | {r['rps']:,.0f}{capped} | {near['rps']:,.0f} | "
            f"{r['rps'] / near['rps']:.3f} x | "
            f"{fmt(ref['rps'] if ref else None)} | {vs_ref} | "
            f"{r['seconds']:.2f} s | {fmt(r['rss_mb'], 1, ' MB')} | "
            f"{fmt(r['state_bytes_per_delivery'], 0, ' B')} | {record_cell(r)} | "
            f"{fmt(r.get('cpu_us_per_delivery'), 1, ' us')} |")
        for error in r["errors"]:
            add(f"|  error: {error[:200]} | | | | | | | | | | | |")
    add("\nRecord phase: from starting the process to the receiver having the first request in "
        "full (the receiver's CLOCK_MONOTONIC time, `GET /__first`): start-up, the search, every "
        "body built and every pending delivery inserted (all of that happens before the first "
        "POST), per match. CPU per delivery: user + system time of the keyhook process "
        "(wait4()), whole run, divided by the deliveries.")
    answers_section(results, add)

    due = results["run_due"]
    add("\n## (d) run-due, 100 tasks, nothing due\n")
    if due.get("available") and "ms" in due:
        add(f"Median of {due['runs']}: **{due['ms']:.1f} ms** whole process (first call, recording "
            f"first-seen: {due['first_call_ms']:.1f} ms; starting `/bin/true`: "
            f"{due['spawn_true_ms']:.2f} ms). Sent anything: {due['sent_anything']}; printed "
            f"anything: {due['printed_anything']}.")
    else:
        add("n/a: " + due.get("note", due.get("error", "")))

    conc = results["concurrency"]
    add("\n## (e) concurrency against a 20 ms receiver\n")
    if conc.get("available") and "speedup" in conc:
        add(f"{conc['deliveries']:,} deliveries, receiver answering after {conc['delay_ms']} ms: "
            f"`--concurrency 1` {conc['c1']['seconds']:.2f} s ({conc['c1']['runs']} runs), "
            f"`--concurrency 16` {conc['c16']['seconds']:.2f} s ({conc['c16']['runs']} runs; "
            f"POSTs received per run: {conc['c16']['received_each']}): "
            f"**{conc['speedup']:.1f} x** (ideal 16 x; the delay alone is "
            f"{conc['deliveries'] * conc['delay_ms'] / 1000:.0f} s at 1 and "
            f"{conc['deliveries'] * conc['delay_ms'] / 16000:.1f} s at 16).")
    else:
        add("n/a: " + conc.get("note", conc.get("error", "")))
    regimes_section(results, add)
    if results.get("notes"):
        add("\n## Notes\n")
        for note in results["notes"]:
            add(f"- {note}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description="keyhook's benchmark (see bench/README.md)")
    parser.add_argument("--quick", action="store_true",
                        help="10k licenses only, fewer runs: a fast sanity check")
    parser.add_argument("--keyhook", default=os.environ.get("KEYHOOK_BIN"),
                        help="benchmark this binary instead of building the repository's "
                             "(env KEYHOOK_BIN)")
    parser.add_argument("--data-dir", help="keep the license databases here and reuse them "
                                           "on later runs (default: a temporary folder)")
    parser.add_argument("--out-dir", default=BENCH_DIR,
                        help="where results.json and results.md go (default: bench/)")
    parser.add_argument("--cap", type=float, default=180.0,
                        help="seconds one run-task may take before it is stopped (SIGTERM) and "
                             "measured as far as it got (default 180)")
    parser.add_argument("--big-cap", type=float, default=150.0,
                        help="the same cap for the ~400k run-task (default 150)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--tls-receiver", help="the HTTPS receiver binary (default: build "
                                               "examples/bench_tls_receiver.rs)")
    parser.add_argument("--regimes-only", action="store_true",
                        help="only (h) and (i): keyhook vs the floor with CPUs idle and kept "
                             "awake, and --concurrency 16 vs 1 against a fast receiver")
    parser.add_argument("--no-400k", action="store_true",
                        help="skip the 1M-license database (~400k matches; ~700 MB of disk)")
    args = parser.parse_args()

    started = time.perf_counter()
    busy_before, own_before = machine_busy_seconds(), own_cpu_seconds()
    quick = args.quick
    gnu_time = ensure_gnu_time()
    binary = build_keyhook(args)
    tls_binary = None if args.regimes_only else build_tls_receiver(args)
    work = tempfile.mkdtemp(prefix="keyhook-bench-")
    data_dir = os.path.abspath(args.data_dir) if args.data_dir else work
    os.makedirs(data_dir, exist_ok=True)
    log(f"working in {work}")
    receivers = []
    results = {"quick": quick, "notes": []}
    try:
        c_bins = compile_c(work)
        results["machine"] = machine_info(binary)
        config = os.path.join(work, "config")
        keyhook = Keyhook(binary, config)

        sizes = [10_000] if quick else [10_000, 100_000, 1_000_000]
        if args.no_400k and not quick:
            sizes = [10_000, 100_000]
            results["notes"].append("The ~400k case was skipped (--no-400k).")
        dbs, gen = generate_databases(keyhook, sizes, data_dir, reuse=bool(args.data_dir))
        log("sync (so writing the databases back does not disturb the measurements)")
        os.sync()

        receiver = Receiver(c_bins["receiver"])
        receivers.append(receiver)
        slow = Receiver(c_bins["receiver"], delay_ms=20)
        receivers.append(slow)
        split_receiver = Receiver(c_bins["receiver"], split=True)
        receivers.append(split_receiver)
        tls_receiver = None
        if tls_binary:
            try:
                tls_receiver = TlsReceiver(tls_binary, os.path.join(work, "bench-ca.pem"))
                receivers.append(tls_receiver)
            except (OSError, RuntimeError) as error:
                results["notes"].append(f"No HTTPS figure: the HTTPS receiver did not start "
                                        f"({error}).")

        forty_sql, forty_where, forty_params = choose_forty(dbs[sizes[-1] if quick else 100_000])
        results["forty_search"] = forty_sql
        conc_n = 500 if quick else 2000
        write_config(config, receiver.url, slow.url, forty_sql, conc_n, split_receiver.url,
                     (tls_receiver.url, tls_receiver.ca_file) if tls_receiver else None)

        results["databases"] = {}
        for n in sizes:
            results["databases"][size_label(n)] = {
                "licenses": n,
                "path": dbs[n],
                "mb": os.path.getsize(dbs[n]) / 1e6,
                "generate_seconds": gen[n],
                "window_matches": keyhook.count("window30", dbs[n]),
                "forty_matches": keyhook.count("forty", dbs[n]),
            }
        log("matches: " + ", ".join(
            f"{k}: window {v['window_matches']}, delivery search {v['forty_matches']}"
            for k, v in results["databases"].items()))
        results["payload_check"] = verify_payloads(keyhook, dbs[sizes[0]], forty_where,
                                                   forty_params, work)
        log(f"payload check: {results['payload_check']}")

        # The receiver, measured with the floor client first.
        floor_requests = 4000 if quick else 40000
        results["floor"] = measure_floor(c_bins["floor"], receiver, floor_requests,
                                         3 if quick else 5)
        log(f"floor: {results['floor']['rps']:,.0f} req/s")

        labels = {10_000: "4k", 100_000: "40k", 1_000_000: "400k"}
        if not args.regimes_only:
            # (a) dry-run --count vs the sqlite3 shell.
            results["dry_run"] = {}
            for n in sizes:
                results["dry_run"][size_label(n)] = measure_dry_run(keyhook, dbs[n], 3 if quick else 5)
                d = results["dry_run"][size_label(n)]
                if "ratio" in d:
                    log(f"dry-run {size_label(n)}: keyhook {d['keyhook_ms']:.1f} ms, "
                        f"sqlite3 {d['sqlite3_ms']:.1f} ms")

            # (b, c, f) run-task, next to the Python reference.
            labels = {10_000: "4k", 100_000: "40k", 1_000_000: "400k"}
            results["reference"] = {}
            results["run_task"] = {}
            plan = {  # runs, budget seconds (repeats stop when the next would exceed it)
                10_000: (2 if quick else 5, 60),
                100_000: (3, 150),
                1_000_000: (3, 240),
            }
            results["floor_at"] = {}
            for n in sizes:
                label = labels[n]
                runs, budget = plan[n]
                matches = results["databases"][size_label(n)]["forty_matches"]
                os.sync()
                results["floor_at"][label] = measure_floor(c_bins["floor"], receiver,
                                                           max(1000, min(matches, 40000)), 3)
                log(f"floor before ~{label}: {results['floor_at'][label]['rps']:,.0f} req/s")
                if label == ("4k" if quick else "40k"):
                    # For scale: the same floor, headers and body written in two calls.
                    results["floor_split"] = measure_floor(c_bins["floor"], receiver,
                                                           max(1000, min(matches, 40000)), 3,
                                                           split=True)
                    log(f"floor, two writes per request: {results['floor_split']['rps']:,.0f} req/s")
                if n <= 100_000:
                    log(f"Python reference, ~{label} matches")
                    results["reference"][label] = measure_reference(
                        dbs[n], forty_where, forty_params, receiver, runs, budget)
                    log(f"  reference: {results['reference'][label]['rps']:,.0f}/s")
                log(f"keyhook run-task, ~{label} matches")
                cap = args.cap if n < 1_000_000 else args.big_cap
                measured_task = measure_run_task(
                    keyhook, "deliver", dbs[n], receiver, runs, budget, cap, gnu_time, work)
                if deadline_error(measured_task) and measured_task["delivered"] == 0:
                    error = measured_task["errors"][0]
                    results["notes"].append(
                        f"With default settings, `run-task` at ~{label} matches FAILS (exit 3): "
                        f"{error.splitlines()[-1].rstrip('.')}. It was measured again with "
                        f"`query_timeout = \"10m\"` in keyhook.toml.")
                    log("  the search hit its deadline: again with query_timeout = 10m")
                    measured_task = measure_run_task(
                        keyhook, "deliver", dbs[n], receiver, 1 if n >= 1_000_000 else runs, budget,
                        cap, gnu_time, work, config=long_timeout_config(config, work))
                    measured_task["default_settings_error"] = error
                results["run_task"][label] = measured_task
            if not quick:
                results["notes"].append("The Python reference is not run at 400k (it would take "
                                        "minutes and its rate does not depend on the size).")
            for label, r in results["run_task"].items():
                wrong = [n for n in r["received_each"] if r["matched"] is not None and n != r["matched"]]
                if wrong and not r["capped"]:
                    results["notes"].append(
                        f"CORRECTNESS: run-task at ~{label} matched {r['matched']:,} licenses but the "
                        f"receiver answered {r['received_each']} POSTs.")
            if any(r["capped"] for r in results["run_task"].values()):
                results["notes"].append(
                    f"A run-task that reached its time cap (--cap {args.cap:g} s, --big-cap "
                    f"{args.big_cap:g} s at 400k) was stopped with SIGTERM; its "
                    "rate is deliveries received / time until it exited, and its peak RSS is the "
                    "peak so far.")

            # (g) answers in one write vs three, the transport A/B, HTTPS.
            main_n = sizes[0] if quick else 100_000
            results["answers"] = measure_answers(
                keyhook, c_bins, dbs[main_n], results["databases"][size_label(main_n)]["forty_matches"],
                {"whole": receiver, "split": split_receiver, "tls": tls_receiver},
                2 if quick else 3, 150, args.cap, gnu_time, work)

            # (e) concurrency.
            if keyhook.has_flag("run-task", "--concurrency"):
                db = dbs[sizes[0]]
                expected = keyhook.count("firstn", db)
                c1 = measure_run_task(keyhook, "slow", db, slow, 1 if quick else 3, 90, args.cap,
                                      gnu_time, work, concurrency=1)
                c16 = measure_run_task(keyhook, "slow", db, slow, 3, 60, args.cap, gnu_time, work,
                                       concurrency=16)
                results["concurrency"] = {
                    "available": True,
                    "deliveries": expected,
                    "delay_ms": 20,
                    "c1": c1,
                    "c16": c16,
                    "speedup": c1["seconds"] / c16["seconds"],
                }
                for label, r in (("--concurrency 1", c1), ("--concurrency 16", c16)):
                    if r["delivered"] != expected:
                        results["notes"].append(
                            f"CORRECTNESS: `run-task {label}` made the receiver answer "
                            f"{r['delivered']:,} POSTs for {expected:,} matching licenses "
                            f"(first run; runs: {r['received_each']}): "
                            + ("deliveries were sent more than once." if r["delivered"] > expected
                               else "some were never sent."))
            else:
                results["concurrency"] = {"available": False,
                                          "note": "`run-task --concurrency` is not in this build"}

            # The floor again: a drift between the two says the machine was not steady.
            results["floor_end"] = measure_floor(c_bins["floor"], receiver, floor_requests,
                                                 3 if quick else 5)
            log(f"floor at the end: {results['floor_end']['rps']:,.0f} req/s")

            # (d) run-due.
            log("run-due with 100 tasks, nothing due")
            results["run_due"] = measure_run_due(keyhook, dbs[sizes[0]], receiver.url, receiver,
                                                 work, 10 if quick else 20)

        # (h) CPUs idle vs kept awake, and (i) concurrency against a fast receiver.
        results["regimes"] = measure_regimes(keyhook, c_bins, {n: dbs[n] for n in sizes}, labels,
                                             results, receiver, gnu_time, work, args.cap, quick)
        results["fast_concurrency"] = measure_fast_concurrency(
            keyhook, c_bins["floor"], dbs[sizes[0] if quick else 100_000], receiver, gnu_time,
            work, args.cap, quick)

        results["total_seconds"] = time.perf_counter() - started
        results["targets"] = ([] if args.regimes_only else evaluate(results, quick)) \
            + evaluate_regimes(results, quick)
    finally:
        for r in receivers:
            r.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    # Other processes competing for the CPUs make every figure noisier: say how much there was.
    busy_after, own_after = machine_busy_seconds(), own_cpu_seconds()
    if busy_before is not None and busy_after is not None:
        elapsed = time.perf_counter() - started
        others = max(0.0, (busy_after - busy_before) - (own_after - own_before))
        share = others / (elapsed * (os.cpu_count() or 1))
        results["other_cpu"] = {"seconds": others, "share_of_machine": share}
        if share > 0.05:
            results["notes"].append(
                f"Other CPU load during the benchmark: about {others:.0f} CPU-seconds "
                f"({share:.0%} of the machine) were used by processes other than this "
                "benchmark and its children (kernel writeback included); figures may be noisy.")
    table = markdown(results)
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "results.json"), "w") as file:
        json.dump(results, file, indent=2, default=str)
        file.write("\n")
    with open(os.path.join(args.out_dir, "results.md"), "w") as file:
        file.write(table)
    print(table)
    log(f"wrote {os.path.join(args.out_dir, 'results.json')} and results.md "
        f"({results['total_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
