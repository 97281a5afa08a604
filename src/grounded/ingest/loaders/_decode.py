"""Byte-level checks shared by the text formats."""

from __future__ import annotations

from grounded.errors import LoadError


def decode_utf8(data: bytes) -> str:
    if not data.strip():
        raise LoadError("empty file")
    if b"\x00" in data[:8192]:
        raise LoadError("binary file (contains NUL bytes), not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LoadError(
            f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "re-save the file as UTF-8"
        ) from exc
    if not text.strip():
        raise LoadError("empty file")
    return text
