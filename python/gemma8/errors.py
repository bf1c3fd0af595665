"""The library's failures as Python exceptions, each carrying the library's message."""

from __future__ import annotations

from . import _lib


class Gemma8Error(Exception):
    """A call into libgemma8 failed. ``status`` is the library's status name ("i/o error", ...),
    ``code`` its number, and the message is the library's own (it names the file, tensor or
    argument)."""

    def __init__(self, code: int, message: str):
        self.code = code
        self.status = _lib.lib.gemma8_status_str(code).decode()
        super().__init__(message or self.status)


class Gemma8IOError(Gemma8Error, OSError):
    """A file could not be opened, read or written."""


class FormatError(Gemma8Error, ValueError):
    """A file is corrupt, truncated or not what it claims to be."""


class UnsupportedError(Gemma8Error):
    """Valid input this build does not handle (an architecture, a tensor type)."""


class OutOfMemoryError(Gemma8Error, MemoryError):
    """Out of memory, or the model and context would not fit."""


class InvalidArgumentError(Gemma8Error, ValueError):
    """A bad argument."""


class ContextFullError(Gemma8Error):
    """The tokens would not fit in the context."""


class Aborted(Gemma8Error):
    """Stopped by Model.abort() (the context stays usable)."""


_BY_CODE = {
    _lib.ERR_IO: Gemma8IOError,
    _lib.ERR_FORMAT: FormatError,
    _lib.ERR_UNSUPPORTED: UnsupportedError,
    _lib.ERR_NOMEM: OutOfMemoryError,
    _lib.ERR_INVALID_ARG: InvalidArgumentError,
    _lib.ERR_CONTEXT_FULL: ContextFullError,
    _lib.ERR_ABORTED: Aborted,
}


def check(code: int) -> None:
    """Raises the exception of a status (with the calling thread's last error) unless it is OK."""
    if code != _lib.OK:
        raise _BY_CODE.get(code, Gemma8Error)(code, _lib.last_error())
