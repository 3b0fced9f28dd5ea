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

class ParameterKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PARAMETER_KIND_UNSPECIFIED: _ClassVar[ParameterKind]
    PARAMETER_KIND_INTEGER: _ClassVar[ParameterKind]
    PARAMETER_KIND_REAL: _ClassVar[ParameterKind]
PARAMETER_KIND_UNSPECIFIED: ParameterKind
PARAMETER_KIND_INTEGER: ParameterKind
PARAMETER_KIND_REAL: ParameterKind

class ParameterDescriptor(_message.Message):
    __slots__ = ("name", "kind", "default_value", "min_value", "max_value", "description")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VALUE_FIELD_NUMBER: _ClassVar[int]
    MIN_VALUE_FIELD_NUMBER: _ClassVar[int]
    MAX_VALUE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: ParameterKind
    default_value: float
    min_value: float
    max_value: float
    description: str
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[ParameterKind, str]] = ..., default_value: _Optional[float] = ..., min_value: _Optional[float] = ..., max_value: _Optional[float] = ..., description: _Optional[str] = ...) -> None: ...

class IndicatorDescriptor(_message.Message):
    __slots__ = ("name", "display_name", "description", "parameters", "outputs")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    description: str
    parameters: _containers.RepeatedCompositeFieldContainer[ParameterDescriptor]
    outputs: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., description: _Optional[str] = ..., parameters: _Optional[_Iterable[_Union[ParameterDescriptor, _Mapping]]] = ..., outputs: _Optional[_Iterable[str]] = ...) -> None: ...

class ListIndicatorsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListIndicatorsResponse(_message.Message):
    __slots__ = ("indicators",)
    INDICATORS_FIELD_NUMBER: _ClassVar[int]
    indicators: _containers.RepeatedCompositeFieldContainer[IndicatorDescriptor]
    def __init__(self, indicators: _Optional[_Iterable[_Union[IndicatorDescriptor, _Mapping]]] = ...) -> None: ...

class IndicatorSpec(_message.Message):
    __slots__ = ("name", "parameters")
    class ParametersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    name: str
    parameters: _containers.ScalarMap[str, float]
    def __init__(self, name: _Optional[str] = ..., parameters: _Optional[_Mapping[str, float]] = ...) -> None: ...

class OutputSeries(_message.Message):
    __slots__ = ("name", "values")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    name: str
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, name: _Optional[str] = ..., values: _Optional[_Iterable[float]] = ...) -> None: ...

class IndicatorResult(_message.Message):
    __slots__ = ("spec", "lookback", "begin_index", "outputs")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    LOOKBACK_FIELD_NUMBER: _ClassVar[int]
    BEGIN_INDEX_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    spec: IndicatorSpec
    lookback: int
    begin_index: int
    outputs: _containers.RepeatedCompositeFieldContainer[OutputSeries]
    def __init__(self, spec: _Optional[_Union[IndicatorSpec, _Mapping]] = ..., lookback: _Optional[int] = ..., begin_index: _Optional[int] = ..., outputs: _Optional[_Iterable[_Union[OutputSeries, _Mapping]]] = ...) -> None: ...

class ComputeIndicatorsRequest(_message.Message):
    __slots__ = ("symbol", "interval", "start_time", "end_time", "indicators")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    INDICATORS_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    interval: _market_pb2.Interval
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    indicators: _containers.RepeatedCompositeFieldContainer[IndicatorSpec]
    def __init__(self, symbol: _Optional[str] = ..., interval: _Optional[_Union[_market_pb2.Interval, str]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., indicators: _Optional[_Iterable[_Union[IndicatorSpec, _Mapping]]] = ...) -> None: ...

class ComputeIndicatorsResponse(_message.Message):
    __slots__ = ("symbol", "interval", "times", "results")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    TIMES_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    interval: _market_pb2.Interval
    times: _containers.RepeatedCompositeFieldContainer[_timestamp_pb2.Timestamp]
    results: _containers.RepeatedCompositeFieldContainer[IndicatorResult]
    def __init__(self, symbol: _Optional[str] = ..., interval: _Optional[_Union[_market_pb2.Interval, str]] = ..., times: _Optional[_Iterable[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]]] = ..., results: _Optional[_Iterable[_Union[IndicatorResult, _Mapping]]] = ...) -> None: ...

class ComputeSeriesRequest(_message.Message):
    __slots__ = ("candles", "indicators")
    CANDLES_FIELD_NUMBER: _ClassVar[int]
    INDICATORS_FIELD_NUMBER: _ClassVar[int]
    candles: _containers.RepeatedCompositeFieldContainer[_market_pb2.Candle]
    indicators: _containers.RepeatedCompositeFieldContainer[IndicatorSpec]
    def __init__(self, candles: _Optional[_Iterable[_Union[_market_pb2.Candle, _Mapping]]] = ..., indicators: _Optional[_Iterable[_Union[IndicatorSpec, _Mapping]]] = ...) -> None: ...

class ComputeSeriesResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[IndicatorResult]
    def __init__(self, results: _Optional[_Iterable[_Union[IndicatorResult, _Mapping]]] = ...) -> None: ...

class BatchComputeRequest(_message.Message):
    __slots__ = ("symbols", "interval", "start_time", "end_time", "indicators")
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    INDICATORS_FIELD_NUMBER: _ClassVar[int]
    symbols: _containers.RepeatedScalarFieldContainer[str]
    interval: _market_pb2.Interval
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    indicators: _containers.RepeatedCompositeFieldContainer[IndicatorSpec]
    def __init__(self, symbols: _Optional[_Iterable[str]] = ..., interval: _Optional[_Union[_market_pb2.Interval, str]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., indicators: _Optional[_Iterable[_Union[IndicatorSpec, _Mapping]]] = ...) -> None: ...

class SymbolResult(_message.Message):
    __slots__ = ("symbol", "response", "error_code", "error_message")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    response: ComputeIndicatorsResponse
    error_code: int
    error_message: str
    def __init__(self, symbol: _Optional[str] = ..., response: _Optional[_Union[ComputeIndicatorsResponse, _Mapping]] = ..., error_code: _Optional[int] = ..., error_message: _Optional[str] = ...) -> None: ...

class BatchComputeResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SymbolResult]
    def __init__(self, results: _Optional[_Iterable[_Union[SymbolResult, _Mapping]]] = ...) -> None: ...
