"""Answers in the patient's own words, form by form (actions/asking.py), against a real seeded
PostgreSQL with a pinned clock. The intents given to ``Chat.say`` are the wrong ones on purpose
where the point is that the classifier does not decide."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest

from actions.asking import AskPhone, AskTime
from actions.booking import AskBookingConfirmed, AskSlotChoice, ValidateBookingForm
from actions.dates import When
from actions.formatting import decode_choice
from actions.manage import ValidateCancelForm
from action_kit import Chat, seeded_gateway

TZ = ZoneInfo("America/New_York")
NOW = datetime(2027, 3, 1, 8, 0, tzinfo=TZ)  # a Monday morning


@pytest.fixture
def gw(engine, settings, availability_source):
    with seeded_gateway(engine, settings, NOW, availability_source) as gateway:
        yield gateway


def local(value: str | None) -> datetime:
    choice = decode_choice(value)
    assert choice is not None, value
    return choice[0].astimezone(TZ)


async def at_the_offers(gw, request="a cleaning with dr chen on wednesday") -> tuple[Chat, list[datetime]]:
    chat = Chat()
    chat.active_loop = "booking_form"
    chat.say(request, "book_appointment", {"service": "cleaning", "dentist": "chen", "time": "on wednesday"},
             service="cleaning", dentist="chen", time="on wednesday")
    await chat.run(ValidateBookingForm())
    chat.slots["requested_slot"] = "slot_choice"
    offer = await chat.run(AskSlotChoice())
    return chat, [local(b["payload"].split('"slot_choice": "')[1].split('"')[0]) for b in offer.buttons()]


async def test_a_name_is_taken_whatever_the_classifier_says(gw):
    for text, intent in [("Robert'); DROP TABLE patients;--", "stop"), ("Ng", "out_of_scope"),
                         ("it's José Álvarez-Ruiz", "greet"), ("Stopford here", "stop")]:
        chat = Chat()
        chat.active_loop = "booking_form"
        chat.slots.update(requested_slot="full_name")
        chat.say(text, intent)  # no slot mapping took it: the intent is one the mappings exclude
        turn = await chat.run(ValidateBookingForm())
        assert turn.responses == [], text
        expected = {"Ng": "Ng", "it's José Álvarez-Ruiz": "José Álvarez-Ruiz", "Stopford here": "Stopford"}
        assert turn.slots()["full_name"] == expected.get(text, text)


@pytest.mark.parametrize("text", ["stop", "never mind", "my tooth is bleeding", "can I talk to a person",
                                  "what are your opening hours?"])
async def test_what_clearly_is_something_else_is_left_to_the_rules(gw, text):
    chat = Chat()
    chat.active_loop = "booking_form"
    chat.slots.update(requested_slot="full_name", service="cleaning")
    chat.say(text, "inform")  # even if the model got it wrong, the words decide
    turn = await chat.run(ValidateBookingForm())
    assert turn.events == [] and turn.responses == []  # nothing filled: the form steps aside


async def test_the_same_question_escalates_instead_of_repeating(gw):
    chat = Chat()
    chat.active_loop = "booking_form"
    chat.slots.update(requested_slot="phone", service="cleaning", full_name="Ana Lima")
    said = []
    for text in ["my phone", "dunno", "no idea", "none"]:
        chat.say(text, "nlu_fallback")
        turn = await chat.run(ValidateBookingForm())
        ask = await chat.run(AskPhone())
        said.append(turn.responses + ask.responses)
        assert chat.slots["phone"] is None and chat.slots["full_name"] == "Ana Lima"  # nothing given is lost
    assert said == [["utter_invalid_phone", "utter_ask_phone"], ["utter_still_need"], ["utter_stuck"],
                    ["utter_invalid_phone", "utter_ask_phone"]]
    chat.say("212 555 0101", "nlu_fallback")
    turn = await chat.run(ValidateBookingForm())
    assert turn.slots()["phone"] == "+12125550101" and turn.slots()["misunderstood"] is None


async def test_the_second_try_says_what_was_understood_with_the_offers_as_examples(gw):
    chat, starts = await at_the_offers(gw)
    for text in ["hmm", "blue"]:
        chat.say(text, "nlu_fallback")
        turn = await chat.run(ValidateBookingForm())
    assert turn.responses == ["utter_still_need"]
    message = turn.messages[0]
    assert "a cleaning with Dr. Chen" in message["so_far"]
    assert starts[0].strftime("%I:%M").lstrip("0") in message["examples"]
    assert len(message["buttons"]) == len(starts) + 1  # the offers are shown with it, once (and the waitlist)
    assert (await chat.run(AskSlotChoice())).responses == []


async def test_what_was_understood_leaves_out_the_answer_just_refused(gw):
    chat = Chat()
    chat.active_loop = "booking_form"
    chat.slots.update(requested_slot="full_name", service="cleaning", dentist="any")
    for text in ["yes", "yes"]:  # Rasa's from_text mapping offers "yes" as the name, twice
        chat.say(text, "affirm", full_name=text)
        turn = await chat.run(ValidateBookingForm())
    assert turn.responses == ["utter_still_need"] and turn.slots()["full_name"] is None
    assert turn.messages[0]["so_far"] == "So far I have a cleaning with any dentist. "


@pytest.mark.parametrize("pick", ["time", "position", "dentist and time"])
async def test_an_offer_named_in_words_is_taken(gw, pick):
    chat, starts = await at_the_offers(gw)
    wanted = starts[1]
    text = {"time": f"the {wanted.strftime('%I:%M').lstrip('0')} one please", "position": "the 2nd one",
            "dentist and time": f"chen at {wanted.strftime('%I:%M %p').lstrip('0')}"}[pick]
    chat.say(text, "affirm", {"time": "1pm"} if pick == "time" else None)  # a stray time entity, too
    turn = await chat.run(ValidateBookingForm())
    assert local(turn.slots()["slot_choice"]) == wanted
    assert "utter_slot_not_offered" not in turn.responses and "utter_slot_not_understood" not in turn.responses
    assert chat.slots["time"] == "on wednesday"  # the pick is no new request


async def test_a_free_time_not_offered_is_taken_and_a_taken_one_brings_the_nearest(gw):
    chat, starts = await at_the_offers(gw)
    wednesday = starts[0].date()
    free = [s for s in gw.free_slots(1, datetime.combine(wednesday, time(0), TZ),
                                     datetime.combine(wednesday, time(23), TZ), 2)]
    not_offered = next(s.starts_at.astimezone(TZ) for s in free if s.starts_at.astimezone(TZ) not in starts)
    chat.say(f"{not_offered.strftime('%I:%M %p').lstrip('0')} works", "inform")
    turn = await chat.run(ValidateBookingForm())
    assert local(turn.slots()["slot_choice"]) == not_offered

    chat, starts = await at_the_offers(gw)
    chat.say("3:30 in the morning", "inform")  # the clinic is closed: not free
    turn = await chat.run(ValidateBookingForm())
    assert "utter_slot_not_offered" not in turn.responses


async def test_a_dentist_named_against_another_changes_the_dentist(gw):
    """ "no sorry Dr Patel not Dr Chen" at Dr Chen's offers: the dentist not meant names no offer,
    so it is a change of dentist, never "more than one of the times fits"."""
    chat, starts = await at_the_offers(gw)
    chat.say("no sorry Dr. Priya Patel not Dr Chen", "inform")  # the model tagged neither
    turn = await chat.run(ValidateBookingForm())
    assert "utter_several_match" not in turn.responses
    assert turn.slots().get("slot_choice") is None and chat.slots["dentist"] == "patel"


async def test_several_matches_ask_among_just_those(gw):
    chat = Chat()
    chat.active_loop = "booking_form"
    chat.say("a cleaning with anyone next week", "book_appointment",
             {"service": "cleaning", "dentist": "any", "time": "next week"},
             service="cleaning", dentist="any", time="next week")
    await chat.run(ValidateBookingForm())
    chat.slots["requested_slot"] = "slot_choice"
    offer = await chat.run(AskSlotChoice())
    starts = [local(b["payload"].split('"slot_choice": "')[1].split('"')[0]) for b in offer.buttons()]
    days = {s.date() for s in starts}
    assert len(days) >= 2
    chat.say("the morning one", "inform")
    turn = await chat.run(ValidateBookingForm())
    mornings = [s for s in starts if s.hour < 12]
    if len(mornings) > 1:
        assert turn.responses == ["utter_several_match"]
        assert len(turn.slots()["offered_slots"]) == len(mornings)
    else:
        assert local(turn.slots()["slot_choice"]) == mornings[0]


async def at_the_summary(gw) -> tuple[Chat, datetime]:
    chat, starts = await at_the_offers(gw)
    chat.say("the first one", "inform")
    await chat.run(ValidateBookingForm())
    chat.slots.update(requested_slot="full_name")
    chat.say("Ana Lima", "inform", full_name="Ana Lima")
    await chat.run(ValidateBookingForm())
    chat.slots.update(requested_slot="phone")
    chat.say("212 555 0101", "inform", phone="212 555 0101")
    await chat.run(ValidateBookingForm())
    chat.slots.update(requested_slot="confirmed")
    return chat, starts[0]


async def test_the_summary_shows_every_final_value(gw):
    chat, first = await at_the_summary(gw)
    summary = await chat.run(AskBookingConfirmed())
    assert summary.messages[0]["who"] == ", for Ana Lima (+12125550101)"
    chat.say("wrong number, it's 646 555 0111", "deny", {"phone": "646 555 0111"}, phone="646 555 0111",
             confirmed=False)
    turn = await chat.run(ValidateBookingForm())
    assert turn.slots()["phone"] == "+16465550111" and turn.slots()["confirmed"] is None
    assert chat.slots["full_name"] == "Ana Lima" and local(chat.slots["slot_choice"]) == first
    assert (await chat.run(AskBookingConfirmed())).messages[0]["who"] == ", for Ana Lima (+16465550111)"


async def test_make_it_4_instead_moves_the_hour_on_the_same_day(gw):
    chat, first = await at_the_summary(gw)
    chat.say("make it 4 instead", "inform", {"time": "4"}, time="4")
    turn = await chat.run(ValidateBookingForm())
    assert chat.slots["confirmed"] is None and chat.slots["time"] == "on wednesday"
    if chat.slots["slot_choice"]:
        assert local(chat.slots["slot_choice"]) == datetime.combine(first.date(), time(16), TZ)
    else:  # taken: the nearest times that day are offered
        assert turn.responses == ["utter_time_taken"] and chat.slots["offered_slots"]


async def test_no_thursday_is_a_correction_not_a_no(gw):
    chat, first = await at_the_summary(gw)
    chat.say("no, Thursday", "deny", {"time": "Thursday"}, time="Thursday", confirmed=False)
    turn = await chat.run(ValidateBookingForm())
    assert "utter_booking_declined" not in turn.responses
    assert chat.slots["confirmed"] is None and chat.slots["slot_choice"] is None
    assert chat.slots["service"] == "cleaning" and chat.slots["full_name"] == "Ana Lima"
    assert chat.slots["time"] == f"Thursday at {first.strftime('%H:%M')}"  # only the day changes


async def test_everything_in_one_breath(gw):
    chat = Chat()
    chat.active_loop = "booking_form"
    # what the model tagged: only the time; the service and dentist have typos
    chat.say("hi im john smith i need a cleanign with dr chenn wednesday at 10 my number is 212 555 0101",
             "book_appointment", {"time": "wednesday at 10"}, time="wednesday at 10")
    turn = await chat.run(ValidateBookingForm())
    slots = chat.slots
    assert (slots["service"], slots["dentist"], slots["full_name"], slots["phone"]) == (
        "cleaning", "chen", "John Smith", "+12125550101")
    assert slots["time_window"] and turn.responses == []


async def test_start_over_clears_the_request_but_not_the_patient(gw):
    chat, _ = await at_the_summary(gw)
    chat.say("start over", "stop")
    await chat.run(ValidateBookingForm())
    assert [chat.slots[s] for s in ("service", "dentist", "time", "slot_choice")] == [None] * 4
    assert chat.slots["full_name"] == "Ana Lima" and chat.slots["phone"] == "+12125550101"


async def test_a_time_question_answers_when(gw):
    chat = Chat()
    chat.active_loop = "booking_form"
    chat.slots.update(requested_slot="time", service="cleaning", dentist="chen")
    chat.say("what about friday?", "faq")
    turn = await chat.run(ValidateBookingForm())
    assert turn.slots()["time"] == "what about friday?" and turn.slots()["time_window"]
    assert turn.responses == []


async def test_after_a_clinic_question_the_question_is_asked_again(gw):
    chat = Chat()
    chat.active_loop = "booking_form"
    chat.slots.update(requested_slot="time", service="cleaning", dentist="chen",
                      misunderstood={"slot": "time", "count": 2})  # the last try escalated
    chat.say("do you take insurance?", "faq")
    assert (await chat.run(ValidateBookingForm())).events == []  # the FAQ rule answers it
    assert (await chat.run(AskTime())).responses == ["utter_ask_time"]  # then the question, again


async def test_cancel_a_visit_named_in_words(gw, engine, settings):
    from bot.booking import BookingService
    from bot.tokens import Identity, mint
    booking = BookingService(engine, settings, clock=lambda: NOW)
    slot = booking.available_slots(1, datetime(2027, 3, 5, 9, tzinfo=TZ), datetime(2027, 3, 5, 17, tzinfo=TZ),
                                   dentist_id=2, limit=1)[0]
    made = booking.book(Identity("patient", "3", patient_id=3), patient_id=3, dentist_id=2, service_id=1,
                        starts_at=slot.starts_at)
    chat = Chat(metadata={"token": mint("patient", 3, settings=settings)})
    chat.active_loop = "cancel_form"
    chat.slots.update(requested_slot="appointment_id")
    chat.say("the cleaning on friday", "inform")
    turn = await chat.run(ValidateCancelForm())
    assert turn.slots().get("appointment_id") == str(made.appointment.id)


async def test_a_number_at_the_name_question_is_kept_and_the_name_asked_again(gw):
    chat = Chat()
    chat.active_loop = "booking_form"
    chat.slots.update(requested_slot="full_name", service="cleaning")
    chat.say("9175551667", "inform", {"phone": "9175551667"}, full_name="9175551667")  # as Rasa maps it
    turn = await chat.run(ValidateBookingForm())
    assert turn.responses == []  # no "Please tell me the full name": it was an answer, to the next question
    assert chat.slots["phone"] == "+19175551667" and chat.slots["full_name"] is None


async def test_yes_cancel_it_typed_is_a_yes(gw, engine, settings):
    from actions.understanding import yes_no
    assert yes_no("Yes, cancel it") is True and yes_no("No, keep it") is False


async def test_a_booking_the_model_calls_a_move_is_a_booking(gw):
    from actions.manage import ActionFinishReschedule, ValidateRescheduleForm
    chat = Chat()
    chat.active_loop = "reschedule_form"
    chat.say("Good morning! I just moved to the area. Could I get a tooth extraction with whoever is free?",
             "reschedule_appointment", {"service": "tooth extraction"}, service="tooth extraction")
    turn = await chat.run(ValidateRescheduleForm())
    assert turn.responses == [] and chat.slots["outcome"] == "book"  # no "no visits booked in this chat"
    done = await chat.run(ActionFinishReschedule())
    assert {"event": "followup", "timestamp": None, "name": "booking_form"} in done.events
    assert chat.slots["service"] == "tooth extraction"  # what it said is kept for the booking


async def test_a_cancel_the_model_calls_a_booking_goes_to_the_cancel_form(gw):
    from actions.booking import ActionFinishBooking
    chat = Chat()
    chat.active_loop = "booking_form"
    chat.say("hey ned to canceel my extraction on friday thanks", "book_appointment",
             {"service": "extraction", "time": "friday"}, service="extraction", time="friday")
    turn = await chat.run(ValidateBookingForm())
    assert turn.responses == [] and chat.slots["outcome"] == "switch:cancel"
    done = await chat.run(ActionFinishBooking())
    assert done.events[-1] == {"event": "followup", "timestamp": None, "name": "cancel_form"}
    assert done.responses == []  # no "something went wrong": the cancel form takes over


async def test_naming_the_visit_by_its_day_is_no_new_time(gw, engine, settings):
    from actions.manage import ValidateRescheduleForm
    from bot.booking import BookingService
    from bot.tokens import Identity, mint
    booking = BookingService(engine, settings, clock=lambda: NOW)
    made = []
    for day, service in ((2, 1), (5, 1)):  # a cleaning on Tuesday, another on Friday
        slot = booking.available_slots(service, datetime(2027, 3, day, 9, tzinfo=TZ),
                                       datetime(2027, 3, day, 17, tzinfo=TZ), limit=1)[0]
        made.append(booking.book(Identity("patient", "3", patient_id=3), patient_id=3,
                                 dentist_id=slot.dentist_id, service_id=service,
                                 starts_at=slot.starts_at).appointment)
    chat = Chat(metadata={"token": mint("patient", 3, settings=settings)})
    chat.active_loop = "reschedule_form"
    chat.slots.update(requested_slot="appointment_id")
    chat.say("my cleaning on tuesday", "inform", {"time": "tuesday"}, time="tuesday")
    turn = await chat.run(ValidateRescheduleForm())
    assert chat.slots["appointment_id"] == str(made[0].id)
    assert chat.slots["time"] is None and "utter_too_soon" not in turn.responses  # the new time is asked next


@pytest.mark.parametrize("text, time, kept", [("could we move my cleaning on tuesday?", "tuesday", False),
                                              ("move my cleaning on tuesday to friday", "friday", True)])
async def test_the_day_of_the_visit_or_the_day_to_move_it_to(gw, engine, settings, text, time, kept):
    from actions.manage import ValidateRescheduleForm
    from bot.booking import BookingService
    from bot.tokens import Identity, mint
    booking = BookingService(engine, settings, clock=lambda: NOW)
    slot = booking.available_slots(1, datetime(2027, 3, 2, 9, tzinfo=TZ), datetime(2027, 3, 2, 17, tzinfo=TZ),
                                   limit=1)[0]
    booking.book(Identity("patient", "3", patient_id=3), patient_id=3, dentist_id=slot.dentist_id, service_id=1,
                 starts_at=slot.starts_at)
    chat = Chat(metadata={"token": mint("patient", 3, settings=settings)})
    chat.active_loop = "reschedule_form"
    chat.say(text, "reschedule_appointment", {"time": time}, time=time)
    await chat.run(ValidateRescheduleForm())
    assert (chat.slots["time"] is not None) == kept


async def test_a_service_corrected_at_the_dentist_question_changes_the_service(gw):
    """ "I meant a cleaning, not extraction" at "which dentist?": the service changes (the one not
    meant names nothing), no dentist is read from it, and the dentist is asked again."""
    chat = Chat()
    chat.active_loop = "booking_form"
    chat.say("I need an extraction", "book_appointment", {"service": "extraction"}, service="extraction")
    await chat.run(ValidateBookingForm())
    chat.slots["requested_slot"] = "dentist"
    chat.say("I meant a cleaning, not extraction", "inform")  # the model tagged nothing
    turn = await chat.run(ValidateBookingForm())
    assert "utter_invalid_dentist" not in turn.responses
    assert chat.slots["service"] == "cleaning" and chat.slots.get("dentist") is None


async def test_a_typed_title_with_its_dentist_picks_that_offer(gw):
    """ "mon mar 8, 9:00 am · dr. alvarez" (a button's title typed) among any dentist's offers:
    the dentist it names is that offer's, so it picks it instead of searching Dr Alvarez's times."""
    chat = Chat()
    chat.active_loop = "booking_form"
    chat.say("a root canal with any dentist next monday", "book_appointment",
             {"service": "root_canal", "dentist": "any", "time": "next monday"},
             service="root canal", dentist="any", time="next monday")
    await chat.run(ValidateBookingForm())
    chat.slots["requested_slot"] = "slot_choice"
    offer = await chat.run(AskSlotChoice())
    title = offer.buttons()[0]["title"]
    assert " · Dr. " in title and not title.startswith("today")
    typed = title.lower()
    day_time, _, doc = typed.partition(" · ")
    chat.say(typed, "inform", {"time": day_time, "dentist": doc}, time=day_time, dentist=doc)
    turn = await chat.run(ValidateBookingForm())
    assert "utter_slot_not_offered" not in turn.responses
    assert turn.slots()["slot_choice"] == offer.buttons()[0]["payload"].split('"slot_choice": "')[1].split('"')[0]


async def test_a_date_corrected_in_the_same_breath_is_the_second_one(gw):
    """ "March 20, no sorry, the 22nd": two time entities with a correction between them mean the
    second (not "March 20 the 22nd", which reads as nothing or as a far year)."""
    text = "I'd like to come in for an appointment March 20, no sorry, the 22nd"
    chat = Chat()
    chat.active_loop = "booking_form"
    chat.say(text, "book_appointment", time="the 22nd")
    chat.latest["entities"] = [{"entity": "time", "value": v, "start": text.index(v), "end": text.index(v) + len(v)}
                               for v in ("March 20", "the 22nd")]
    turn = await chat.run(ValidateBookingForm())
    window = When.decode(turn.slots()["time_window"])
    assert window.start.astimezone(TZ).date() == NOW.date().replace(day=22)
    assert turn.slots()["time"] == "the 22nd"


async def test_a_visit_named_by_a_weekday_two_visits_share_asks_among_them(gw, engine, settings):
    """ "friday's" when two of the patient's visits are on Fridays: not "I can't find that
    appointment", but which of those two (both named), and the question again."""
    from bot.booking import BookingService
    from bot.tokens import Identity, mint
    booking = BookingService(engine, settings, clock=lambda: NOW)
    made = []
    for day, service in ((5, 1), (12, 3)):  # two Fridays
        slot = booking.available_slots(service, datetime(2027, 3, day, 9, tzinfo=TZ),
                                       datetime(2027, 3, day, 17, tzinfo=TZ), dentist_id=2, limit=1)[0]
        made.append(booking.book(Identity("patient", "3", patient_id=3), patient_id=3, dentist_id=2,
                                 service_id=service, starts_at=slot.starts_at).appointment)
    chat = Chat(metadata={"token": mint("patient", 3, settings=settings)})
    chat.active_loop = "cancel_form"
    chat.slots.update(requested_slot="appointment_id")
    chat.say("friday's", "inform")
    turn = await chat.run(ValidateCancelForm())
    assert turn.responses == ["utter_several_visits_match"] and turn.slots()["appointment_id"] is None
    listed = turn.messages[0]["visits"]
    assert "Mar 5" in listed and "Mar 12" in listed


async def test_a_day_every_offer_is_on_is_no_confusion(gw):
    """Offered times all on one Wednesday, the patient "corrects" to that very date: the bot says
    they all fit it and asks again among the same offers, rather than "more than one fits that"."""
    chat, starts = await at_the_offers(gw)
    assert len(starts) > 1 and len({s.date() for s in starts}) == 1
    offered = chat.slots["offered_slots"]
    day = starts[0]
    chat.say(f"sorry {day:%B} {day.day} would be better", "inform")
    turn = await chat.run(ValidateBookingForm())
    assert turn.responses == ["utter_all_offers_match"], turn.events
    assert turn.slots().get("slot_choice") is None and "offered_slots" not in turn.slots()
    assert chat.slots["offered_slots"] == offered
