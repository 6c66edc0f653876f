"""What Lance's errors mean, read from their text in this one place: Lance (Rust, through pyo3) raises most
failures as OSError or ValueError whose only detail is the message, so the store recognises a commit
conflict, a missing version or a full disk by what the message says."""

from __future__ import annotations

import errno
import re

_OS_ERROR = re.compile(r"os error (\d+)")


def errno_in(text: str) -> int | None:
    """The errno inside an error Lance raised as text, e.g. "No space left on device (os error 28)"."""
    found = _OS_ERROR.search(text)
    if found:
        return int(found.group(1))
    return errno.ENOSPC if "No space left on device" in text else None


def is_disk_full(exc: BaseException) -> bool:
    code = getattr(exc, "errno", None) or errno_in(str(exc))
    return code in (errno.ENOSPC, errno.EDQUOT)


def is_commit_conflict(exc: BaseException) -> bool:
    """Lance refused a commit because another writer's change conflicts with it (retryable or not)."""
    text = str(exc).lower()
    return "conflict" in text or "incompatible" in text


def is_invalid_input(exc: BaseException) -> bool:
    """Lance refused what the store asked of it as invalid (a transaction or schema the store built wrongly):
    a bug in the store, not a storage failure."""
    return "invalid user input" in str(exc).lower()


def is_missing_version(exc: BaseException) -> bool:
    """Lance could not open a version because there is no such version."""
    text = str(exc).lower()
    return "not found" in text or "does not exist" in text


def without_location(text: str) -> str:
    """A Lance message without the Rust source location it ends with."""
    return text.split(", /home/")[0]
