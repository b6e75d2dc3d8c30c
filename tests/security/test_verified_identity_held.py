"""An attack on the chat's code step that held up in the same review: a code texted for one
conversation opens no other, neither within the resend wait nor after it."""

from __future__ import annotations

from datetime import timedelta

from actions.booking import ValidateBookingForm
from action_kit import Chat, sent_code, type_code
from test_actions_verify import EMMA, clock, code_asked, gw, visits  # noqa: F401 (fixtures)


async def test_a_code_texted_for_one_conversation_opens_no_other(gw, engine, clock):  # noqa: F811
    before = visits(engine, EMMA)
    form = ValidateBookingForm()
    emma, stranger = Chat("emma-web"), Chat("stranger-web")
    assert (await code_asked(emma, name="Emma", phone="212 555 0101")).responses == ["utter_code_sent"]
    emmas = sent_code(gw.settings.database_url, EMMA)
    # within the resend wait the stranger's chat gets no code of its own; Emma's does not open it
    assert (await code_asked(stranger, name="Not Emma", phone="212 555 0101")).responses == ["utter_code_too_soon"]
    turn = await type_code(stranger, form, gw.settings.database_url, EMMA, emmas)
    assert "utter_booked" not in turn.responses
    clock.now += timedelta(seconds=31)
    turn = await type_code(stranger, form, gw.settings.database_url, EMMA, emmas)  # after its own code went out
    assert "utter_booked" not in turn.responses and visits(engine, EMMA) == before
