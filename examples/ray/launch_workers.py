#!/usr/bin/env python3
"""Start N `strata worker` processes for one GA run on a Ray cluster.

See --help (or examples/ray/README.md) for what it does and how to use it.
Only the Ray Python API and the standard library are used.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

DESCRIPTION = """\
Start N `strata worker` processes for one GA run on a Ray cluster, wait for
them, and exit 0 only when the run is done.

How: one placement group of N bundles of --cpus-per-worker CPUs, strategy
SPREAD (over as many nodes as the cluster has), and one Ray task per bundle.
Each task runs, on its node, as a subprocess (strata: see --strata):

    strata worker --exit-when-done RUN --grace SECONDS [WORKER OPTIONS]

with STORAGE_BACKEND=neon and DATABASE_URL taken from this (the driver's)
environment, streams the worker's output with a "[worker I pid P]" prefix, and
returns its exit code. A worker exits 0 once the whole run has nothing pending
or leased and is completed (1 if it was cancelled or failed). A worker process
that dies from a signal (SIGKILL, the OOM killer) or a Ray worker that dies
with it (node lost) fails its task, which Ray runs again (--max-retries): the
new worker takes over, and the dead one's leases return to the queue when their
TTL expires. Evaluation results are recorded with fencing tokens, so retries
never change the run's result.

Before starting workers it waits (--wait-for-run) for RUN to exist, and at the
end it checks `strata runs status RUN --json` (run as a Ray task, on a node).

What it needs:
  - the run, created by a coordinator on a shared PostgreSQL, e.g.
        STORAGE_BACKEND=neon strata evolve --workers 0 --run-id RUN ... &
  - the `strata` binary on every node (--strata, default: `strata` on PATH)
  - DATABASE_URL (or NEON_DATABASE_URL) in this environment; it is handed to
    the tasks as an argument (not a runtime_env, which Ray's dashboard shows)
    and never printed: passwords are masked in everything this prints.
    STRATA_* settings (STRATA_PG_SCHEMA, ...) and RUST_LOG are passed on too.

Exit codes: 0 the run is completed; 1 it is not (workers failed, retries ran
out, the run was cancelled or failed); 2 invalid arguments, no DATABASE_URL,
or RUN unknown after --wait-for-run; 130 interrupted (Ctrl-C, SIGTERM: every
worker is asked to hand back its leases, within --grace).
"""

EXAMPLES = """\
examples:
  # this machine only (starts a local Ray, one worker per core):
  export STORAGE_BACKEND=neon DATABASE_URL=postgres://user:pass@host/db
  strata evolve --workers 0 --run-id nightly-01 --strategy donchian --symbols ^GSPC &
  python launch_workers.py --run nightly-01

  # an existing cluster, 16 workers, with worker options after --:
  python launch_workers.py --address auto --run nightly-01 --workers 16 -- --ttl 20 --batch 16

  # as a Ray job (the entrypoint runs on the head node, with its environment):
  ray job submit --working-dir examples/ray -- python launch_workers.py --run nightly-01 --strata /opt/strata/bin/strata
"""

#: Variables a worker needs besides STORAGE_BACKEND, passed from the driver.
PASSED_VARIABLES = ("DATABASE_URL", "NEON_DATABASE_URL", "RUST_LOG")
#: Storage backends whose evolution state workers on several machines can share.
SHARED_BACKENDS = ("neon", "postgres", "pg")

_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^:/?#@\s]*:)[^@\s]*@", re.IGNORECASE)
_KEYWORD_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)('[^']*'|[^\s&]+)", re.IGNORECASE)


def mask(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`text` with URL passwords, `password=...` values and each of `secrets` replaced by ***."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _URL_PASSWORD.sub(r"\g<head>***@", text)
    return _KEYWORD_PASSWORD.sub(r"\g<head>***", text)


def secrets_of(environment: dict[str, str]) -> tuple[str, ...]:
    """The passwords inside the connection URLs of `environment`, as written and decoded."""
    found = set()
    for name in ("DATABASE_URL", "NEON_DATABASE_URL"):
        url = environment.get(name, "")
        try:
            parts = urllib.parse.urlsplit(url)
            raw = parts.netloc.rpartition("@")[0].partition(":")[2] if "@" in parts.netloc else ""
        except ValueError:
            continue
        for secret in (raw, urllib.parse.unquote(raw)):
            # Short strings would mask unrelated text; the URL pattern covers them.
            if len(secret) >= 4:
                found.add(secret)
    return tuple(sorted(found, key=len, reverse=True))


def log(message: str) -> None:
    print(f"launch: {message}", flush=True)


def raise_keyboard_interrupt(_signum, _frame):
    raise KeyboardInterrupt


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def seconds(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive number of seconds")
    return number


def positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive integer")
    return number


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    own, worker_options = argv, []
    if "--" in argv:
        at = argv.index("--")
        own, worker_options = argv[:at], argv[at + 1 :]
    parser = argparse.ArgumentParser(
        prog="launch_workers.py",
        usage="%(prog)s --run RUN [options] [-- WORKER OPTIONS]",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--run", required=True, metavar="RUN", help="the run whose evaluations the workers take")
    parser.add_argument(
        "--workers",
        type=positive,
        metavar="N",
        help="worker processes to start (default: the cluster's CPUs / --cpus-per-worker; "
        "a local Ray is started with at least N x --cpus-per-worker CPUs)",
    )
    parser.add_argument(
        "--address",
        metavar="ADDRESS",
        help="Ray cluster to use: 'auto' (the one this machine belongs to, started with `ray start`) or "
        "HOST:PORT of its head node. Default: $RAY_ADDRESS (set inside `ray job submit`), else a new "
        "local Ray on this machine, listening on loopback only, stopped at the end",
    )
    parser.add_argument(
        "--strata", default="strata", metavar="PATH", help="the strata binary on the nodes (default: strata on PATH)"
    )
    parser.add_argument(
        "--grace",
        type=seconds,
        default=20.0,
        metavar="SECONDS",
        help="passed to each worker: on SIGTERM/Ctrl-C it hands back its leases and exits within this (default: 20)",
    )
    parser.add_argument(
        "--max-retries",
        type=int,
        default=3,
        metavar="N",
        help="Ray runs a worker task again up to N times when its process dies from a signal or its node is lost "
        "(default: 3)",
    )
    parser.add_argument(
        "--cpus-per-worker", type=float, default=1.0, metavar="CPUS", help="CPUs of each bundle and task (default: 1)"
    )
    parser.add_argument(
        "--placement",
        choices=("SPREAD", "STRICT_SPREAD", "PACK"),
        default="SPREAD",
        help="placement group strategy: SPREAD over nodes as evenly as possible (default), STRICT_SPREAD one "
        "bundle per node (needs N nodes), PACK as few nodes as possible",
    )
    parser.add_argument(
        "--wait-for-run",
        type=seconds,
        default=120.0,
        metavar="SECONDS",
        help="how long to wait for RUN to be created by its coordinator (default: 120)",
    )
    parser.add_argument(
        "--ready-timeout",
        type=seconds,
        default=300.0,
        metavar="SECONDS",
        help="how long to wait for the cluster to place every bundle (autoscaling included; default: 300)",
    )
    arguments = parser.parse_args(own)
    if worker_options and worker_options[0] == "--":
        worker_options = worker_options[1:]
    for option in ("--exit-when-done", "--grace", "--run"):
        if option in worker_options:
            parser.error(f"{option} is set by the launcher; give --run/--grace to the launcher instead")
    arguments.worker_options = worker_options
    return arguments


def worker_environment() -> dict[str, str]:
    """What each worker gets from the driver: the storage settings, DATABASE_URL, STRATA_*."""
    backend = os.environ.get("STORAGE_BACKEND", "").strip() or "neon"
    if backend not in SHARED_BACKENDS:
        raise SystemExit(
            f"launch: STORAGE_BACKEND={backend}: workers on other machines share a run only through PostgreSQL; "
            "set STORAGE_BACKEND=neon (or unset it)"
        )
    environment = {"STORAGE_BACKEND": backend}
    for name, value in os.environ.items():
        if name in PASSED_VARIABLES or name.startswith("STRATA_"):
            environment[name] = value
    if not (environment.get("DATABASE_URL") or environment.get("NEON_DATABASE_URL")):
        raise SystemExit(
            "launch: DATABASE_URL is not set: export the PostgreSQL URL of the run's store "
            "(postgres://USER:PASSWORD@HOST/DB) before starting the launcher"
        )
    return environment


def main(argv: list[str]) -> int:
    arguments = parse_arguments(argv)
    try:
        environment = worker_environment()
    except SystemExit as error:
        print(error, file=sys.stderr)
        return 2
    secrets = secrets_of(environment)
    # A Ray this launcher starts is reached from this machine only (loopback),
    # reports no usage statistics, and prints every worker line (no dedup).
    local = arguments.address is None and not os.environ.get("RAY_ADDRESS")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    if not sys.stderr.isatty():
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")
    if local:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    started = time.monotonic()
    try:
        import ray  # noqa: PLC0415 (after the environment above, which Ray reads at import)
    except ImportError:
        print("launch: the ray package is missing: pip install -r .ci/requirements-ray.txt (or pip install ray)", file=sys.stderr)
        return 2
    interrupted = False
    try:
        return Launch(ray, arguments, environment, secrets, local, started).run()
    except KeyboardInterrupt:
        interrupted = True
        return 130
    finally:
        if interrupted:
            log("interrupted")
        if ray.is_initialized():
            ray.shutdown()


class WorkerDied(Exception):
    """The `strata worker` process died from a signal: Ray runs its task again."""


def _worker_task(index, workers, command, environment, secrets, grace, events):
    """One Ray task: runs `strata worker` on this node, streams its output, returns its exit code."""
    import ctypes  # noqa: PLC0415 (runs on the node)

    prctl = None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        pass

    def die_with_parent():
        # PR_SET_PDEATHSIG: if this Ray worker process dies (node drained, OOM),
        # the strata worker gets SIGTERM and hands back its leases. Ray runs
        # tasks on the worker's main thread, the one that forks here.
        if prctl is not None:
            prctl(1, signal.SIGTERM)

    host = socket.gethostname()
    began = time.monotonic()
    child_environment = dict(os.environ)
    child_environment.update(environment)
    try:
        child = subprocess.Popen(
            command,
            env=child_environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
            preexec_fn=die_with_parent,
        )
    except OSError as error:
        how = f"could not start {command[0]}: {error} (exit 127)"
        ray_get(events.exited.remote(index, 0, host, 0, 127, how, 0.0))
        return 127
    attempt = ray_get(events.started.remote(index, host, child.pid))
    prefix = f"[worker {index}/{workers} pid {child.pid}] "

    def stream():
        for line in child.stdout:
            print(prefix + mask(line.rstrip("\n"), secrets), file=sys.stderr, flush=True)

    # The output is read on a thread: the main thread waits in short steps,
    # where Ray's cancellation (a KeyboardInterrupt on this thread) reaches it.
    reader = threading.Thread(target=stream, name=f"worker-{index}-output", daemon=True)
    reader.start()
    try:
        while True:
            try:
                code = child.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                continue
    except BaseException:
        # Cancelled by the launcher (Ctrl-C, SIGTERM): the worker hands back its leases.
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=grace + 5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        reader.join(timeout=5)
        how = f"stopped on request (exit {child.returncode})"
        ray_get(events.exited.remote(index, attempt, host, child.pid, child.returncode, how, time.monotonic() - began))
        raise
    reader.join(timeout=5)
    elapsed = time.monotonic() - began
    if code < 0:
        name = signal_name(-code)
        ray_get(events.exited.remote(index, attempt, host, child.pid, code, f"killed by {name}", elapsed))
        raise WorkerDied(f"worker {index}: strata worker pid {child.pid} on {host} was killed by {name}")
    ray_get(events.exited.remote(index, attempt, host, child.pid, code, "", elapsed))
    return code


def ray_get(reference):
    import ray  # noqa: PLC0415 (runs on the node)

    return ray.get(reference)


def _status_task(command, environment, secrets):
    """`strata runs status RUN --json` on a node: (exit code, stdout, masked stderr)."""
    child_environment = dict(os.environ)
    child_environment.update(environment)
    try:
        done = subprocess.run(command, env=child_environment, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as error:
        return 127, "", mask(str(error), secrets)
    return done.returncode, done.stdout, mask(done.stderr, secrets)


class _Events:
    """A Ray actor the tasks report to; the driver prints what it collected."""

    def __init__(self):
        self.items = []
        self.attempts = {}

    def started(self, index, host, pid):
        attempt = self.attempts[index] = self.attempts.get(index, 0) + 1
        self.items.append({"event": "started", "index": index, "attempt": attempt, "host": host, "pid": pid})
        return attempt

    def exited(self, index, attempt, host, pid, code, how, elapsed):
        self.items.append(
            {
                "event": "exited",
                "index": index,
                "attempt": attempt,
                "host": host,
                "pid": pid,
                "code": code,
                "how": how,
                "elapsed": elapsed,
            }
        )

    def drain(self):
        items, self.items = self.items, []
        return items


class Launch:
    """One launch: the cluster, the placement group, the tasks, the counts."""

    def __init__(self, ray, arguments, environment, secrets, local, started):
        self.ray = ray
        self.arguments = arguments
        self.environment = environment
        self.secrets = secrets
        self.local = local
        self.started = started
        self.counts = {"started": 0, "killed": 0, "retried": 0, "failed": 0}
        self.exit_codes = {}
        self.workers = 0
        self.status_task = None
        self.live = set()

    # -- cluster -------------------------------------------------------------

    def connect(self) -> int:
        ray, arguments = self.ray, self.arguments
        common = {"log_to_driver": True, "logging_level": logging.WARNING}
        if self.local:
            cores = os.cpu_count() or 1
            wanted = (arguments.workers or 0) * arguments.cpus_per_worker
            cpus = max(cores, int(wanted + 0.999))
            ray.init(
                address="local",
                num_cpus=cpus,
                include_dashboard=False,
                object_store_memory=128 * 1024 * 1024,
                **common,
            )
            note = f", {cores} cores: oversubscribed" if cpus > cores else ""
            log(f"Ray {ray.__version__}: local cluster on this machine, {cpus} CPUs{note}")
        else:
            address = arguments.address or os.environ.get("RAY_ADDRESS")
            ray.init(address=address, **common)
            nodes = [node for node in ray.nodes() if node.get("Alive")]
            log(f"Ray {ray.__version__}: connected to {address} ({len(nodes)} nodes)")
        # After ray.init, whose C++ core installs its own SIGTERM handler (it aborts):
        # SIGTERM stops the launch like Ctrl-C, workers handing back their leases.
        signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
        cpus = ray.cluster_resources().get("CPU", 0)
        workers = arguments.workers or max(1, int(cpus // arguments.cpus_per_worker))
        log(f"cluster: {cpus:g} CPUs; workers: {workers}, {arguments.cpus_per_worker:g} CPU each")
        return workers

    def status(self):
        """`strata runs status RUN --json` as (exit code, document or None, stderr)."""
        command = [self.arguments.strata, "runs", "status", self.arguments.run, "--json"]
        if self.status_task is None:
            self.status_task = self.ray.remote(num_cpus=0, max_retries=2)(_status_task)
        code, stdout, stderr = self.ray.get(self.status_task.remote(command, self.environment, self.secrets))
        document = None
        if code == 0:
            try:
                document = json.loads(stdout)
            except ValueError:
                return 1, None, f"not JSON: {stdout[:200]!r}"
        return code, document, stderr.strip()

    def wait_for_run(self):
        deadline = time.monotonic() + self.arguments.wait_for_run
        said = False
        while True:
            code, document, stderr = self.status()
            if code == 0:
                return document
            if code != 2:
                raise Failure(1, f"`strata runs status {self.arguments.run} --json` failed ({code}): {stderr}")
            if time.monotonic() >= deadline:
                raise Failure(2, f"run {self.arguments.run} not found after {self.arguments.wait_for_run:g} s: {stderr}")
            if not said:
                log(f"waiting up to {self.arguments.wait_for_run:g} s for run {self.arguments.run} to be created")
                said = True
            time.sleep(2)

    # -- the launch ----------------------------------------------------------

    def run(self) -> int:
        try:
            return self.launch()
        except Failure as failure:
            log(failure.message)
            return failure.code

    def launch(self) -> int:
        ray, arguments = self.ray, self.arguments
        from ray.util.placement_group import placement_group, placement_group_table, remove_placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        workers = self.connect()
        document = self.wait_for_run()
        log(f"run {arguments.run}: {describe(document)}")
        if document.get("finished") or document.get("status") in ("completed", "cancelled", "failed"):
            log("the run has ended: no worker started")
            return self.summary(document, workers)
        command = [arguments.strata, "worker", "--exit-when-done", arguments.run, "--grace", f"{arguments.grace:g}"]
        command += arguments.worker_options
        shown = " ".join(f"{name}={mask(value, self.secrets)}" for name, value in sorted(self.environment.items()))
        log(f"command: {' '.join(command)}")
        log(f"environment: {shown}")

        group = placement_group([{"CPU": arguments.cpus_per_worker}] * workers, strategy=arguments.placement)
        ready, _ = ray.wait([group.ready()], timeout=arguments.ready_timeout)
        if not ready:
            remove_placement_group(group)
            raise Failure(
                1,
                f"the cluster could not place {workers} bundles of {arguments.cpus_per_worker:g} CPU "
                f"({arguments.placement}) within {arguments.ready_timeout:g} s: lower --workers or add nodes",
            )
        nodes = set(placement_group_table(group).get("bundles_to_node_id", {}).values())
        log(f"placement group {arguments.placement}: {workers} bundles on {len(nodes)} node(s)")
        events = ray.remote(num_cpus=0)(_Events).remote()
        task = ray.remote(_worker_task)
        pending = {}
        for index in range(1, workers + 1):
            strategy = PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=index - 1)
            reference = task.options(
                num_cpus=arguments.cpus_per_worker,
                max_retries=arguments.max_retries,
                retry_exceptions=[WorkerDied],
                scheduling_strategy=strategy,
            ).remote(index, workers, command, self.environment, self.secrets, arguments.grace, events)
            pending[reference] = index
        self.workers = workers
        try:
            self.wait(pending, events)
        except KeyboardInterrupt:
            self.stop(pending, events)
            raise
        finally:
            self.report(events)
            remove_placement_group(group)
        code, document, stderr = self.status()
        if code != 0:
            raise Failure(1, f"`strata runs status {arguments.run} --json` failed ({code}): {stderr}")
        return self.summary(document, workers)

    def wait(self, pending, events):
        ray = self.ray
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            self.report(events)
            for reference in ready:
                index = pending.pop(reference)
                try:
                    code = ray.get(reference)
                except ray.exceptions.RayError as error:
                    self.counts["failed"] += 1
                    self.exit_codes[index] = "failed"
                    first = mask(str(error), self.secrets).strip().splitlines()
                    log(f"worker {index}/{self.workers} failed for good: {first[-1] if first else type(error).__name__}")
                    continue
                self.exit_codes[index] = code

    def stop(self, pending, events):
        """Cancels the tasks (each sends SIGTERM to its worker) and waits for the workers to exit."""
        log(f"stopping {len(pending)} workers: each hands back its leases within {self.arguments.grace:g} s")
        for reference in pending:
            self.ray.cancel(reference)
        deadline = time.monotonic() + self.arguments.grace + 10
        while self.live and time.monotonic() < deadline:
            time.sleep(0.5)
            self.report(events)
        if self.live:
            log(f"workers {sorted(self.live)} did not say they stopped within {self.arguments.grace + 10:g} s")

    def report(self, events):
        for item in self.ray.get(events.drain.remote()):
            where = f"on {item['host']} (pid {item['pid']}, attempt {item['attempt']})"
            label = f"worker {item['index']}/{self.workers}"
            if item["event"] == "started":
                self.live.add(item["index"])
                self.counts["started"] += 1
                if item["attempt"] > 1:
                    self.counts["retried"] += 1
                log(f"{label} started {where}")
                continue
            self.live.discard(item["index"])
            code, how = item["code"], item["how"]
            if how.startswith("killed"):
                self.counts["killed"] += 1
                left = self.arguments.max_retries - item["attempt"] + 1
                then = f"Ray runs it again ({left} retries left)" if left > 0 else "no retries left"
                log(f"{label} {how} after {item['elapsed']:.1f} s {where}: {then}")
            elif how:
                log(f"{label} {how} {where}")
            else:
                log(f"{label} exited {code}{exit_meaning(code)} after {item['elapsed']:.1f} s {where}")

    def summary(self, document, workers) -> int:
        done = (
            document.get("status") == "completed"
            and document.get("pending", 0) == 0
            and document.get("leased", 0) == 0
        )
        counts = self.counts
        codes = " ".join(f"{index}:{code}" for index, code in sorted(self.exit_codes.items())) or "none"
        log(
            f"summary: run {self.arguments.run} {describe(document)}; workers {workers}, started {counts['started']}, "
            f"killed {counts['killed']}, retried {counts['retried']}, failed {counts['failed']}; exit codes {codes}; "
            f"{time.monotonic() - self.started:.1f} s"
        )
        if not done:
            log(
                f"run {self.arguments.run} is not done: see the worker lines above; "
                f"`strata runs show {self.arguments.run}` for its state"
            )
        return 0 if done else 1


class Failure(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def exit_meaning(code: int) -> str:
    return {
        0: " (run done)",
        1: " (error, or the run was cancelled or failed)",
        2: " (invalid input)",
        130: " (stopped by SIGINT)",
        143: " (stopped by SIGTERM)",
    }.get(code, "")


def describe(document) -> str:
    """`completed, generation 4/4, 0 pending, 0 leased, 160 done`."""
    if not isinstance(document, dict):
        return "unknown"
    parts = [str(document.get("status", "?"))]
    if "generation" in document:
        parts.append(f"generation {document.get('generation')}/{document.get('generations', '?')}")
    for key in ("pending", "leased", "done", "parked"):
        if key in document:
            parts.append(f"{document[key]} {key}")
    return ", ".join(parts)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
