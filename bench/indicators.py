"""TA-Lib's side of `make bench-indicators`.

  indicators.py bars PATH            write the benchmark's bars (seeded, so every run reads the same)
  indicators.py compare PATH CRIT    time TA-Lib on those bars and print, per indicator, its ns/bar
                                     next to ours from criterion's estimates in CRIT, and the ratio

Bars are raw little-endian float64, five per bar: open, high, low, close, volume.
"""

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import talib

BARS = 1_000_000
REPEATS = 20

# Every indicator at TA-Lib's defaults, as the criterion benchmark runs ours:
# name -> which columns TA-Lib takes.
INDICATORS = {
    "SMA": "c", "EMA": "c", "WMA": "c", "MACD": "c", "RSI": "c", "STOCH": "hlc", "WILLR": "hlc", "CCI": "hlc",
    "BBANDS": "c", "ATR": "hlc", "ADX": "hlc", "PLUS_DI": "hlc", "MINUS_DI": "hlc", "OBV": "cv",
}


def write_bars(path):
    rng = np.random.default_rng(20261121)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, BARS)))
    open_ = np.concatenate(([100.0], close[:-1])) * (1.0 + rng.normal(0.0, 0.002, BARS))
    high = np.maximum(open_, close) * (1.0 + np.abs(rng.normal(0.0, 0.005, BARS)))
    low = np.minimum(open_, close) * (1.0 - np.abs(rng.normal(0.0, 0.005, BARS)))
    volume = rng.uniform(1e3, 1e6, BARS).round()
    bars = np.column_stack((open_, high, low, close, volume)).astype("<f8")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    bars.tofile(path)


def read_bars(path):
    bars = np.fromfile(path, dtype="<f8").reshape(-1, 5)
    return {key: np.ascontiguousarray(bars[:, column]) for column, key in enumerate("ohlcv")}


def talib_ns_per_bar(name, columns):
    function = getattr(talib, name)
    inputs = [columns[key] for key in INDICATORS[name]]
    function(*inputs)  # warm up
    timings = []
    for _ in range(REPEATS):
        start = time.perf_counter_ns()
        function(*inputs)
        timings.append(time.perf_counter_ns() - start)
    return statistics.median(timings) / len(columns["c"])


def ours_ns_per_bar(criterion, name, bars):
    estimates = json.loads((Path(criterion) / "indicators" / name / "new" / "estimates.json").read_text())
    return estimates["median"]["point_estimate"] / bars


def compare(path, criterion):
    columns = read_bars(path)
    bars = len(columns["c"])
    print(f"{bars:,} bars, medians; ratio = ours / TA-Lib (below 1: faster)\n")
    print("| indicator | WizData ns/bar | TA-Lib ns/bar | ratio |")
    print("|---|---:|---:|---:|")
    for name in INDICATORS:
        ours = ours_ns_per_bar(criterion, name, bars)
        theirs = talib_ns_per_bar(name, columns)
        print(f"| {name} | {ours:.2f} | {theirs:.2f} | {ours / theirs:.2f} |")


if __name__ == "__main__":
    match sys.argv[1:]:
        case ["bars", path]:
            write_bars(path)
        case ["compare", path, criterion]:
            compare(path, criterion)
        case _:
            sys.exit(__doc__)
