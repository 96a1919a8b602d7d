"""Strict reading of canonical bytes (layer 1, pure).

Writing is plain ``struct`` packing next to each type's ``encode``; reading goes
through :class:`Reader`, which names the field whenever bytes run out and refuses
trailing bytes (PROTOCOL §4.4).
"""

from __future__ import annotations

import struct

from tangle.errors import EncodingError

_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U64 = struct.Struct(">Q")


class Reader:
    """A cursor over bytes that raises :class:`EncodingError` naming the field."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    @property
    def position(self) -> int:
        """How many bytes have been read so far."""
        return self._pos

    def read(self, field: str, size: int) -> bytes:
        """Read exactly ``size`` bytes for ``field``.

        Raises:
            EncodingError: fewer than ``size`` bytes remain (§4.4 truncation).
        """
        end = self._pos + size
        if end > len(self._data):
            raise EncodingError(
                field,
                f"{size} bytes at offset {self._pos}",
                f"{len(self._data) - self._pos} (truncated)",
            )
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def u8(self, field: str) -> int:
        value: int = _U8.unpack(self.read(field, 1))[0]
        return value

    def u16(self, field: str) -> int:
        value: int = _U16.unpack(self.read(field, 2))[0]
        return value

    def u64(self, field: str) -> int:
        value: int = _U64.unpack(self.read(field, 8))[0]
        return value

    def done(self) -> None:
        """Raise unless every byte has been consumed (§4.4 trailing bytes)."""
        extra = len(self._data) - self._pos
        if extra:
            raise EncodingError(
                "transaction", f"end of data at offset {self._pos}", f"{extra} trailing bytes"
            )


def u8(value: int) -> bytes:
    return _U8.pack(value)


def u16(value: int) -> bytes:
    return _U16.pack(value)


def u64(value: int) -> bytes:
    return _U64.pack(value)


def parse_hex(field: str, text: str, size: int | None = None) -> bytes:
    """Decode lowercase or uppercase hex text of an optional exact byte size.

    Raises:
        EncodingError: the text is not hex, or has the wrong length.
    """
    try:
        data = bytes.fromhex(text)
    except ValueError:
        raise EncodingError(field, "hexadecimal text", repr(text[:80])) from None
    if size is not None and len(data) != size:
        raise EncodingError(field, f"{size} bytes ({2 * size} hex digits)", f"{len(data)} bytes")
    return data
