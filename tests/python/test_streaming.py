"""Streaming through the real binary with grpcio: live events from the
simulated feed that `make run` starts, numbered without gaps, and a
bidirectional Session acknowledging its commands."""

import queue

import grpc
import pytest


@pytest.fixture(scope="module")
def streaming(stubs):
    from wizdata.streaming.v1 import streaming_service_pb2, streaming_service_pb2_grpc
    return streaming_service_pb2, streaming_service_pb2_grpc


def test_subscribe_delivers_live_trades_numbered_without_gaps(mesh, streaming):
    pb, grpc_pb = streaming
    with grpc.insecure_channel(mesh.target) as channel:
        stub = grpc_pb.StreamingServiceStub(channel)
        events = stub.Subscribe(pb.SubscribeRequest(symbols=["BTC/USDT"], channels=[pb.CHANNEL_TRADES]), timeout=60)
        trades = []
        for message in events:
            if message.WhichOneof("payload") == "event" and message.event.WhichOneof("payload") == "trade":
                trades.append(message.event)
            if len(trades) == 5:
                events.cancel()
                break
    assert all(event.symbol == "BTC/USDT" and event.trade.price > 0 for event in trades)
    sequences = [event.sequence for event in trades]
    assert sequences == list(range(sequences[0], sequences[0] + 5)), sequences


def test_an_unknown_symbol_is_invalid_argument(mesh, streaming):
    pb, grpc_pb = streaming
    with grpc.insecure_channel(mesh.target) as channel, pytest.raises(grpc.RpcError) as refused:
        stub = grpc_pb.StreamingServiceStub(channel)
        next(iter(stub.Subscribe(pb.SubscribeRequest(symbols=["NOPE"], channels=[pb.CHANNEL_TRADES]), timeout=10)))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_session_acknowledges_each_command(mesh, streaming):
    pb, grpc_pb = streaming
    commands = queue.Queue()

    def requests():
        while (command := commands.get()) is not None:
            yield command

    with grpc.insecure_channel(mesh.target) as channel:
        stub = grpc_pb.StreamingServiceStub(channel)
        responses = stub.Session(requests(), timeout=60)

        def ack_of(command):
            commands.put(command)
            for message in responses:
                if message.WhichOneof("payload") == "ack":
                    return message.ack
            raise AssertionError("the session ended without an acknowledgement")

        subscribed = ack_of(pb.SessionRequest(command_id="s1", subscribe=pb.SubscribeCommand(
            symbols=["ETH/USDT"], channels=[pb.CHANNEL_QUOTES])))
        assert (subscribed.command_id, subscribed.code, subscribed.active_subscriptions) == ("s1", 0, 1)
        never = ack_of(pb.SessionRequest(command_id="u1", unsubscribe=pb.UnsubscribeCommand(
            symbols=["AAPL"], channels=[pb.CHANNEL_TRADES])))
        assert (never.code, never.active_subscriptions) == (grpc.StatusCode.NOT_FOUND.value[0], 1)
        commands.put(None)
        responses.cancel()
