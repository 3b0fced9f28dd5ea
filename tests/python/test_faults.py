"""Crashes: the real binary killed with SIGKILL in the middle of ingest, then
restarted on the same data (SQLite, and PostgreSQL when
WIZDATA_TEST_DATABASE_URL is set). Every tick of every call that was
answered OK is there, and none twice: each call writes a minute bar of its
own, so a bar holds all of its call's trades or (for a call cut off by the
kill) none."""

import os
import random
import subprocess
import tempfile
import threading
import time
import uuid

import grpc
import pytest

from conftest import MeshProcess

TRADES_PER_CALL = 50
ROUNDS = 3
WRITERS = 4


def market_data(stubs):
    from wizdata.marketdata.v1 import market_data_service_pb2, market_data_service_pb2_grpc
    from google.protobuf import timestamp_pb2
    return market_data_service_pb2, market_data_service_pb2_grpc, timestamp_pb2


class PostgresDatabase:
    """A database of the test's own on the server WIZDATA_TEST_DATABASE_URL
    names, dropped afterwards."""

    def __init__(self, server_url):
        self.server_url = server_url
        self.name = f"wizdata_crash_{uuid.uuid4().hex[:12]}"
        self._psql(f"CREATE DATABASE {self.name}")
        self.url = server_url.rsplit("/", 1)[0] + "/" + self.name

    def _psql(self, command):
        subprocess.run(["psql", self.server_url, "-q", "-c", command], check=True, capture_output=True, timeout=60)

    def drop(self):
        self._psql(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


def backends():
    server = os.environ.get("WIZDATA_TEST_DATABASE_URL")
    return [pytest.param(None, id="sqlite"),
            pytest.param(server, id="postgres",
                         marks=pytest.mark.skipif(not server, reason="WIZDATA_TEST_DATABASE_URL is unset"))]


def ingest_until_killed(mesh, stubs, first_call, base_seconds, kill_after):
    """WRITERS threads ingest one call after another, each call's trades in
    minute bar `base + call`; the mesh is SIGKILLed after `kill_after`
    seconds. Returns the calls answered OK and the calls sent."""
    pb, pb_grpc, timestamp_pb2 = market_data(stubs)
    next_call = iter(range(first_call, first_call + 1_000_000))
    lock = threading.Lock()
    acknowledged, sent = set(), set()
    stop = threading.Event()

    def writer():
        with grpc.insecure_channel(mesh.target) as channel:
            stub = pb_grpc.MarketDataServiceStub(channel)
            metadata = [("authorization", f"Bearer {mesh.admin_key}")]
            while not stop.is_set():
                with lock:
                    call = next(next_call)
                    sent.add(call)
                bar = base_seconds + call * 60
                ticks = [pb.Tick(symbol="AAPL", time=timestamp_pb2.Timestamp(seconds=bar + n % 60),
                                 trade=pb.Trade(price=100.0 + n, size=1.0))
                         for n in range(TRADES_PER_CALL)]
                try:
                    answer = stub.IngestTicks(iter([pb.IngestTicksRequest(ticks=ticks)]), metadata=metadata, timeout=30)
                except grpc.RpcError:
                    return
                assert answer.accepted == TRADES_PER_CALL, answer
                with lock:
                    acknowledged.add(call)

    threads = [threading.Thread(target=writer) for _ in range(WRITERS)]
    for thread in threads:
        thread.start()
    time.sleep(kill_after)
    mesh.kill()
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    return acknowledged, sent


def bars_by_call(mesh, stubs, base_seconds, calls):
    """Trade count and volume of each call's minute bar, read back."""
    pb, pb_grpc, timestamp_pb2 = market_data(stubs)
    found = {}
    with grpc.insecure_channel(mesh.target) as channel:
        stub = pb_grpc.MarketDataServiceStub(channel)
        metadata = [("authorization", f"Bearer {mesh.admin_key}")]
        page_token = ""
        while True:
            answer = stub.GetCandles(pb.GetCandlesRequest(
                symbol="AAPL", interval=1,  # INTERVAL_ONE_MINUTE
                start_time=timestamp_pb2.Timestamp(seconds=base_seconds),
                end_time=timestamp_pb2.Timestamp(seconds=base_seconds + (calls + 1) * 60),
                page_size=1000, page_token=page_token), metadata=metadata, timeout=30)
            for candle in answer.candles:
                found[(candle.open_time.seconds - base_seconds) // 60] = (candle.trade_count, candle.volume)
            page_token = answer.next_page_token
            if not page_token:
                return found


@pytest.mark.parametrize("server_url", backends())
def test_sigkill_mid_ingest_loses_no_acknowledged_tick_and_doubles_none(stubs, server_url):
    database = PostgresDatabase(server_url) if server_url else None
    data_dir = tempfile.TemporaryDirectory()
    base_seconds = (int(time.time()) // 60 - 200_000) * 60
    rng = random.Random(16)
    acknowledged, sent = set(), set()
    admin_key = None
    try:
        for _ in range(ROUNDS):
            mesh = MeshProcess(["--simulated-feed", "false"], data_dir=data_dir,
                               database_url=database and database.url, admin_key=admin_key)
            admin_key = mesh.admin_key
            round_acknowledged, round_sent = ingest_until_killed(
                mesh, stubs, len(sent), base_seconds, kill_after=rng.uniform(1.5, 3.0))
            acknowledged |= round_acknowledged
            sent |= round_sent
        mesh = MeshProcess(["--simulated-feed", "false"], data_dir=data_dir,
                           database_url=database and database.url, admin_key=admin_key)
        try:
            bars = bars_by_call(mesh, stubs, base_seconds, len(sent))
        finally:
            mesh.process.terminate()
            mesh.process.wait(timeout=30)
    finally:
        data_dir.cleanup()
        if database:
            database.drop()

    assert len(acknowledged) > 20, f"the kill came after some calls were answered ({len(acknowledged)})"
    whole = (TRADES_PER_CALL, float(TRADES_PER_CALL))
    missing = [call for call in acknowledged if bars.get(call) != whole]
    assert not missing, f"answered OK but not all there: {[(call, bars.get(call)) for call in missing[:5]]}"
    partial = {call: bar for call, bar in bars.items() if bar != whole}
    assert not partial, f"a bar holds part of a call, or a call twice: {list(partial.items())[:5]}"
    assert set(bars) <= sent, "nothing written that was not sent"
    print(f"{len(sent)} calls sent over {ROUNDS} kills, {len(acknowledged)} answered OK, "
          f"{len(bars) - len(acknowledged)} written but cut off before their answer; "
          f"{len(bars) * TRADES_PER_CALL} ticks checked")
