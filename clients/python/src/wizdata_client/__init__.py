"""The WizData mesh from Python: one channel carrying the caller's API key,
a stub per service, and errors decoded with their rich details.

The generated messages and stubs are the `wizdata.<service>.v1` modules
beside this package (`make generate` writes them from proto/).
"""

from wizdata_client.channel import Mesh, connect
from wizdata_client.errors import ErrorDetails, FieldViolation, QuotaViolation, ResourceInfo, ErrorInfo, error_details

__all__ = [
    "ErrorDetails",
    "ErrorInfo",
    "FieldViolation",
    "Mesh",
    "QuotaViolation",
    "ResourceInfo",
    "connect",
    "error_details",
]
