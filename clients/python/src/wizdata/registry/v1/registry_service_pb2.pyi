import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from wizdata.auth.v1 import access_pb2 as _access_pb2
from wizdata.type.v1 import market_pb2 as _market_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Symbol(_message.Message):
    __slots__ = ("ticker", "name", "exchange", "asset_class", "currency", "streamable", "create_time", "update_time")
    TICKER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXCHANGE_FIELD_NUMBER: _ClassVar[int]
    ASSET_CLASS_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    STREAMABLE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ticker: str
    name: str
    exchange: str
    asset_class: _market_pb2.AssetClass
    currency: str
    streamable: bool
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, ticker: _Optional[str] = ..., name: _Optional[str] = ..., exchange: _Optional[str] = ..., asset_class: _Optional[_Union[_market_pb2.AssetClass, str]] = ..., currency: _Optional[str] = ..., streamable: _Optional[bool] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListSymbolsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "exchange", "asset_class", "streamable", "query")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXCHANGE_FIELD_NUMBER: _ClassVar[int]
    ASSET_CLASS_FIELD_NUMBER: _ClassVar[int]
    STREAMABLE_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    exchange: str
    asset_class: _market_pb2.AssetClass
    streamable: bool
    query: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., exchange: _Optional[str] = ..., asset_class: _Optional[_Union[_market_pb2.AssetClass, str]] = ..., streamable: _Optional[bool] = ..., query: _Optional[str] = ...) -> None: ...

class ListSymbolsResponse(_message.Message):
    __slots__ = ("symbols", "next_page_token")
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    symbols: _containers.RepeatedCompositeFieldContainer[Symbol]
    next_page_token: str
    def __init__(self, symbols: _Optional[_Iterable[_Union[Symbol, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetSymbolRequest(_message.Message):
    __slots__ = ("ticker",)
    TICKER_FIELD_NUMBER: _ClassVar[int]
    ticker: str
    def __init__(self, ticker: _Optional[str] = ...) -> None: ...

class GetSymbolResponse(_message.Message):
    __slots__ = ("symbol",)
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    symbol: Symbol
    def __init__(self, symbol: _Optional[_Union[Symbol, _Mapping]] = ...) -> None: ...

class CreateSymbolRequest(_message.Message):
    __slots__ = ("symbol",)
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    symbol: Symbol
    def __init__(self, symbol: _Optional[_Union[Symbol, _Mapping]] = ...) -> None: ...

class CreateSymbolResponse(_message.Message):
    __slots__ = ("symbol",)
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    symbol: Symbol
    def __init__(self, symbol: _Optional[_Union[Symbol, _Mapping]] = ...) -> None: ...

class UpdateSymbolRequest(_message.Message):
    __slots__ = ("symbol", "update_mask")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    symbol: Symbol
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, symbol: _Optional[_Union[Symbol, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateSymbolResponse(_message.Message):
    __slots__ = ("symbol",)
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    symbol: Symbol
    def __init__(self, symbol: _Optional[_Union[Symbol, _Mapping]] = ...) -> None: ...

class DeleteSymbolRequest(_message.Message):
    __slots__ = ("ticker",)
    TICKER_FIELD_NUMBER: _ClassVar[int]
    ticker: str
    def __init__(self, ticker: _Optional[str] = ...) -> None: ...

class DeleteSymbolResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListExchangesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListExchangesResponse(_message.Message):
    __slots__ = ("exchanges",)
    EXCHANGES_FIELD_NUMBER: _ClassVar[int]
    exchanges: _containers.RepeatedCompositeFieldContainer[_market_pb2.Exchange]
    def __init__(self, exchanges: _Optional[_Iterable[_Union[_market_pb2.Exchange, _Mapping]]] = ...) -> None: ...
