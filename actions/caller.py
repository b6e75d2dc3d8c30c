"""Who a chat message comes from (``actions.session.caller`` builds it from the message)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.booking import ChatOrigin


@dataclass(frozen=True)
class Caller:
    patient_id: int | None  # the signed-in patient; None in an anonymous chat
    authenticated: bool
    conversation_id: str = ""
    client: str | None = None

    @property
    def origin(self) -> ChatOrigin:
        return ChatOrigin(self.conversation_id, self.client, signed_in=self.authenticated)
