import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from wizdata.auth.v1 import access_pb2 as _access_pb2
from wizdata.indicator.v1 import indicator_service_pb2 as _indicator_service_pb2
from wizdata.type.v1 import market_pb2 as _market_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Channel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANNEL_UNSPECIFIED: _ClassVar[Channel]
    CHANNEL_QUOTES: _ClassVar[Channel]
    CHANNEL_TRADES: _ClassVar[Channel]
    CHANNEL_CANDLES: _ClassVar[Channel]
    CHANNEL_INDICATORS: _ClassVar[Channel]

class GapReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GAP_REASON_UNSPECIFIED: _ClassVar[GapReason]
    GAP_REASON_SUBSCRIBER_BEHIND: _ClassVar[GapReason]
    GAP_REASON_REPLICA_BEHIND: _ClassVar[GapReason]
    GAP_REASON_BUS_INTERRUPTED: _ClassVar[GapReason]
CHANNEL_UNSPECIFIED: Channel
CHANNEL_QUOTES: Channel
CHANNEL_TRADES: Channel
CHANNEL_CANDLES: Channel
CHANNEL_INDICATORS: Channel
GAP_REASON_UNSPECIFIED: GapReason
GAP_REASON_SUBSCRIBER_BEHIND: GapReason
GAP_REASON_REPLICA_BEHIND: GapReason
GAP_REASON_BUS_INTERRUPTED: GapReason

class TradePrint(_message.Message):
    __slots__ = ("price", "size", "source", "trade_id")
    PRICE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TRADE_ID_FIELD_NUMBER: _ClassVar[int]
    price: float
    size: float
    source: str
    trade_id: str
    def __init__(self, price: _Optional[float] = ..., size: _Optional[float] = ..., source: _Optional[str] = ..., trade_id: _Optional[str] = ...) -> None: ...

class CandleUpdate(_message.Message):
    __slots__ = ("interval", "candle")
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    CANDLE_FIELD_NUMBER: _ClassVar[int]
    interval: _market_pb2.Interval
    candle: _market_pb2.Candle
    def __init__(self, interval: _Optional[_Union[_market_pb2.Interval, str]] = ..., candle: _Optional[_Union[_market_pb2.Candle, _Mapping]] = ...) -> None: ...

class IndicatorUpdate(_message.Message):
    __slots__ = ("interval", "spec", "bar_time", "closed", "values", "bars_needed", "corrected_bar_time")
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    BAR_TIME_FIELD_NUMBER: _ClassVar[int]
    CLOSED_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    BARS_NEEDED_FIELD_NUMBER: _ClassVar[int]
    CORRECTED_BAR_TIME_FIELD_NUMBER: _ClassVar[int]
    interval: _market_pb2.Interval
    spec: _indicator_service_pb2.IndicatorSpec
    bar_time: _timestamp_pb2.Timestamp
    closed: bool
    values: _containers.ScalarMap[str, float]
    bars_needed: int
    corrected_bar_time: _timestamp_pb2.Timestamp
    def __init__(self, interval: _Optional[_Union[_market_pb2.Interval, str]] = ..., spec: _Optional[_Union[_indicator_service_pb2.IndicatorSpec, _Mapping]] = ..., bar_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., closed: _Optional[bool] = ..., values: _Optional[_Mapping[str, float]] = ..., bars_needed: _Optional[int] = ..., corrected_bar_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Gap(_message.Message):
    __slots__ = ("dropped", "reason", "indicator")
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    INDICATOR_FIELD_NUMBER: _ClassVar[int]
    dropped: int
    reason: GapReason
    indicator: _indicator_service_pb2.IndicatorSpec
    def __init__(self, dropped: _Optional[int] = ..., reason: _Optional[_Union[GapReason, str]] = ..., indicator: _Optional[_Union[_indicator_service_pb2.IndicatorSpec, _Mapping]] = ...) -> None: ...

class MarketEvent(_message.Message):
    __slots__ = ("symbol", "channel", "sequence", "event_time", "snapshot", "quote", "trade", "candle", "gap", "indicator")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    QUOTE_FIELD_NUMBER: _ClassVar[int]
    TRADE_FIELD_NUMBER: _ClassVar[int]
    CANDLE_FIELD_NUMBER: _ClassVar[int]
    GAP_FIELD_NUMBER: _ClassVar[int]
    INDICATOR_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    channel: Channel
    sequence: int
    event_time: _timestamp_pb2.Timestamp
    snapshot: bool
    quote: _market_pb2.Quote
    trade: TradePrint
    candle: CandleUpdate
    gap: Gap
    indicator: IndicatorUpdate
    def __init__(self, symbol: _Optional[str] = ..., channel: _Optional[_Union[Channel, str]] = ..., sequence: _Optional[int] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., snapshot: _Optional[bool] = ..., quote: _Optional[_Union[_market_pb2.Quote, _Mapping]] = ..., trade: _Optional[_Union[TradePrint, _Mapping]] = ..., candle: _Optional[_Union[CandleUpdate, _Mapping]] = ..., gap: _Optional[_Union[Gap, _Mapping]] = ..., indicator: _Optional[_Union[IndicatorUpdate, _Mapping]] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("time",)
    TIME_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("symbols", "channels", "candle_interval", "indicators")
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    CANDLE_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    INDICATORS_FIELD_NUMBER: _ClassVar[int]
    symbols: _containers.RepeatedScalarFieldContainer[str]
    channels: _containers.RepeatedScalarFieldContainer[Channel]
    candle_interval: _market_pb2.Interval
    indicators: _containers.RepeatedCompositeFieldContainer[_indicator_service_pb2.IndicatorSpec]
    def __init__(self, symbols: _Optional[_Iterable[str]] = ..., channels: _Optional[_Iterable[_Union[Channel, str]]] = ..., candle_interval: _Optional[_Union[_market_pb2.Interval, str]] = ..., indicators: _Optional[_Iterable[_Union[_indicator_service_pb2.IndicatorSpec, _Mapping]]] = ...) -> None: ...

class SubscribeResponse(_message.Message):
    __slots__ = ("event", "heartbeat")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    event: MarketEvent
    heartbeat: Heartbeat
    def __init__(self, event: _Optional[_Union[MarketEvent, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ...) -> None: ...

class SubscribeCommand(_message.Message):
    __slots__ = ("symbols", "channels", "candle_interval", "indicators")
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    CANDLE_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    INDICATORS_FIELD_NUMBER: _ClassVar[int]
    symbols: _containers.RepeatedScalarFieldContainer[str]
    channels: _containers.RepeatedScalarFieldContainer[Channel]
    candle_interval: _market_pb2.Interval
    indicators: _containers.RepeatedCompositeFieldContainer[_indicator_service_pb2.IndicatorSpec]
    def __init__(self, symbols: _Optional[_Iterable[str]] = ..., channels: _Optional[_Iterable[_Union[Channel, str]]] = ..., candle_interval: _Optional[_Union[_market_pb2.Interval, str]] = ..., indicators: _Optional[_Iterable[_Union[_indicator_service_pb2.IndicatorSpec, _Mapping]]] = ...) -> None: ...

class UnsubscribeCommand(_message.Message):
    __slots__ = ("symbols", "channels", "candle_interval", "indicators")
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    CANDLE_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    INDICATORS_FIELD_NUMBER: _ClassVar[int]
    symbols: _containers.RepeatedScalarFieldContainer[str]
    channels: _containers.RepeatedScalarFieldContainer[Channel]
    candle_interval: _market_pb2.Interval
    indicators: _containers.RepeatedCompositeFieldContainer[_indicator_service_pb2.IndicatorSpec]
    def __init__(self, symbols: _Optional[_Iterable[str]] = ..., channels: _Optional[_Iterable[_Union[Channel, str]]] = ..., candle_interval: _Optional[_Union[_market_pb2.Interval, str]] = ..., indicators: _Optional[_Iterable[_Union[_indicator_service_pb2.IndicatorSpec, _Mapping]]] = ...) -> None: ...

class SessionRequest(_message.Message):
    __slots__ = ("command_id", "subscribe", "unsubscribe")
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBE_FIELD_NUMBER: _ClassVar[int]
    UNSUBSCRIBE_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    subscribe: SubscribeCommand
    unsubscribe: UnsubscribeCommand
    def __init__(self, command_id: _Optional[str] = ..., subscribe: _Optional[_Union[SubscribeCommand, _Mapping]] = ..., unsubscribe: _Optional[_Union[UnsubscribeCommand, _Mapping]] = ...) -> None: ...

class CommandAck(_message.Message):
    __slots__ = ("command_id", "code", "message", "active_subscriptions")
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_SUBSCRIPTIONS_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    code: int
    message: str
    active_subscriptions: int
    def __init__(self, command_id: _Optional[str] = ..., code: _Optional[int] = ..., message: _Optional[str] = ..., active_subscriptions: _Optional[int] = ...) -> None: ...

class SessionResponse(_message.Message):
    __slots__ = ("ack", "event", "heartbeat")
    ACK_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    ack: CommandAck
    event: MarketEvent
    heartbeat: Heartbeat
    def __init__(self, ack: _Optional[_Union[CommandAck, _Mapping]] = ..., event: _Optional[_Union[MarketEvent, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ...) -> None: ...

class GetStreamStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SymbolStats(_message.Message):
    __slots__ = ("symbol", "subscriptions")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTIONS_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    subscriptions: int
    def __init__(self, symbol: _Optional[str] = ..., subscriptions: _Optional[int] = ...) -> None: ...

class GetStreamStatsResponse(_message.Message):
    __slots__ = ("connections", "subscriptions", "symbols", "events_in", "events_out", "events_dropped", "quotes_conflated", "live_indicators")
    CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTIONS_FIELD_NUMBER: _ClassVar[int]
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_IN_FIELD_NUMBER: _ClassVar[int]
    EVENTS_OUT_FIELD_NUMBER: _ClassVar[int]
    EVENTS_DROPPED_FIELD_NUMBER: _ClassVar[int]
    QUOTES_CONFLATED_FIELD_NUMBER: _ClassVar[int]
    LIVE_INDICATORS_FIELD_NUMBER: _ClassVar[int]
    connections: int
    subscriptions: int
    symbols: _containers.RepeatedCompositeFieldContainer[SymbolStats]
    events_in: int
    events_out: int
    events_dropped: int
    quotes_conflated: int
    live_indicators: int
    def __init__(self, connections: _Optional[int] = ..., subscriptions: _Optional[int] = ..., symbols: _Optional[_Iterable[_Union[SymbolStats, _Mapping]]] = ..., events_in: _Optional[int] = ..., events_out: _Optional[int] = ..., events_dropped: _Optional[int] = ..., quotes_conflated: _Optional[int] = ..., live_indicators: _Optional[int] = ...) -> None: ...
