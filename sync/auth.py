"""Who a token names, for the REST API and Socket.IO connect alike.

A token larger than ``SYNC_MAX_TOKEN_BYTES`` (ours are about 200 bytes) is refused before it is
decoded, so a client cannot make every request cost a base64 and JSON decode of a quarter
megabyte; everything else is ``bot.tokens.verify``.
"""

from __future__ import annotations

from bot.settings import Settings
from bot.tokens import Identity, TokenError, verify


def identify(token: object, settings: Settings) -> Identity:
    """The identity ``token`` proves, or ``TokenError`` with the reason."""
    limit = settings.sync_max_token_bytes
    if isinstance(token, str) and (len(token) > limit or len(token.encode("utf-8", "surrogatepass")) > limit):
        raise TokenError(f"token too large: at most {limit} bytes")
    return verify(token, settings=settings)
