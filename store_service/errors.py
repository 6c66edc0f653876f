"""Domain errors of the store service (no grpc here; `rpc_common.error_mapping` maps them).

    ServiceError (rpc_common.errors)
     ├── InvalidArgument      INVALID_TABLE_NAME / INVALID_SCHEMA / INVALID_DATA / SCHEMA_MISMATCH ...
     ├── NotFound             TABLE_NOT_FOUND / VERSION_NOT_FOUND
     ├── AlreadyExists        TABLE_EXISTS
     ├── Aborted              WRITE_CONFLICT / TABLE_REPLACED (dropped and created again by another replica)
     ├── Cancelled            CALLER_GONE (a stream cancelled or its caller gone: nothing committed)
     ├── Unavailable          STORAGE_FAILED; STORAGE_UNREACHABLE (the object store); COMMIT_NOT_DURABLE (Lance
     │                        committed, the fsync after it failed)
     └── DataLoss             FRAGMENT_CORRUPT / MANIFEST_CORRUPT (a stored file failed its checksum)
"""

from __future__ import annotations

from rpc_common.errors import (Aborted, AlreadyExists, Cancelled, DataLoss, DeadlineExceeded, FailedPrecondition,
                               InvalidArgument, NotFound, ResourceExhausted, ServiceError, Unavailable)

__all__ = [
    "Aborted", "AlreadyExists", "Cancelled", "DataLoss", "DeadlineExceeded", "FailedPrecondition", "InvalidArgument",
    "InvalidTableName", "NotFound", "ResourceExhausted", "ServiceError", "StorageFailed", "StorageFull",
    "StorageUnreachable", "TableExists", "TableNotFound", "TableReplaced", "VersionNotFound",
]


class InvalidTableName(InvalidArgument):
    reason = "INVALID_TABLE_NAME"


class TableNotFound(NotFound):
    reason = "TABLE_NOT_FOUND"


class TableReplaced(Aborted):
    """The table was dropped and created again (by another store process) while this call was using it."""

    reason = "TABLE_REPLACED"


class VersionNotFound(NotFound):
    reason = "VERSION_NOT_FOUND"


class TableExists(AlreadyExists):
    reason = "TABLE_EXISTS"


class StorageFull(ResourceExhausted):
    """The data directory's filesystem is out of space (or quota): nothing was committed."""
    reason = "STORAGE_FULL"


class StorageFailed(Unavailable):
    """Writing to the data directory failed for another reason (I/O error, read-only): nothing was committed."""
    reason = "STORAGE_FAILED"


class StorageUnreachable(StorageFailed, OSError):
    """A request to the object store failed (unreachable, timed out, a server error after retries): the call
    is UNAVAILABLE and may be retried. Also an OSError, so the storage code that handles I/O errors handles it."""

    reason = "STORAGE_UNREACHABLE"
