"""The gateway beside nginx and HAProxy in front of the same backend, in one run.

    bench/proxies.py BINARY [SECONDS [ROUNDS]]

Starts the services without the gateway (`serve all --with-gateway false`,
SQLite, no simulated feed), seeds 10,000 1m bars, then in front of them: the
gateway as its own process (anonymous callers, local limits raised so none is
refused, metrics on; with a thread per core, and with one), nginx
(`grpc_pass` with upstream keepalive) and HAProxy (`proto h2`), and two
floors (gateway/examples/floor_relay.rs): a relay on the `h2` crate with
nothing else, and one on the mesh's own HTTP/2, the gateway's without its
steps. h2load sends the same gRPC requests to the services directly and to
each proxy at 1, 16 and 64 calls in flight: GetSymbol (small) and
GetCandles of 10,000 bars (large); then the gateway alone with an API key,
and with REDIS_URL (shared rate limits) when it is set. Prints a Markdown
table: mean latency, requests per second, and ratios to direct.

A second table gives each target's CPU time per call (user + system, from
/proc; every process and thread of the target: nginx's workers, the
services for "direct"; not Redis's, for the gateway with shared limits).
At 1 in flight, where latency is the sum of each hop's work, this is the
work itself, without the wake-ups and the neighbours' noise that move the
latency cells.

Each cell is the median of ROUNDS (3) runs of SECONDS (5), and the rounds
go round the targets in turn: a machine that slows down for a while (this
one is a VM whose neighbours come and go) slows every target in that round,
not the one that happened to be measured then. Single runs of one target
after another moved the 1-in-flight cells by as much as the gaps between
the proxies (BENCHMARKS.md).

Then the same two calls through the gateway in each protocol it speaks
(native gRPC, Connect JSON and binary, Connect GET, REST GET), JSON encoding
included, as a second table with ratios to native gRPC through the gateway.
"""

import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
IN_FLIGHT = [(1, 1), (4, 4), (8, 8)]  # (connections, streams each): 1, 16, 64 in flight
UNLIMITED = "50000000/1m"  # as make bench-gateway: no call is refused
# A worker per core of the two-core machine BENCHMARKS.md was measured on,
# as the gateway has a lane per core.
NGINX_WORKERS = 2
# The relays relay whole unary calls only, so grpcurl (whose reflection is a
# streaming call) does not check their answers; the backend's metrics do.
FLOOR = "bare h2 relay (the floor)"
OWN_FLOOR = "relay on the mesh's own HTTP/2 (the gateway's floor)"
# Each floor's stack, as floor_relay takes it.
FLOORS = {FLOOR: "h2", OWN_FLOOR: "own"}


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port, process, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number, wire_type, payload):
    key = varint(number << 3 | wire_type)
    if wire_type == 2:
        return key + varint(len(payload)) + payload
    return key + payload


def framed(message):
    return b"\0" + len(message).to_bytes(4, "big") + message


def get_symbol(ticker):
    return framed(field(1, 2, ticker.encode()))


def get_candles(symbol, start_seconds, bars):
    timestamp = field(1, 0, varint(start_seconds))
    # symbol = 1, interval = 2 (INTERVAL_ONE_MINUTE = 1), start_time = 3, page_size = 5
    message = field(1, 2, symbol.encode()) + field(2, 0, varint(1)) + field(3, 2, timestamp) + field(5, 0, varint(bars))
    return framed(message)


def check_answers(port, path, body_file, headers):
    """One call, with grpcurl's strict Go client when make tools installed it:
    a benchmark of errors would measure nothing."""
    grpcurl = ROOT / ".venv" / "bin" / "grpcurl"
    if not grpcurl.exists():
        return
    service, method = path.strip("/").split("/")
    request = GRPCURL_REQUESTS[method]
    extra = [arg for header in headers for arg in ("-H", header)]
    result = subprocess.run([str(grpcurl), "-plaintext", "-max-msg-sz", str(64 << 20), *extra, "-d", request,
                             f"127.0.0.1:{port}", f"{service}/{method}"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{path} on {port}: {result.stderr}"


GRPCURL_REQUESTS = {}


class Load(NamedTuple):
    mean_us: float
    rps: float
    calls: int


def h2load(port, path, body_file, connections, streams, seconds, headers=(), content_type="application/grpc",
           calls=None):
    """h2load over h2c: a POST of `body_file` as `content_type`, or a GET
    when there is no body; for `seconds`, or for `calls` calls when given."""
    extra = [arg for header in headers for arg in ("-H", header)]
    if content_type == "application/grpc":
        extra += ["-H", "te: trailers"]
    if content_type:
        extra += ["-H", f"content-type: {content_type}"]
    if body_file:
        extra += ["-d", str(body_file)]
    # A count of calls may run slowly (a target under valgrind): ten minutes at most.
    length, timeout = (["-n", str(calls)], 600) if calls else (["-D", str(seconds)], seconds + 60)
    command = ["h2load", *length, "-c", str(connections), "-m", str(streams), *extra, f"http://127.0.0.1:{port}{path}"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=timeout).stdout
    rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+(\S+)", out).group(1)
    ok = re.search(r"status codes: (\d+) 2xx", out)
    assert ok and int(ok.group(1)) > 0, out
    calls = int(re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", out).group(1))
    return Load(to_microseconds(mean), rps, calls)


def cpu_seconds(pids):
    """User and system CPU seconds the processes `pids` (all their threads) have used so far."""
    user = system = 0
    for pid in pids:
        # After the command's name: state is field 3, utime field 14, stime field 15.
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        user, system = user + int(fields[11]), system + int(fields[12])
    ticks = os.sysconf("SC_CLK_TCK")
    return user / ticks, system / ticks


def measured_load(pids, load):
    """Runs `load()` and returns its Load with the CPU time `pids` spent per
    call meanwhile, in µs: (user, system)."""
    user_before, system_before = cpu_seconds(pids)
    result = load()
    user_after, system_after = cpu_seconds(pids)
    per_call = 1e6 / max(result.calls, 1)
    return result, ((user_after - user_before) * per_call, (system_after - system_before) * per_call)


def handled_by_code(metrics_port, method):
    """grpc_server_handled_total of `method` by status code, read from the
    Prometheus endpoint on `metrics_port`."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    counts = {}
    for line in text.splitlines():
        if line.startswith("grpc_server_handled_total{") and f'grpc_method="{method}"' in line:
            code = re.search(r'grpc_code="(\w+)"', line).group(1)
            counts[code] = counts.get(code, 0) + float(line.rsplit(" ", 1)[1])
    return counts


def not_ok_during(metrics_port, method, run):
    """Runs `run()` and returns its result with the calls of `method` that
    ended other than OK meanwhile, by code: h2load counts HTTP statuses only,
    and gRPC errors are HTTP 200, so a cell of fast errors would otherwise
    pass as a measurement."""
    before = handled_by_code(metrics_port, method)
    result = run()
    after = handled_by_code(metrics_port, method)
    errors = {code: int(after[code] - before.get(code, 0)) for code in after if code != "OK"}
    return result, {code: count for code, count in errors.items() if count}


def to_microseconds(text):
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(number) * {"us": 1, "ms": 1000, "s": 1_000_000}[unit]


def services_command(binary, port, metrics_port, data_dir):
    """The services without the gateway, as every proxy here is measured in front of them."""
    return [str(binary), "serve", "all", "--with-gateway", "false", "--simulated-feed", "false",
            "--grpc-addr", f"127.0.0.1:{port}", "--metrics-addr", f"127.0.0.1:{metrics_port}",
            "--data-dir", str(data_dir), "--log-filter", "warn"]


def gateway_command(binary, port, services_port, extra_args=()):
    """The gateway as its own process in front of the services: anonymous
    callers, local limits raised so none is refused, metrics on."""
    return [str(binary), "serve", "gateway", *extra_args, "--gateway-addr", f"127.0.0.1:{port}",
            "--metrics-addr", "127.0.0.1:0", "--auth-url", f"http://127.0.0.1:{services_port}",
            "--default-backend", f"http://127.0.0.1:{services_port}", "--log-filter", "warn",
            "--rate-limit-anonymous", UNLIMITED, "--rate-limit-internal", UNLIMITED,
            "--rate-limit-per-service", UNLIMITED]


def floor_command(binary, stack, port, services_port):
    """A floor relay (`stack` of FLOORS' values) on `port` in front of the
    services, as `make bench-proxies` builds it beside BINARY."""
    return [str(Path(binary).parent / "examples" / "floor_relay"), stack, str(port), str(services_port)]


def nginx_workers(master, count=NGINX_WORKERS, timeout=10.0):
    """The pids of nginx's workers, which serve the calls; the master
    listens before it has forked them all."""
    deadline = time.monotonic() + timeout
    while True:
        out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout
        workers = [int(pid) for pid in out.split()]
        if len(workers) >= count:
            return workers
        if time.monotonic() > deadline:
            raise RuntimeError(f"nginx started {len(workers)} of its {count} workers")
        time.sleep(0.1)


def nginx_conf(directory, port, backend, workers=NGINX_WORKERS, master_process=True):
    return f"""
worker_processes {workers};
master_process {"on" if master_process else "off"};
daemon off;
pid {directory}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {directory}/body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    upstream backend {{
        server 127.0.0.1:{backend};
        keepalive 64;
        keepalive_requests 100000000;
    }}
    server {{
        listen 127.0.0.1:{port} http2;
        keepalive_requests 100000000;
        grpc_buffer_size 1m;
        location / {{ grpc_pass grpc://backend; }}
    }}
}}
"""


def haproxy_conf(port, backend):
    return f"""
global
    nbthread 2
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend grpc
    bind 127.0.0.1:{port} proto h2
    default_backend services
backend services
    server services 127.0.0.1:{backend} proto h2
"""


def main():
    binary = Path(sys.argv[1]).resolve()
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    work = Path(tempfile.mkdtemp(prefix="wizdata-proxies-"))
    processes = []

    def start(command, port, **kwargs):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, **kwargs)
        processes.append(process)
        wait_for_port(port, process)
        return process

    try:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        services, services_metrics = free_port(), free_port()
        services_process = start(services_command(binary, services, services_metrics, work / "data"), services, env=env)
        key = subprocess.run([str(binary), "keys", "create", "--data-dir", str(work / "data"), "--name", "bench",
                              "--scopes", "all", "--tier", "internal"],
                             env=env, capture_output=True, text=True, check=True).stdout.strip()
        start_seconds = (int(time.time()) // 60 - 10_001) * 60
        subprocess.run([str(binary), "bench", "--target", f"http://127.0.0.1:{services}", "--api-key", key,
                        "candles", "--bars", "10000", "--calls", "1",
                        "--metrics-addr", f"127.0.0.1:{services_metrics}"], env=env, check=True,
                       stdout=subprocess.DEVNULL)

        def gateway(extra_env=None, extra_args=()):
            port = free_port()
            process = start(gateway_command(binary, port, services, extra_args), port, env={**env, **(extra_env or {})})
            return port, [process.pid]

        # Each target with the metrics port of the first process its calls
        # reach, and the processes whose CPU time it costs.
        targets = [("direct", services, (), services_metrics, [services_process.pid])]
        gateway_port, gateway_pids = gateway()
        targets.append(("wizdata gateway", gateway_port, (), gateway_port, gateway_pids))
        one_thread, one_thread_pids = gateway(extra_args=("--gateway-threads", "1"))
        targets.append(("wizdata gateway, one thread", one_thread, (), one_thread, one_thread_pids))
        nginx_port = free_port()
        (work / "nginx.conf").write_text(nginx_conf(work, nginx_port, services))
        nginx = start(["nginx", "-c", str(work / "nginx.conf"), "-p", str(work)], nginx_port)
        targets.append((f"nginx {nginx_version()}", nginx_port, (), services_metrics,
                        [nginx.pid, *nginx_workers(nginx.pid)]))
        haproxy_port = free_port()
        (work / "haproxy.cfg").write_text(haproxy_conf(haproxy_port, services))
        haproxy = start(["haproxy", "-f", str(work / "haproxy.cfg"), "-db"], haproxy_port, stderr=subprocess.DEVNULL)
        targets.append((f"HAProxy {haproxy_version()}", haproxy_port, (), services_metrics, [haproxy.pid]))
        for floor, stack in FLOORS.items():
            relay_port = free_port()
            relay = start(floor_command(binary, stack, relay_port, services), relay_port)
            targets.append((floor, relay_port, (), services_metrics, [relay.pid]))
        keyed_gateway, keyed_pids = gateway()
        targets.append(("wizdata gateway, API key", keyed_gateway, (f"authorization: Bearer {key}",), keyed_gateway,
                        keyed_pids))
        if os.environ.get("REDIS_URL"):
            redis_gateway, redis_pids = gateway({"REDIS_URL": os.environ["REDIS_URL"],
                                                 "WIZDATA_REDIS_PREFIX": f"bench-proxies-{os.getpid()}:"})
            targets.append(("wizdata gateway, Redis limits", redis_gateway, (), redis_gateway, redis_pids))

        start_time = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start_seconds))
        GRPCURL_REQUESTS["GetSymbol"] = '{"ticker": "AAPL"}'
        GRPCURL_REQUESTS["GetCandles"] = ('{"symbol": "NPN", "interval": "INTERVAL_ONE_MINUTE", '
                                          f'"startTime": "{start_time}", "pageSize": 10000}}')
        calls = {
            "GetSymbol": ("/wizdata.registry.v1.RegistryService/GetSymbol", get_symbol("AAPL")),
            "GetCandles 10,000 bars": ("/wizdata.marketdata.v1.MarketDataService/GetCandles",
                                       get_candles("NPN", start_seconds, 10_000)),
        }
        print("| call | target | " + " | ".join(f"{c * s} in flight: mean, req/s (x direct)" for c, s in IN_FLIGHT) + " |")
        print("|---|---|" + "---|" * len(IN_FLIGHT))
        cpu_rows = []
        for call, (path, body) in calls.items():
            body_file = work / f"{path.rsplit('/', 1)[1]}.bin"
            body_file.write_bytes(body)
            method = path.rsplit("/", 1)[1]
            for name, port, headers, *_ in targets:
                if name not in FLOORS:
                    check_answers(port, path, body_file, headers)
            samples = {(name, level): [] for name, *_ in targets for level in IN_FLIGHT}
            not_ok = {(name, level): Counter() for name, *_ in targets for level in IN_FLIGHT}
            for _ in range(rounds):
                for connections, streams in IN_FLIGHT:
                    for name, port, headers, metrics_port, pids in targets:
                        result, errors = not_ok_during(
                            metrics_port, method,
                            lambda: measured_load(
                                pids, lambda: h2load(port, path, body_file, connections, streams, seconds, headers)))
                        samples[(name, (connections, streams))].append(result)
                        not_ok[(name, (connections, streams))].update(errors)
            medians = {cell: (statistics.median(load.mean_us for load, _ in runs),
                              statistics.median(load.rps for load, _ in runs))
                       for cell, runs in samples.items()}
            cpu = {cell: tuple(statistics.median(per_call[part] for _, per_call in runs) for part in (0, 1))
                   for cell, runs in samples.items()}
            for name, *_ in targets:
                cells = [f"{user:,.1f} + {system:,.1f} µs" for user, system in (cpu[(name, level)] for level in IN_FLIGHT)]
                cpu_rows.append(f"| {call} | {name} | " + " | ".join(cells) + " |")
            direct = [medians[("direct", level)] for level in IN_FLIGHT]
            for name, port, headers, *_ in targets:
                results = [medians[(name, level)] for level in IN_FLIGHT]
                cells = [f"{mean:,.0f} µs (+{mean - base_mean:,.0f}), {rps:,.0f} ({rps / base_rps:.2f}x)"
                         if name != "direct" else f"{mean:,.0f} µs, {rps:,.0f}"
                         for (mean, rps), (base_mean, base_rps) in zip(results, direct)]
                cells = [cell + (f" (not OK: {dict(not_ok[(name, level)])})" if not_ok[(name, level)] else "")
                         for cell, level in zip(cells, IN_FLIGHT)]
                # h2load counts HTTP statuses only: a target that started refusing under
                # load (gRPC errors are HTTP 200) would look fast, so check it again.
                try:
                    if name not in FLOORS:
                        check_answers(port, path, body_file, headers)
                except AssertionError as error:
                    cells[-1] += f" (not OK after this load: {str(error).strip()[:120]})"
                print(f"| {call} | {name} | " + " | ".join(cells) + " |", flush=True)
        print()
        print("| call | target (its processes' CPU) | "
              + " | ".join(f"{c * s} in flight: CPU per call, user + system" for c, s in IN_FLIGHT) + " |")
        print("|---|---|" + "---|" * len(IN_FLIGHT))
        print("\n".join(cpu_rows), flush=True)
        protocols_table(work, gateway_port, start_seconds, start_time, seconds)
    finally:
        for process in reversed(processes):
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(work, ignore_errors=True)


def protocols_table(work, port, start_seconds, start_time, seconds):
    """GetSymbol and GetCandles through the gateway in every protocol it
    speaks; the gateway's own metrics count each call by its gRPC code."""
    get_symbol_path = "/wizdata.registry.v1.RegistryService/GetSymbol"
    candles_path = "/wizdata.marketdata.v1.MarketDataService/GetCandles"
    symbol_json = '{"ticker":"AAPL"}'
    candles_json = ('{"symbol":"NPN","interval":"INTERVAL_ONE_MINUTE",'
                    f'"startTime":"{start_time}","pageSize":10000}}')
    quoted = urllib.parse.quote(symbol_json, safe="")
    rows = [
        ("GetSymbol", "native gRPC", get_symbol_path, get_symbol("AAPL"), "application/grpc"),
        ("GetSymbol", "Connect JSON", get_symbol_path, symbol_json.encode(), "application/json"),
        ("GetSymbol", "Connect binary", get_symbol_path, get_symbol("AAPL")[5:], "application/proto"),
        ("GetSymbol", "Connect GET", f"{get_symbol_path}?connect=v1&encoding=json&message={quoted}", None, None),
        ("GetSymbol", "REST GET", "/v1/symbols/AAPL", None, None),
        ("GetCandles 10,000 bars", "native gRPC", candles_path, get_candles("NPN", start_seconds, 10_000),
         "application/grpc"),
        ("GetCandles 10,000 bars", "Connect JSON", candles_path, candles_json.encode(), "application/json"),
        ("GetCandles 10,000 bars", "REST GET",
         f"/v1/symbols/NPN/candles?interval=INTERVAL_ONE_MINUTE&start_time={start_time}&page_size=10000", None, None),
    ]
    print()
    print("| call | protocol through the gateway | "
          + " | ".join(f"{c * s} in flight: mean, req/s (x native gRPC)" for c, s in IN_FLIGHT) + " |")
    print("|---|---|" + "---|" * len(IN_FLIGHT))
    native = {}
    for index, (call, protocol, path, body, content_type) in enumerate(rows):
        body_file = None
        if body is not None:
            body_file = work / f"protocol-{index}.bin"
            body_file.write_bytes(body)
        method = path.split("?")[0].rsplit("/", 1)[1] if path.startswith("/wizdata") else call.split()[0]
        measured = [not_ok_during(port, method,
                                  lambda: h2load(port, path, body_file, c, s, seconds, (), content_type))
                    for c, s in IN_FLIGHT]
        results = [(load.mean_us, load.rps) for load, _ in measured]
        base = native.setdefault(call, results)
        cells = [f"{mean:,.0f} µs, {rps:,.0f} ({base_rps / rps:.2f}x the cost)"
                 for (mean, rps), (_, base_rps) in zip(results, base)]
        cells = [cell + (f" (not OK: {errors})" if errors else "") for cell, (_, errors) in zip(cells, measured)]
        print(f"| {call} | {protocol} | " + " | ".join(cells) + " |", flush=True)


def nginx_version():
    out = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr
    return re.search(r"nginx/([\d.]+)", out).group(1)


def haproxy_version():
    out = subprocess.run(["haproxy", "-v"], capture_output=True, text=True).stdout
    return re.search(r"version ([\d.]+)", out).group(1)


if __name__ == "__main__":
    main()
