"""Benchmark the routing table endpoint against the limit of this stack, over real HTTP.

    .venv/bin/python bench/routing.py [--duration 3] [--connections 8] [--rounds 7]
                                      [--database-url postgres://...] [--cache-url redis://127.0.0.1:6379/15]

Prepares a database (SQLite in a temporary DATA_DIR by default, or an empty database given by URL): migrates
it, creates a tenant, an API key with routing:read and a published table. Starts gunicorn on 127.0.0.1 with
one worker per core, production settings and a cache shared by the workers (files in the temporary DATA_DIR
by default, or Redis), and drives it with wrk (Debian package `wrk`; a Python load generator when wrk is
absent) at the given concurrency against:

  (a) a minimal Django view returning constant bytes through the same middleware (mounted only for the bench)
  (b) GET /api/v1/routing/table with a valid key
  (c) the same with If-None-Match: the 304 path

The baseline gets the same request as (b), Authorization header included, and answers as many bytes as the
published table, so that the ratios measure what the table endpoint's code costs and not the size of the
exchange. (On the development machine the size made no measurable difference: 3,968 req/s for a 70-byte answer
to a request without the header, 4,003 for 1,109 bytes with it; three 3-second wrk runs each.)

Install wrk (`apt-get install wrk`, or `make bench`, which does) for figures comparable with the README's: the
Python load generator shares the cores with the server under test and is far slower per request.

It prints requests/s, p50 and p99 for each (median of the rounds), the ratios b/a and c/a (median of the
per-round ratios: the rounds run a, b, c and c, b, a in turn, so that a drifting machine load biases them
less), the cost of the Django handler alone per request (in-process WSGI calls, no HTTP: the part this code controls), and the client's
decide() in ns per call (bench/client_decide.py). Targets: both ratios >= 0.9, p99 <= 5 ms at concurrency 8,
decide() <= 5 us. Exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.client import HTTPConnection
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TARGET_RATIO = 0.9
TARGET_P99_MS = 5.0
TARGET_DECIDE_NS = 5000

BENCH_SETTINGS = """\
# Written by bench/routing.py: production settings plus the constant-bytes baseline view.
from controlplane.settings.production import *  # noqa: F403

ROUTING_BENCH_VIEW = True
"""


# --- preparing the database (runs in a child process with the bench settings) ----------------------------


def prepare_database() -> dict:
    """Create a tenant, a routing:read key, a task with a succeeded model version and publish a table."""
    import django

    django.setup()
    from django.db import transaction
    from django.utils import timezone

    from routing.services import route_rule_create, route_table_publish
    from tenants.services import api_key_create, tenant_create, user_get_or_create
    from training.models import BaseModel, JobState, ModelVersion, Task, TrainingJob

    owner, _ = user_get_or_create(email="bench@example.com", password=None)
    tenant = tenant_create(slug="bench", name="Bench", owner=owner)
    key = api_key_create(tenant=tenant, name="bench", scopes=["routing:read"]).plaintext
    base_model = BaseModel.objects.get(name="minilm-l6")
    for index in range(5):  # a realistic small table: a few hundred bytes per rule
        task = Task.objects.create(
            tenant=tenant,
            slug=f"task-{index}",
            name=f"Task {index}",
            kind="classification",
            labels=["a", "b"],
            frontier_model="gpt-4o",
            price_input_per_million="2.50",
            price_output_per_million="10.00",
        )
        job = TrainingJob.objects.create(
            tenant=tenant,
            task=task,
            base_model=base_model,
            hyperparameters={},
            target_agreement=0.95,
            state=JobState.SUCCEEDED,
            finished_at=timezone.now(),
        )
        model_version = ModelVersion.objects.create(
            tenant=tenant,
            task=task,
            job=job,
            version=1,
            name=f"task-{index}-v1",
            base_model=base_model,
            threshold=0.8,
            coverage=0.7,
            artifact_path=f"bench/{index}",
        )
        route_rule_create(tenant_id=tenant.pk, task=task, model_version=model_version, actor="bench")
    with transaction.atomic():
        version = route_table_publish(tenant_id=tenant.pk, actor="bench")
    return {"key": key, "etag": version.etag, "bytes": len(bytes(version.body))}


def handler_cost(key: str, etag: str, *, rounds: int = 15, calls: int = 1000) -> dict:
    """Median CPU microseconds per request of the WSGI application itself for (a), (b) and (c), alternating."""
    import io

    import django

    django.setup()
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
    cases = {
        "a": ("/api/v1/routing/bench-constant", {"HTTP_AUTHORIZATION": f"Bearer {key}"}),
        "b": ("/api/v1/routing/table", {"HTTP_AUTHORIZATION": f"Bearer {key}"}),
        "c": ("/api/v1/routing/table", {"HTTP_AUTHORIZATION": f"Bearer {key}", "HTTP_IF_NONE_MATCH": etag}),
    }

    statuses = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    def timed(path: str, headers: dict, count: int) -> float:
        # CPU time of this process, not wall time: time spent descheduled (other processes on a busy machine)
        # does not count, so the comparison holds on a loaded machine too.
        started = time.process_time()
        for _ in range(count):
            environ = {
                "REQUEST_METHOD": "GET", "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
                "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "127.0.0.1",
                "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr, "wsgi.url_scheme": "http", **headers,
            }  # fmt: skip
            response = application(environ, start_response)
            b"".join(response)
            response.close()
        return (time.process_time() - started) / count * 1e6

    for (path, headers), expected in zip(cases.values(), ("200", "200", "304"), strict=True):
        timed(path, headers, 200)  # warm: the key, the table, imports
        if not statuses[-1].startswith(expected):
            raise RuntimeError(f"{path} answered {statuses[-1]}, expected {expected}")
        statuses.clear()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, (path, headers) in cases.items():
            samples[name].append(timed(path, headers, calls))
    return {name: statistics.median(values) for name, values in samples.items()}


# --- load generation ----------------------------------------------------------------------------------------


def parse_wrk(output: str) -> dict:
    def latency_ms(label: str) -> float:
        match = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        if not match:
            raise RuntimeError(f"wrk output has no {label}% latency:\n{output}")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors:.*", output)
    return {
        "rps": float(rps.group(1)),
        "p50": latency_ms("50"),
        "p99": latency_ms("99"),
        "bad_responses": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(0) if errors else "",
    }


def run_wrk(url: str, headers: dict, *, connections: int, duration: float, threads: int) -> dict:
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "5s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    result = subprocess.run([*command, url], capture_output=True, text=True, check=True)
    return parse_wrk(result.stdout)


def run_python_load(url: str, headers: dict, *, connections: int, duration: float, threads: int) -> dict:
    """Fallback when wrk is absent: one thread per connection, keep-alive when the server allows it."""
    match = re.match(r"http://([^/:]+):(\d+)(/.*)", url)
    host, port, path = match.group(1), int(match.group(2)), match.group(3)
    latencies: list[list[float]] = [[] for _ in range(connections)]
    bad = [0] * connections
    deadline = time.perf_counter() + duration

    def worker(slot: int) -> None:
        connection = None
        while time.perf_counter() < deadline:
            if connection is None:
                connection = HTTPConnection(host, port, timeout=5)
            started = time.perf_counter()
            try:
                connection.request("GET", path, headers=headers)
                response = connection.getresponse()
                response.read()
            except OSError:
                connection.close()
                connection = None
                bad[slot] += 1
                continue
            latencies[slot].append(time.perf_counter() - started)
            if response.status >= 400:
                bad[slot] += 1
            if response.will_close:
                connection.close()
                connection = None

    workers = [threading.Thread(target=worker, args=(slot,)) for slot in range(connections)]
    started = time.perf_counter()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    elapsed = time.perf_counter() - started
    every = sorted(value for slot in latencies for value in slot)
    if not every:
        raise RuntimeError(f"no request to {url} succeeded")
    return {
        "rps": len(every) / elapsed,
        "p50": every[len(every) // 2] * 1000,
        "p99": every[min(len(every) - 1, int(len(every) * 0.99))] * 1000,
        "bad_responses": sum(bad),
        "socket_errors": "",
    }


# --- the run ------------------------------------------------------------------------------------------------


def run_child(env: dict, *args: str) -> dict:
    """Run this script's `_prepare` or `_handler` step in a child process (bench settings) and read its JSON."""
    result = subprocess.run(
        [PYTHON, str(Path(__file__).resolve()), *args], env=env, cwd=ROOT, check=True, capture_output=True, text=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fetch(url: str, headers: dict) -> tuple[int, bytes, dict]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with code {process.returncode}")
        try:
            if fetch(url, {})[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer {url} within {timeout} s")


def decide_benchmark() -> tuple[float | None, str]:
    result = subprocess.run(
        [PYTHON, str(ROOT / "bench" / "client_decide.py"), "--number", "100000", "--repeat", "5"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    match = re.search(r"slowest decide\(\): ([\d.]+) ns", result.stdout)
    return (float(match.group(1)) if match else None), result.stdout


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_prepare":
        print(json.dumps(prepare_database()))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "_handler":
        print(json.dumps(handler_cost(sys.argv[2], sys.argv[3])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=3, help="whole seconds per measurement")
    parser.add_argument("--connections", type=int, default=8, help="concurrent connections")
    parser.add_argument("--rounds", type=int, default=7, help="rounds of (a, b, c); the median round is reported")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="gunicorn workers (default: cores)")
    parser.add_argument("--database-url", default=None, help="an empty database to use (default: SQLite, temporary)")
    parser.add_argument("--cache-url", default=None, help="shared cache (default: files in the temporary DATA_DIR)")
    parser.add_argument("--python-load", action="store_true", help="use the Python load generator even if wrk exists")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="routing-bench-"))
    (workdir / "routing_bench_settings.py").write_text(BENCH_SETTINGS)
    env = {
        **os.environ,
        "PYTHONPATH": f"{workdir}{os.pathsep}{ROOT}",
        "DJANGO_SETTINGS_MODULE": "routing_bench_settings",
        "DATA_DIR": str(workdir),
        "SECRET_KEY": "bench-" + os.urandom(24).hex(),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "False",
        "LOG_LEVEL": "WARNING",
        "HF_HUB_OFFLINE": "1",
    }
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
    if args.cache_url:
        env["CACHE_URL"] = args.cache_url
    else:
        env["CACHE_URL"] = f"filecache://{workdir / 'cache'}"
    gunicorn = None
    try:
        subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], env=env, cwd=ROOT, check=True)
        prepared = run_child(env, "_prepare")
        # The baseline answers as many bytes as the table (read once per worker, at its first request).
        with (workdir / "routing_bench_settings.py").open("a") as settings_file:
            settings_file.write(f"ROUTING_BENCH_BODY_BYTES = {prepared['bytes']}\n")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        command = [str(Path(PYTHON).parent / "gunicorn"), "controlplane.wsgi:application", "--bind", f"127.0.0.1:{port}",
                   "--workers", str(args.workers), "--log-level", "warning"]  # fmt: skip
        gunicorn = subprocess.Popen(
            command,
            env=env,
            cwd=ROOT,
            start_new_session=True,
        )
        constant_url, table_url = f"{base}/api/v1/routing/bench-constant", f"{base}/api/v1/routing/table"
        wait_until_up(constant_url, gunicorn)

        auth = {"Authorization": f"Bearer {prepared['key']}"}
        conditional = {**auth, "If-None-Match": prepared["etag"]}
        status, body, headers = fetch(table_url, auth)
        assert status == 200 and headers.get("ETag") == prepared["etag"], (status, body[:200], headers)
        assert fetch(table_url, conditional)[0] == 304
        constant_status, constant_body, _ = fetch(constant_url, auth)
        assert constant_status == 200 and len(constant_body) == prepared["bytes"], (constant_status, len(constant_body))
        for _ in range(20 * args.workers):  # every worker loads the key and the table once
            fetch(table_url, auth)
            fetch(constant_url, auth)

        use_wrk = shutil.which("wrk") is not None and not args.python_load
        load = run_wrk if use_wrk else run_python_load
        threads = min(args.connections, max(1, (os.cpu_count() or 2) // 2))
        cases = [("a", "constant bytes view", constant_url, auth), ("b", "routing table, 200", table_url, auth),
                 ("c", "routing table, 304", table_url, conditional)]  # fmt: skip
        if not use_wrk and not args.python_load:
            print("wrk not found: using the Python load generator (install Debian's wrk for comparable figures)")
        print(
            f"gunicorn: {args.workers} sync workers on {os.cpu_count()} cores; load: "
            f"{'wrk' if use_wrk else 'Python threads'}, {args.connections} connections, {args.duration:g} s each; "
            f"database: {'PostgreSQL' if (args.database_url or '').startswith('postgres') else 'SQLite'}; "
            f"cache: {env['CACHE_URL'].split(':')[0]}; table: {prepared['bytes']} bytes"
        )
        results: dict[str, list[dict]] = {name: [] for name, *_ in cases}
        for round_number in range(1, args.rounds + 1):
            # a, b, c then c, b, a: a load that drifts during a round biases its ratios in turn one way and the other
            for name, label, url, request_headers in cases if round_number % 2 else cases[::-1]:
                measured = load(
                    url, request_headers, connections=args.connections, duration=args.duration, threads=threads
                )
                if measured["bad_responses"]:
                    raise RuntimeError(f"({name}) {measured['bad_responses']} responses were errors")
                results[name].append(measured)
                print(
                    f"  round {round_number} ({name}) {label:<22} {measured['rps']:9.0f} req/s   "
                    f"p50 {measured['p50']:6.2f} ms   p99 {measured['p99']:6.2f} ms {measured['socket_errors']}"
                )
        # Each round's ratios compare neighbours in time (a, b, c, then c, b, a), so a machine whose load
        # drifts (other processes) biases them less than totals would; the median round is reported.
        ratio_b = statistics.median(b["rps"] / a["rps"] for a, b in zip(results["a"], results["b"], strict=True))
        ratio_c = statistics.median(c["rps"] / a["rps"] for a, c in zip(results["a"], results["c"], strict=True))
        print(f"median of {args.rounds} rounds:")
        summary = {}
        for name, label, *_ in cases:
            runs = results[name]
            summary[name] = {key: statistics.median(run[key] for run in runs) for key in ("rps", "p50", "p99")}
            row = summary[name]
            print(
                f"  ({name}) {label:<22} {row['rps']:9.0f} req/s   p50 {row['p50']:6.2f} ms   p99 {row['p99']:6.2f} ms"
            )
        worst_p99 = max(summary[name]["p99"] for name in ("b", "c"))
        print(f"ratio b/a = {ratio_b:.3f}   c/a = {ratio_c:.3f}   (target >= {TARGET_RATIO})")
        print(
            f"p99 of the table endpoint: {worst_p99:.2f} ms (target <= {TARGET_P99_MS} ms; the constant view's on this "
            f"machine: {summary['a']['p99']:.2f} ms)"
        )
        handler = run_child(env, "_handler", prepared["key"], prepared["etag"])
        print(
            "Django handler alone (in-process WSGI calls, no HTTP), median CPU us per request: "
            f"(a) {handler['a']:.1f}  (b) {handler['b']:.1f}  (c) {handler['c']:.1f}  "
            f"-> a/b = {handler['a'] / handler['b']:.3f}, a/c = {handler['a'] / handler['c']:.3f}"
        )
    finally:
        if gunicorn is not None and gunicorn.poll() is None:
            os.killpg(gunicorn.pid, signal.SIGTERM)
            try:
                gunicorn.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(gunicorn.pid, signal.SIGKILL)
        shutil.rmtree(workdir, ignore_errors=True)

    decide_ns, decide_output = decide_benchmark()
    print(decide_output.rstrip())
    ok = ratio_b >= TARGET_RATIO and ratio_c >= TARGET_RATIO and worst_p99 <= TARGET_P99_MS
    ok = ok and decide_ns is not None and decide_ns <= TARGET_DECIDE_NS
    print("all targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
