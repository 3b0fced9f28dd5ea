"""The peers' side of `make bench-indicators`.

  indicators.py bars PATH            write the benchmark's bars (seeded, so every run reads the same)
  indicators.py compare PATH CRIT    time TA-Lib, Tulip Indicators (tulipy) and kand on those bars and
                                     print, per indicator, each one's ns/bar next to ours from
                                     criterion's estimates in CRIT, and ours over the fastest peer's

Bars are raw little-endian float64, five per bar: open, high, low, close, volume.
"""

import json
import statistics
import sys
import time
from pathlib import Path

import kand
import numpy as np
import talib
import tulipy

BARS = 1_000_000
REPEATS = 20

# Every indicator at TA-Lib's defaults, as the criterion benchmark runs ours:
# name -> which columns it takes.
INDICATORS = {
    "SMA": "c", "EMA": "c", "WMA": "c", "MACD": "c", "RSI": "c", "STOCH": "hlc", "WILLR": "hlc", "CCI": "hlc",
    "BBANDS": "c", "ATR": "hlc", "ADX": "hlc", "PLUS_DI": "hlc", "MINUS_DI": "hlc", "OBV": "cv",
}

# The same indicators with the same parameters in each peer, as near as each
# allows: name -> a call on the columns. Tulip has one DI for both sides, and
# kand returns its intermediate series too (its API's cost, counted).
PERIODS = {"SMA": 30, "EMA": 30, "WMA": 30, "RSI": 14, "WILLR": 14, "CCI": 14, "ATR": 14, "ADX": 14}
PEERS = {
    "TA-Lib": {name: (lambda name: lambda *columns: getattr(talib, name)(*columns))(name) for name in INDICATORS},
    "Tulip": {
        **{name: (lambda f, n: lambda *columns: f(*columns, n))(getattr(tulipy, name.lower()), period)
           for name, period in PERIODS.items()},
        "MACD": lambda c: tulipy.macd(c, 12, 26, 9),
        "STOCH": lambda h, l, c: tulipy.stoch(h, l, c, 5, 3, 3),
        "BBANDS": lambda c: tulipy.bbands(c, 5, 2.0),
        "PLUS_DI": lambda h, l, c: tulipy.di(h, l, c, 14),
        "MINUS_DI": lambda h, l, c: tulipy.di(h, l, c, 14),
        "OBV": lambda c, v: tulipy.obv(c, v),
    },
    "kand": {
        **{name: (lambda f, n: lambda *columns: f(*columns, n))(getattr(kand, name.lower()), period)
           for name, period in PERIODS.items()},
        "MACD": lambda c: kand.macd(c, 12, 26, 9),
        "STOCH": lambda h, l, c: kand.stoch(h, l, c, 5, 3, 3),
        "BBANDS": lambda c: kand.bbands(c, 5, 2.0, 2.0),
        "PLUS_DI": lambda h, l, c: kand.plus_di(h, l, c, 14),
        "MINUS_DI": lambda h, l, c: kand.minus_di(h, l, c, 14),
        "OBV": lambda c, v: kand.obv(c, v),
    },
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


def peer_ns_per_bar(peer, name, columns):
    function = PEERS[peer][name]
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
    print(f"{bars:,} bars, medians in ns/bar; ratio = ours / the fastest peer's (below 1: faster)\n")
    print("| indicator | WizData | " + " | ".join(PEERS) + " | ratio |")
    print("|---|---:|" + "---:|" * len(PEERS) + "---:|")
    for name in INDICATORS:
        ours = ours_ns_per_bar(criterion, name, bars)
        theirs = {peer: peer_ns_per_bar(peer, name, columns) for peer in PEERS}
        fastest = min(theirs, key=theirs.get)
        cells = " | ".join(f"{value:.2f}" for value in theirs.values())
        print(f"| {name} | {ours:.2f} | {cells} | {ours / theirs[fastest]:.2f} ({fastest}) |")


if __name__ == "__main__":
    match sys.argv[1:]:
        case ["bars", path]:
            write_bars(path)
        case ["compare", path, criterion]:
            compare(path, criterion)
        case _:
            sys.exit(__doc__)
