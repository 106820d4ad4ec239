"""Errors the CLB emulator answers with, carrying the real CLB 2018-03-17 error codes.

Every model and dispatcher function raises `ClbApiError`; the dispatcher (`emulators.clb.api`) turns it
into `{"Response": {"Error": {"Code", "Message"}, "RequestId"}}` with HTTP 200, exactly as the real API
does. Codes are spelled as in the SDK's errorcodes.py.
"""

from __future__ import annotations

AUTH_INVALID_AUTHORIZATION = "AuthFailure.InvalidAuthorization"
AUTH_SECRET_ID_NOT_FOUND = "AuthFailure.SecretIdNotFound"
AUTH_SIGNATURE_EXPIRE = "AuthFailure.SignatureExpire"
AUTH_SIGNATURE_FAILURE = "AuthFailure.SignatureFailure"
AUTH_TOKEN_FAILURE = "AuthFailure.TokenFailure"
FAILED_OPERATION = "FailedOperation"
RESOURCE_IN_OPERATING = "FailedOperation.ResourceInOperating"
TARGET_NUM_CHECK_RISK = "FailedOperation.TargetNumCheckRisk"
INTERNAL_ERROR = "InternalError"
INVALID_ACTION = "InvalidAction"
INVALID_PARAMETER = "InvalidParameter"
FORMAT_ERROR = "InvalidParameter.FormatError"
LB_ID_NOT_FOUND = "InvalidParameter.LBIdNotFound"
LISTENER_ID_NOT_FOUND = "InvalidParameter.ListenerIdNotFound"
LOCATION_NOT_FOUND = "InvalidParameter.LocationNotFound"
PORT_CHECK_FAILED = "InvalidParameter.PortCheckFailed"
PROTOCOL_CHECK_FAILED = "InvalidParameter.ProtocolCheckFailed"
INVALID_PARAMETER_VALUE = "InvalidParameterValue"
VALUE_DUPLICATE = "InvalidParameterValue.Duplicate"
VALUE_LENGTH = "InvalidParameterValue.Length"
VALUE_RANGE = "InvalidParameterValue.Range"
VALUE_INVALID_FILTER = "InvalidParameterValue.InvalidFilter"
INVALID_PARAMETER_COMBINATION = "InvalidParameterCombination"
LIMIT_EXCEEDED = "LimitExceeded"
MISSING_PARAMETER = "MissingParameter"
NO_SUCH_VERSION = "NoSuchVersion"
REQUEST_LIMIT_EXCEEDED = "RequestLimitExceeded"
RESOURCE_NOT_FOUND = "ResourceNotFound"
UNSUPPORTED_OPERATION = "UnsupportedOperation"


class ClbApiError(Exception):
    """A CLB API error: `code` is the wire code (e.g. `InvalidParameter.LBIdNotFound`), `message` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"[{code}] {message}")
        self.code = code
        self.message = message
