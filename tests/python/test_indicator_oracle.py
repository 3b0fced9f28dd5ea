"""The indicator engine against TA-Lib, the reference traders check with: the
ORCL daily history goes to ComputeSeries for every indicator and a spread of
parameters, and every value must agree with TA-Lib's on the same data to
1e-9 relative (1e-9 absolute near zero), starting at the same index."""

import csv
import datetime
import math
import os
from pathlib import Path

import grpc
import numpy as np
import pytest
import talib

SAMPLE_DATA = os.environ.get("WIZDATA_SAMPLE_DATA")
pytestmark = pytest.mark.skipif(not SAMPLE_DATA, reason="WIZDATA_SAMPLE_DATA is unset")

# (our name, our parameters, TA-Lib function, TA-Lib inputs, TA-Lib parameters)
CASES = []
for period in (2, 5, 30, 200):
    for name in ("SMA", "EMA", "WMA"):
        CASES.append((name, {"time_period": period}, name, "c", {"timeperiod": period}))
for period in (2, 14, 50):
    CASES.append(("RSI", {"time_period": period}, "RSI", "c", {"timeperiod": period}))
    CASES.append(("WILLR", {"time_period": period}, "WILLR", "hlc", {"timeperiod": period}))
    CASES.append(("CCI", {"time_period": period}, "CCI", "hlc", {"timeperiod": period}))
    CASES.append(("ADX", {"time_period": period}, "ADX", "hlc", {"timeperiod": period}))
for period in (1, 14, 30):
    CASES.append(("ATR", {"time_period": period}, "ATR", "hlc", {"timeperiod": period}))
    CASES.append(("PLUS_DI", {"time_period": period}, "PLUS_DI", "hlc", {"timeperiod": period}))
    CASES.append(("MINUS_DI", {"time_period": period}, "MINUS_DI", "hlc", {"timeperiod": period}))
for fast, slow, signal in ((12, 26, 9), (5, 35, 5), (26, 12, 9), (3, 10, 1)):
    CASES.append(("MACD", {"fast_period": fast, "slow_period": slow, "signal_period": signal}, "MACD", "c",
                  {"fastperiod": fast, "slowperiod": slow, "signalperiod": signal}))
for fast_k, slow_k, k_type, slow_d, d_type in ((5, 3, 0, 3, 0), (14, 3, 0, 3, 0), (5, 3, 1, 3, 1),
                                              (14, 5, 2, 3, 2), (9, 1, 0, 1, 0)):
    CASES.append(("STOCH", {"fast_k_period": fast_k, "slow_k_period": slow_k, "slow_k_ma_type": k_type,
                            "slow_d_period": slow_d, "slow_d_ma_type": d_type}, "STOCH", "hlc",
                  {"fastk_period": fast_k, "slowk_period": slow_k, "slowk_matype": k_type,
                   "slowd_period": slow_d, "slowd_matype": d_type}))
for period, up, down, ma_type in ((5, 2, 2, 0), (20, 2, 2, 0), (20, 1.5, 2.5, 0), (10, 2, 2, 1), (10, 2, 2, 2)):
    CASES.append(("BBANDS", {"time_period": period, "nb_dev_up": up, "nb_dev_dn": down, "ma_type": ma_type},
                  "BBANDS", "c", {"timeperiod": period, "nbdevup": up, "nbdevdn": down, "matype": ma_type}))
# Every MA type TA-Lib numbers (but 7, MAMA), through the indicators that take one.
for ma_type in (3, 4, 5, 6, 8):
    for period in (2, 5, 20):
        CASES.append(("BBANDS", {"time_period": period, "ma_type": ma_type}, "BBANDS", "c",
                      {"timeperiod": period, "matype": ma_type}))
    CASES.append(("STOCH", {"fast_k_period": 14, "slow_k_period": 4, "slow_k_ma_type": ma_type,
                            "slow_d_period": 5, "slow_d_ma_type": ma_type}, "STOCH", "hlc",
                  {"fastk_period": 14, "slowk_period": 4, "slowk_matype": ma_type,
                   "slowd_period": 5, "slowd_matype": ma_type}))
CASES.append(("BBANDS", {"time_period": 6, "ma_type": 5}, "BBANDS", "c", {"timeperiod": 6, "matype": 5}))
CASES.append(("OBV", {}, "OBV", "cv", {}))


@pytest.fixture(scope="module")
def history():
    rows = list(csv.DictReader((Path(SAMPLE_DATA) / "orcl-1995-2014.csv").open()))
    columns = {key: np.array([float(row[name]) for row in rows])
               for key, name in (("o", "Open"), ("h", "High"), ("l", "Low"), ("c", "Close"), ("v", "Volume"))}
    columns["dates"] = [row["Date"] for row in rows]
    return columns


def candles(stubs, history):
    from wizdata.type.v1 import market_pb2
    from google.protobuf.timestamp_pb2 import Timestamp
    result = []
    for index, date in enumerate(history["dates"]):
        day = datetime.datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=datetime.timezone.utc)
        result.append(market_pb2.Candle(
            open_time=Timestamp(seconds=int(day.timestamp())), open=history["o"][index],
            high=history["h"][index], low=history["l"][index], close=history["c"][index],
            volume=history["v"][index]))
    return result


def agree(ours, theirs):
    return abs(ours - theirs) <= 1e-9 * max(abs(ours), abs(theirs)) or abs(ours - theirs) <= 1e-9


@pytest.mark.parametrize("name,parameters,function,inputs,talib_parameters", CASES,
                         ids=[f"{case[0]}-{'-'.join(str(v) for v in case[1].values())}" for case in CASES])
def test_every_value_agrees_with_talib(mesh, stubs, history, name, parameters, function, inputs,
                                       talib_parameters):
    from wizdata.indicator.v1 import indicator_service_pb2 as pb
    from wizdata.indicator.v1 import indicator_service_pb2_grpc as rpc

    arguments = [history[key] for key in inputs]
    expected = getattr(talib, function)(*arguments, **talib_parameters)
    expected = list(expected) if isinstance(expected, tuple) else [expected]

    request = pb.ComputeSeriesRequest(candles=candles(stubs, history),
                                      indicators=[pb.IndicatorSpec(name=name, parameters=parameters)])
    with grpc.insecure_channel(mesh.target, options=[("grpc.max_receive_message_length", 64 << 20)]) as channel:
        result = rpc.IndicatorServiceStub(channel).ComputeSeries(request, timeout=30).results[0]

    count = len(history["c"])
    assert len(result.outputs) == len(expected)
    for output, reference in zip(result.outputs, expected):
        first_valid = next(i for i, value in enumerate(reference) if not math.isnan(value))
        assert result.begin_index == first_valid, f"{output.name} starts where TA-Lib's does"
        assert len(output.values) == count - first_valid
        mismatches = [(first_valid + i, ours, reference[first_valid + i])
                      for i, ours in enumerate(output.values) if not agree(ours, reference[first_valid + i])]
        assert not mismatches, f"{output.name}: {len(mismatches)} values differ, first {mismatches[:3]}"
    assert result.lookback == result.begin_index


def test_list_indicators_describes_every_indicator(mesh, stubs):
    from wizdata.indicator.v1 import indicator_service_pb2 as pb
    from wizdata.indicator.v1 import indicator_service_pb2_grpc as rpc
    with grpc.insecure_channel(mesh.target) as channel:
        listed = rpc.IndicatorServiceStub(channel).ListIndicators(pb.ListIndicatorsRequest(), timeout=5)
    names = {indicator.name for indicator in listed.indicators}
    assert names == {"SMA", "EMA", "WMA", "MACD", "RSI", "STOCH", "WILLR", "CCI", "BBANDS", "ATR", "ADX",
                     "PLUS_DI", "MINUS_DI", "OBV"}
    macd = next(indicator for indicator in listed.indicators if indicator.name == "MACD")
    assert [(p.name, p.default_value, p.min_value) for p in macd.parameters] == [
        ("fast_period", 12, 2), ("slow_period", 26, 2), ("signal_period", 9, 1)]
    assert list(macd.outputs) == ["macd", "macdsignal", "macdhist"]
