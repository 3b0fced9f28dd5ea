import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AssetClass(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ASSET_CLASS_UNSPECIFIED: _ClassVar[AssetClass]
    ASSET_CLASS_EQUITY: _ClassVar[AssetClass]
    ASSET_CLASS_CRYPTO: _ClassVar[AssetClass]
    ASSET_CLASS_FX: _ClassVar[AssetClass]
    ASSET_CLASS_INDEX: _ClassVar[AssetClass]
    ASSET_CLASS_COMMODITY: _ClassVar[AssetClass]

class Interval(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INTERVAL_UNSPECIFIED: _ClassVar[Interval]
    INTERVAL_ONE_MINUTE: _ClassVar[Interval]
    INTERVAL_FIVE_MINUTES: _ClassVar[Interval]
    INTERVAL_FIFTEEN_MINUTES: _ClassVar[Interval]
    INTERVAL_ONE_HOUR: _ClassVar[Interval]
    INTERVAL_ONE_DAY: _ClassVar[Interval]
ASSET_CLASS_UNSPECIFIED: AssetClass
ASSET_CLASS_EQUITY: AssetClass
ASSET_CLASS_CRYPTO: AssetClass
ASSET_CLASS_FX: AssetClass
ASSET_CLASS_INDEX: AssetClass
ASSET_CLASS_COMMODITY: AssetClass
INTERVAL_UNSPECIFIED: Interval
INTERVAL_ONE_MINUTE: Interval
INTERVAL_FIVE_MINUTES: Interval
INTERVAL_FIFTEEN_MINUTES: Interval
INTERVAL_ONE_HOUR: Interval
INTERVAL_ONE_DAY: Interval

class Exchange(_message.Message):
    __slots__ = ("code", "name", "mic", "country", "time_zone")
    CODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MIC_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    code: str
    name: str
    mic: str
    country: str
    time_zone: str
    def __init__(self, code: _Optional[str] = ..., name: _Optional[str] = ..., mic: _Optional[str] = ..., country: _Optional[str] = ..., time_zone: _Optional[str] = ...) -> None: ...

class Candle(_message.Message):
    __slots__ = ("open_time", "open", "high", "low", "close", "volume", "trade_count", "closed")
    OPEN_TIME_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    LOW_FIELD_NUMBER: _ClassVar[int]
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    TRADE_COUNT_FIELD_NUMBER: _ClassVar[int]
    CLOSED_FIELD_NUMBER: _ClassVar[int]
    open_time: _timestamp_pb2.Timestamp
    open: float
    high: float
    low: float
    close: float
    volume: float
    trade_count: int
    closed: bool
    def __init__(self, open_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., open: _Optional[float] = ..., high: _Optional[float] = ..., low: _Optional[float] = ..., close: _Optional[float] = ..., volume: _Optional[float] = ..., trade_count: _Optional[int] = ..., closed: _Optional[bool] = ...) -> None: ...

class Quote(_message.Message):
    __slots__ = ("symbol", "last_price", "last_size", "bid", "bid_size", "ask", "ask_size", "day_open", "day_high", "day_low", "day_volume", "previous_close", "change", "change_percent", "update_time", "stale")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    LAST_PRICE_FIELD_NUMBER: _ClassVar[int]
    LAST_SIZE_FIELD_NUMBER: _ClassVar[int]
    BID_FIELD_NUMBER: _ClassVar[int]
    BID_SIZE_FIELD_NUMBER: _ClassVar[int]
    ASK_FIELD_NUMBER: _ClassVar[int]
    ASK_SIZE_FIELD_NUMBER: _ClassVar[int]
    DAY_OPEN_FIELD_NUMBER: _ClassVar[int]
    DAY_HIGH_FIELD_NUMBER: _ClassVar[int]
    DAY_LOW_FIELD_NUMBER: _ClassVar[int]
    DAY_VOLUME_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_CLOSE_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    CHANGE_PERCENT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    last_price: float
    last_size: float
    bid: float
    bid_size: float
    ask: float
    ask_size: float
    day_open: float
    day_high: float
    day_low: float
    day_volume: float
    previous_close: float
    change: float
    change_percent: float
    update_time: _timestamp_pb2.Timestamp
    stale: bool
    def __init__(self, symbol: _Optional[str] = ..., last_price: _Optional[float] = ..., last_size: _Optional[float] = ..., bid: _Optional[float] = ..., bid_size: _Optional[float] = ..., ask: _Optional[float] = ..., ask_size: _Optional[float] = ..., day_open: _Optional[float] = ..., day_high: _Optional[float] = ..., day_low: _Optional[float] = ..., day_volume: _Optional[float] = ..., previous_close: _Optional[float] = ..., change: _Optional[float] = ..., change_percent: _Optional[float] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stale: _Optional[bool] = ...) -> None: ...
