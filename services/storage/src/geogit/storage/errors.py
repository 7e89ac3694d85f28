"""Storage's failure vocabulary. gRPC status codes are chosen once, in interceptors.py."""

from __future__ import annotations

import grpc


class StorageError(Exception):
    code = grpc.StatusCode.INTERNAL


class InvalidArgument(StorageError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(StorageError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(StorageError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(StorageError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(StorageError):
    code = grpc.StatusCode.UNAVAILABLE
