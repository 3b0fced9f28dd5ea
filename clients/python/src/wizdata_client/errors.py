"""A failed call's rich details (google.rpc.Status in the
`grpc-status-details-bin` trailer), decoded into plain objects through
grpcio-status: what was wrong with which field, what was not found, when to
retry, which quota was spent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


@dataclass(frozen=True)
class ResourceInfo:
    resource_type: str
    resource_name: str
    description: str


@dataclass(frozen=True)
class ErrorInfo:
    reason: str
    domain: str
    metadata: dict


@dataclass(frozen=True)
class QuotaViolation:
    subject: str
    description: str


@dataclass(frozen=True)
class ErrorDetails:
    code: grpc.StatusCode
    message: str
    field_violations: list = field(default_factory=list)
    resource_info: Optional[ResourceInfo] = None
    # Seconds to wait before calling again (google.rpc.RetryInfo).
    retry_delay: Optional[float] = None
    error_info: Optional[ErrorInfo] = None
    quota_violations: list = field(default_factory=list)


def error_details(error: grpc.RpcError) -> ErrorDetails:
    """Decodes a failed call. A status without details (or from a peer that
    sends none) gives its code and message and empty details."""
    found = dict(code=error.code(), message=error.details() or "")
    status = rpc_status.from_call(error)
    if status is None:
        return ErrorDetails(**found)
    violations, quota = [], []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            violations += [FieldViolation(v.field, v.description) for v in bad_request.field_violations]
        elif detail.Is(error_details_pb2.ResourceInfo.DESCRIPTOR):
            info = error_details_pb2.ResourceInfo()
            detail.Unpack(info)
            found["resource_info"] = ResourceInfo(info.resource_type, info.resource_name, info.description)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            found["retry_delay"] = retry.retry_delay.ToTimedelta().total_seconds()
        elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            found["error_info"] = ErrorInfo(info.reason, info.domain, dict(info.metadata))
        elif detail.Is(error_details_pb2.QuotaFailure.DESCRIPTOR):
            failure = error_details_pb2.QuotaFailure()
            detail.Unpack(failure)
            quota += [QuotaViolation(v.subject, v.description) for v in failure.violations]
    return ErrorDetails(**found, field_violations=violations, quota_violations=quota)
