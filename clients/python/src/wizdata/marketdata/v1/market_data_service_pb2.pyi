import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from wizdata.auth.v1 import access_pb2 as _access_pb2
from wizdata.type.v1 import market_pb2 as _market_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TickRejection(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TICK_REJECTION_UNSPECIFIED: _ClassVar[TickRejection]
    TICK_REJECTION_UNKNOWN_SYMBOL: _ClassVar[TickRejection]
    TICK_REJECTION_INVALID_PRICE: _ClassVar[TickRejection]
    TICK_REJECTION_INVALID_SIZE: _ClassVar[TickRejection]
    TICK_REJECTION_FUTURE_TIME: _ClassVar[TickRejection]
    TICK_REJECTION_MISSING_TIME: _ClassVar[TickRejection]
    TICK_REJECTION_MISSING_KIND: _ClassVar[TickRejection]
    TICK_REJECTION_INVALID_TIME: _ClassVar[TickRejection]
    TICK_REJECTION_DUPLICATE: _ClassVar[TickRejection]
    TICK_REJECTION_INVALID_TRADE_ID: _ClassVar[TickRejection]
TICK_REJECTION_UNSPECIFIED: TickRejection
TICK_REJECTION_UNKNOWN_SYMBOL: TickRejection
TICK_REJECTION_INVALID_PRICE: TickRejection
TICK_REJECTION_INVALID_SIZE: TickRejection
TICK_REJECTION_FUTURE_TIME: TickRejection
TICK_REJECTION_MISSING_TIME: TickRejection
TICK_REJECTION_MISSING_KIND: TickRejection
TICK_REJECTION_INVALID_TIME: TickRejection
TICK_REJECTION_DUPLICATE: TickRejection
TICK_REJECTION_INVALID_TRADE_ID: TickRejection

class GetQuoteRequest(_message.Message):
    __slots__ = ("symbol",)
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    def __init__(self, symbol: _Optional[str] = ...) -> None: ...

class GetQuoteResponse(_message.Message):
    __slots__ = ("quote",)
    QUOTE_FIELD_NUMBER: _ClassVar[int]
    quote: _market_pb2.Quote
    def __init__(self, quote: _Optional[_Union[_market_pb2.Quote, _Mapping]] = ...) -> None: ...

class GetQuotesRequest(_message.Message):
    __slots__ = ("symbols",)
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    symbols: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, symbols: _Optional[_Iterable[str]] = ...) -> None: ...

class GetQuotesResponse(_message.Message):
    __slots__ = ("quotes", "missing_symbols")
    QUOTES_FIELD_NUMBER: _ClassVar[int]
    MISSING_SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    quotes: _containers.RepeatedCompositeFieldContainer[_market_pb2.Quote]
    missing_symbols: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, quotes: _Optional[_Iterable[_Union[_market_pb2.Quote, _Mapping]]] = ..., missing_symbols: _Optional[_Iterable[str]] = ...) -> None: ...

class GetCandlesRequest(_message.Message):
    __slots__ = ("symbol", "interval", "start_time", "end_time", "page_size", "page_token")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    interval: _market_pb2.Interval
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, symbol: _Optional[str] = ..., interval: _Optional[_Union[_market_pb2.Interval, str]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class GetCandlesResponse(_message.Message):
    __slots__ = ("symbol", "interval", "candles", "next_page_token", "revision")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    CANDLES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    interval: _market_pb2.Interval
    candles: _containers.RepeatedCompositeFieldContainer[_market_pb2.Candle]
    next_page_token: str
    revision: int
    def __init__(self, symbol: _Optional[str] = ..., interval: _Optional[_Union[_market_pb2.Interval, str]] = ..., candles: _Optional[_Iterable[_Union[_market_pb2.Candle, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., revision: _Optional[int] = ...) -> None: ...

class GetSeriesRevisionRequest(_message.Message):
    __slots__ = ("symbol", "interval")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    interval: _market_pb2.Interval
    def __init__(self, symbol: _Optional[str] = ..., interval: _Optional[_Union[_market_pb2.Interval, str]] = ...) -> None: ...

class GetSeriesRevisionResponse(_message.Message):
    __slots__ = ("symbol", "interval", "revision")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    interval: _market_pb2.Interval
    revision: int
    def __init__(self, symbol: _Optional[str] = ..., interval: _Optional[_Union[_market_pb2.Interval, str]] = ..., revision: _Optional[int] = ...) -> None: ...

class Trade(_message.Message):
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

class BidAsk(_message.Message):
    __slots__ = ("bid", "bid_size", "ask", "ask_size")
    BID_FIELD_NUMBER: _ClassVar[int]
    BID_SIZE_FIELD_NUMBER: _ClassVar[int]
    ASK_FIELD_NUMBER: _ClassVar[int]
    ASK_SIZE_FIELD_NUMBER: _ClassVar[int]
    bid: float
    bid_size: float
    ask: float
    ask_size: float
    def __init__(self, bid: _Optional[float] = ..., bid_size: _Optional[float] = ..., ask: _Optional[float] = ..., ask_size: _Optional[float] = ...) -> None: ...

class Tick(_message.Message):
    __slots__ = ("symbol", "time", "trade", "bid_ask")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    TRADE_FIELD_NUMBER: _ClassVar[int]
    BID_ASK_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    time: _timestamp_pb2.Timestamp
    trade: Trade
    bid_ask: BidAsk
    def __init__(self, symbol: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., trade: _Optional[_Union[Trade, _Mapping]] = ..., bid_ask: _Optional[_Union[BidAsk, _Mapping]] = ...) -> None: ...

class IngestTicksRequest(_message.Message):
    __slots__ = ("ticks",)
    TICKS_FIELD_NUMBER: _ClassVar[int]
    ticks: _containers.RepeatedCompositeFieldContainer[Tick]
    def __init__(self, ticks: _Optional[_Iterable[_Union[Tick, _Mapping]]] = ...) -> None: ...

class RejectionCount(_message.Message):
    __slots__ = ("reason", "count")
    REASON_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    reason: TickRejection
    count: int
    def __init__(self, reason: _Optional[_Union[TickRejection, str]] = ..., count: _Optional[int] = ...) -> None: ...

class RejectedTick(_message.Message):
    __slots__ = ("index", "reason", "detail")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    index: int
    reason: TickRejection
    detail: str
    def __init__(self, index: _Optional[int] = ..., reason: _Optional[_Union[TickRejection, str]] = ..., detail: _Optional[str] = ...) -> None: ...

class IngestTicksResponse(_message.Message):
    __slots__ = ("accepted", "rejected", "rejections", "samples")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    REJECTIONS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    rejected: int
    rejections: _containers.RepeatedCompositeFieldContainer[RejectionCount]
    samples: _containers.RepeatedCompositeFieldContainer[RejectedTick]
    def __init__(self, accepted: _Optional[int] = ..., rejected: _Optional[int] = ..., rejections: _Optional[_Iterable[_Union[RejectionCount, _Mapping]]] = ..., samples: _Optional[_Iterable[_Union[RejectedTick, _Mapping]]] = ...) -> None: ...

class ImportCandlesRequest(_message.Message):
    __slots__ = ("symbol", "interval", "candles")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    CANDLES_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    interval: _market_pb2.Interval
    candles: _containers.RepeatedCompositeFieldContainer[_market_pb2.Candle]
    def __init__(self, symbol: _Optional[str] = ..., interval: _Optional[_Union[_market_pb2.Interval, str]] = ..., candles: _Optional[_Iterable[_Union[_market_pb2.Candle, _Mapping]]] = ...) -> None: ...

class ImportCandlesResponse(_message.Message):
    __slots__ = ("imported", "replaced")
    IMPORTED_FIELD_NUMBER: _ClassVar[int]
    REPLACED_FIELD_NUMBER: _ClassVar[int]
    imported: int
    replaced: int
    def __init__(self, imported: _Optional[int] = ..., replaced: _Optional[int] = ...) -> None: ...

class MarketDataEvents(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[MarketDataEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[MarketDataEvent, _Mapping]]] = ...) -> None: ...

class MarketDataEvent(_message.Message):
    __slots__ = ("symbol", "event_time", "trade", "quote", "candle")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    TRADE_FIELD_NUMBER: _ClassVar[int]
    QUOTE_FIELD_NUMBER: _ClassVar[int]
    CANDLE_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    event_time: _timestamp_pb2.Timestamp
    trade: Trade
    quote: _market_pb2.Quote
    candle: CandleEvent
    def __init__(self, symbol: _Optional[str] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., trade: _Optional[_Union[Trade, _Mapping]] = ..., quote: _Optional[_Union[_market_pb2.Quote, _Mapping]] = ..., candle: _Optional[_Union[CandleEvent, _Mapping]] = ...) -> None: ...

class CandleEvent(_message.Message):
    __slots__ = ("interval", "candle")
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    CANDLE_FIELD_NUMBER: _ClassVar[int]
    interval: _market_pb2.Interval
    candle: _market_pb2.Candle
    def __init__(self, interval: _Optional[_Union[_market_pb2.Interval, str]] = ..., candle: _Optional[_Union[_market_pb2.Candle, _Mapping]] = ...) -> None: ...
