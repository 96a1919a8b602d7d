"""The node's error tree (layer 5), rooted in the core's :class:`~tangle.errors.TangleError`.

::

    TangleError                                 tangle.errors: the core's tree
      NodeError(TangleError)                    anything the node package raises
        ConfigError(NodeError, ValueError)      a setting or genesis file that cannot be used
        StorageError(NodeError)                 the database cannot be opened or written
        Rejected(NodeError)                     a request this node refuses: code, HTTP status
        ProtocolError(NodeError, ValueError)    a peer broke the wire rules (it is dropped)
        DevnetError(NodeError, RuntimeError)    a devnet node did not start (its log tail)

Foreign errors (``sqlite3.Error``, ``OSError``, ``aiohttp.ClientError``) are mapped to these
where they happen: ``storage`` maps SQLite's, ``bootstrap`` aiohttp's and OSError (a
peer's snapshot), ``devnet`` OSError (a process that cannot start), ``gossip`` treats
them as a lost peer; ``api`` maps this tree to HTTP statuses in one middleware.

Every error keeps its raw arguments in ``args`` and builds its message from them, so it
pickles and unpickles to an equal error (a process pool, a log shipper).
"""

from __future__ import annotations

from typing import Any

from tangle.errors import TangleError


class NodeError(TangleError):
    """Base class of the node package's errors; ``str()`` is the whole message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(NodeError, ValueError):
    """A setting or a genesis file that cannot be used; the message names it."""


class StorageError(NodeError):
    """The database cannot be opened or written; the message says which and why."""


class ProtocolError(NodeError, ValueError):
    """A peer broke the wire rules; the message says how (expected against actual)."""


class DevnetError(NodeError, RuntimeError):
    """A node of a devnet did not start; the message carries the tail of its log."""


class Rejected(NodeError):
    """A request this node will not serve; ``code`` and ``status`` go to the API.

    ``code`` is one of :class:`tangle.schema.ErrorCode`'s values; ``extra`` holds
    machine-readable details that go into the error object beside code and message.
    """

    def __init__(
        self, code: str, message: str, status: int = 422, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.args = (code, message, status, extra)
        self.code = code
        self.status = status
        self.extra = dict(extra or {})
