"""How much code a proxied call runs, the gateway's beside nginx's and two relays', counted by callgrind.

    bench/footprint.py BINARY [CALLS]

Starts the services without the gateway, then, one after the other under
valgrind's callgrind: the gateway on one lane (anonymous callers, local
limits raised so none is refused, metrics on), nginx with one worker and
no master (`grpc_pass`, as `make bench-proxies` configures it), and the two
relays `make bench-proxies` calls floors (on the `h2` crate, and on the
mesh's own HTTP/2, each checking nothing), built beside BINARY. Each is sent
50 GetSymbol calls to warm up, then CALLS (2,000) more at 1 in flight with
h2load, counted alone (`callgrind_control --instr`). Prints a Markdown table:

- instructions a call;
- the code run on every call: the 64-byte lines holding an instruction
  executed at least CALLS times, in KiB, and the 4 KiB pages they fall in.

Why: at 1 in flight each leg of a call starts with caches the services have
just used, so a proxy pays for each line of code it runs once per call, not
for each instruction (BENCHMARKS.md, issue #15). Instruction counts are
repeatable whatever else the machine is doing; these are exact for the
binary and configuration measured.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from proxies import FLOORS, floor_command, free_port, gateway_command, get_symbol, h2load, nginx_conf, services_command, wait_for_port

PATH = "/wizdata.registry.v1.RegistryService/GetSymbol"
WARM_UP_CALLS = 50
LINE_BYTES = 64
PAGE_BYTES = 4096


def h2load_calls(port, body_file, calls):
    """`calls` GetSymbol calls at 1 in flight, every one answered."""
    load = h2load(port, PATH, body_file, 1, 1, None, calls=calls)
    assert load.calls == calls, f"{load.calls} of {calls} calls succeeded"


def under_callgrind(command, port, body_file, calls, out_file, env):
    """Runs `command` under callgrind, counting only the `calls` measured."""
    process = subprocess.Popen(["valgrind", "--tool=callgrind", "--instr-atstart=no", "--dump-instr=yes",
                                "--compress-pos=no", "--compress-strings=no", f"--callgrind-out-file={out_file}",
                                *command], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_for_port(port, process, timeout=120)
        h2load_calls(port, body_file, WARM_UP_CALLS)
        subprocess.run(["callgrind_control", "--instr=on", str(process.pid)], check=True, capture_output=True)
        h2load_calls(port, body_file, calls)
        subprocess.run(["callgrind_control", "--instr=off", str(process.pid)], check=True, capture_output=True)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
    return footprint(out_file, calls)


def footprint(out_file, calls):
    """(instructions a call, code lines run on every call, their pages) from a
    callgrind file written with --dump-instr=yes and nothing compressed."""
    executions = defaultdict(int)  # (object, address): times run
    instructions = 0
    obj, after_call = None, False
    with open(out_file) as lines:
        for line in lines:
            if line.startswith("ob="):
                obj = line[3:].strip()
            elif line.startswith("calls="):
                after_call = True  # the next cost line is the callee's, inclusive
            elif line.startswith("0x"):
                if not after_call:
                    address, _, count = line.split()[:3]
                    key = (obj, int(address, 16))
                    executions[key] = max(executions[key], int(count))
                    instructions += int(count)
                after_call = False
            else:
                after_call = False
    every_call = [(obj, address) for (obj, address), count in executions.items() if count >= calls]
    code_lines = {(obj, address // LINE_BYTES) for obj, address in every_call}
    pages = {(obj, address // PAGE_BYTES) for obj, address in every_call}
    return instructions / calls, len(code_lines), len(pages)


def main():
    binary = Path(sys.argv[1]).resolve()
    calls = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    work = Path(tempfile.mkdtemp(prefix="wizdata-footprint-"))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    services_port = free_port()
    services = subprocess.Popen(services_command(binary, services_port, 0, work / "data"),
                                stdout=subprocess.DEVNULL, env=env)
    try:
        wait_for_port(services_port, services)
        body_file = work / "GetSymbol.bin"
        body_file.write_bytes(get_symbol("AAPL"))
        gateway_port = free_port()
        gateway = gateway_command(binary, gateway_port, services_port, ("--gateway-threads", "1"))
        nginx_port = free_port()
        (work / "nginx.conf").write_text(nginx_conf(work, nginx_port, services_port, workers=1, master_process=False))
        nginx = ["nginx", "-c", str(work / "nginx.conf"), "-p", str(work)]
        relays = []
        for floor, stack in FLOORS.items():
            relay_port = free_port()
            relays.append((floor, floor_command(binary, stack, relay_port, services_port), relay_port))
        print(f"GetSymbol at 1 in flight, {calls:,} calls counted")
        print()
        print("| proxy | instructions a call | code run on every call | its 4 KiB pages |")
        print("|---|---:|---:|---:|")
        for name, command, port in [("wizdata gateway, one lane", gateway, gateway_port),
                                    ("nginx, one worker", nginx, nginx_port), *relays]:
            per_call, code_lines, pages = under_callgrind(command, port, body_file, calls, work / "callgrind.out", env)
            print(f"| {name} | {per_call / 1000:,.1f}k | {code_lines * LINE_BYTES / 1024:,.0f} KiB "
                  f"({code_lines:,} lines) | {pages:,} |", flush=True)
    finally:
        services.send_signal(signal.SIGTERM)
        services.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
