"""The dashboard's weight and its time to first candles, in one run.

    bench/dashboard.py BINARY [LOADS]

Reports the built JavaScript and CSS (web/dist/assets) raw and gzipped, as
the gateway sends them; then starts `serve all` (SQLite, the simulated feed's
two days of history) and opens the page LOADS times (default 7) in headless
Chromium (Debian's, driven by Playwright) on loopback, each in a fresh
browser context (nothing cached), and reports when the chart's first
candles were painted, in ms since navigation began: median and worst.
"""

import gzip
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
DIST = ROOT / "web" / "dist"
CHROMIUM = "/usr/bin/chromium"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def weights():
    rows = []
    for path in sorted((DIST / "assets").iterdir()):
        raw = path.read_bytes()
        rows.append((path.suffix, len(raw), len(gzip.compress(raw, compresslevel=9))))
    return rows


def main():
    binary = sys.argv[1]
    loads = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    print("| asset | raw KB | gzipped KB |\n|---|---:|---:|")
    for suffix, raw, packed in weights():
        print(f"| {suffix} | {raw / 1024:.1f} | {packed / 1024:.1f} |")

    with tempfile.TemporaryDirectory() as data:
        grpc_port, gateway_port, metrics_port = free_port(), free_port(), free_port()
        server = subprocess.Popen(
            [binary, "serve", "all", "--grpc-addr", f"127.0.0.1:{grpc_port}",
             "--gateway-addr", f"127.0.0.1:{gateway_port}", "--metrics-addr", f"127.0.0.1:{metrics_port}",
             "--data-dir", data, "--dashboard-dir", str(DIST), "--feed-symbols", "BTC/USDT",
             "--log-filter", "warn"],
        )
        try:
            time.sleep(3)  # the feed's backfill
            painted = []
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                for _ in range(loads):
                    context = browser.new_context(viewport={"width": 1400, "height": 850})
                    page = context.new_page()
                    page.goto(f"http://127.0.0.1:{gateway_port}/?symbol=BTC/USDT&interval=1m")
                    page.wait_for_function("() => window.wizdata && wizdata.chart().firstDrawnAt !== undefined",
                                           timeout=30_000)
                    painted.append(page.evaluate("() => wizdata.chart().firstDrawnAt"))
                    context.close()
                browser.close()
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait()
    print(f"\nfirst candles painted, {loads} cold loads: median {statistics.median(painted):.0f} ms, "
          f"worst {max(painted):.0f} ms ({', '.join(f'{value:.0f}' for value in painted)})")


if __name__ == "__main__":
    main()
