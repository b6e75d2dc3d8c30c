"""Server-to-client websocket frames, built once per event and written as they are.

A frame from server to client is never masked (RFC 6455, 5.1), so the bytes of one event
are the same for every recipient: the engine builds them once per event view (``Wire`` in
``sync/engine.py``) and writes them to each recipient's transport. Frames are plain
(uncompressed): the lean sessions do not negotiate permessage-deflate.
"""

from __future__ import annotations


def _frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 127)) + n.to_bytes(8, "big")
    return head + payload


def text_frame(text: str) -> bytes:
    """One unmasked, final websocket text frame (server to client) carrying ``text``."""
    return _frame(0x1, text.encode())


def binary_frame(data: bytes) -> bytes:
    """One unmasked, final websocket binary frame (server to client) carrying ``data``."""
    return _frame(0x2, data)
