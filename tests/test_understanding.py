"""actions/understanding.py: answers read from their words, never from the intent classifier."""

from __future__ import annotations

import pytest

from actions.understanding import (Vocabulary, asks_to_book, dentist_in, interruption, is_start_over, name_in,
                                   names_a_task, phone_in,
                                   reads_as_name, service_in, strip_name, yes_no)

VOCAB = Vocabulary.build(
    {"cleaning": ["Cleaning", "checkup", "check up", "teeth cleaning"], "filling": ["Filling", "cavity"],
     "root canal": ["Root canal", "rct"], "consultation": ["Consultation", "consult"],
     "whitening": ["Whitening", "bleaching"], "crown": ["Crown"], "extraction": ["Extraction", "pull a tooth"],
     "emergency visit": ["Emergency visit"]},
    {"alvarez": ["Maria Alvarez", "Alvarez", "Maria"], "chen": ["James Chen", "Chen", "James"],
     "patel": ["Priya Patel", "Patel", "Priya"]})


@pytest.mark.parametrize("text, kind", [
    ("stop", "stop"), ("Stop it!", "stop"), ("never mind", "stop"), ("cancel that", "stop"), ("nvm", "stop"),
    ("forget it", "stop"), ("no thanks", "stop"),
    ("my tooth is bleeding", "emergency"), ("I'm in a lot of pain", "emergency"), ("urgent", "emergency"),
    ("can I talk to a person", "handoff"), ("I want to speak with the receptionist", "handoff"),
    ("what time do you open?", "question"), ("do you take insurance", "question"),
    ("Ng", None), ("Robert'); DROP TABLE patients;--", None), ("Stopford", None), ("Maria Stop", None),
    ("Friday at 10", None), ("212 555 0101", None),
])
def test_interruptions_are_read_from_their_words(text, kind):
    assert interruption(text) == kind


@pytest.mark.parametrize("text, name", [
    ("my name is Ana Lima", "Ana Lima"), ("it's José Álvarez-Ruiz", "José Álvarez-Ruiz"),
    ("I'm Siobhán O'Brien", "Siobhán O'Brien"), ("Ng here", "Ng"), ("this is 李小龙", "李小龙"),
    ("name: jean-luc picard", "jean-luc picard"), ("call me Bo", "Bo"), ("maria lopez", "maria lopez"),
    ("Hi, my name's Olúwaṣeun Adéyemí.", "Olúwaṣeun Adéyemí"),
    ("Of course! Omar Cohen", "Omar Cohen"), ("Great, it's Ana Lima", "Ana Lima"), ("Sure thing! Bo Li", "Bo Li"),
    ("Right Said Fred", "Right Said Fred"),  # no punctuation: the words are the name
])
def test_names_lose_their_introductions(text, name):
    assert strip_name(text) == name
    assert reads_as_name(strip_name(text))


@pytest.mark.parametrize("text", ["yes", "ok", "hello", "what", "tomorrow", "212 555 0101", "3pm", "",
                                  "a" * 201, "I would like a cleaning on Friday please at ten"])
def test_what_is_not_a_name(text):
    assert not reads_as_name(strip_name(text))


@pytest.mark.parametrize("text, name", [
    ("hi im john smith i need a cleanign with dr chen tuesday at 10 my number is 212 555 0101", "John Smith"),
    ("cleaning friday morning, my name is Ana Lima and my phone is 2125550101", "Ana Lima"),
    ("this is Priya from 5th street, can I book a filling", "Priya"),
    ("book a cleaning with dr chen tomorrow", None),
    ("I'm looking for a filling next week", None),
])
def test_a_name_given_in_passing(text, name):
    assert name_in(text) == name


@pytest.mark.parametrize("text, phone", [
    ("212 555 0101", "212 555 0101"), ("my number is (212) 555-0101 thanks", "(212) 555-0101"),
    ("call me on +1 212 555 0101", "+1 212 555 0101"), ("wrong number, it's 2125550199", "2125550199"),
    ("friday at 10:30", None), ("the 3rd at 9", None),
])
def test_phone_numbers_in_text(text, phone):
    assert phone_in(text, "US") == phone


@pytest.mark.parametrize("text, service", [
    ("a cleanign please", "cleaning"), ("i need a filing", "filling"), ("root canel", "root canal"),
    ("checkup", "cleaning"), ("teeth whitenning", "whitening"), ("the consult", "consultation"),
    ("Maria Lopez", None), ("tomorrow at 3", None), ("brown", None),
])
def test_services_with_typos(text, service):
    assert service_in(text, VOCAB) == service


@pytest.mark.parametrize("text, dentist", [
    ("dr chenn", "chen"), ("Dr. Alvarez please", "alvarez"), ("priya", "patel"), ("pattel", "patel"),
    ("anyone is fine", "any"), ("no preference", "any"), ("tomorrow", None), ("a cleaning", None),
])
def test_dentists_with_typos(text, dentist):
    assert dentist_in(text, VOCAB) == dentist


@pytest.mark.parametrize("text, answer", [
    ("yes", True), ("Yes please", True), ("yep", True), ("sure, book it", True), ("sounds good", True),
    ("no", False), ("nope", False), ("no thanks", False), ("not really", False),
    ("maybe", None), ("what?", None), ("Friday", None), ("yes no", None), ("yes but not friday", None),
])
def test_yes_and_no(text, answer):
    assert yes_no(text) == answer


@pytest.mark.parametrize("text, expected", [
    ("start over", True), ("let's start again", True), ("restart", True), ("Start over please", False),
    ("I want to start over at 5", False), ("stop", False),
])
def test_start_over(text, expected):
    assert is_start_over(text) == expected


@pytest.mark.parametrize("text, name", [
    ("no i's jst Eli Tanaka", "Eli Tanaka"), ("no, it's just Sean Haddad", "Sean Haddad"),
    ("the name should be Eli Tanaka", "Eli Tanaka"), ("my nae is Aisha Nguyen", "Aisha Nguyen"),
    ("no my nae is June Turing", "June Turing"), ("I'm Siobhán O'Brien", "Siobhán O'Brien"),
])
def test_names_in_corrections_and_typos(text, name):
    assert name_in(text) == name


@pytest.mark.parametrize("text", ["anyone is fine, please", "Great, eight thirty is good", "that is perfect",
                                  "monday is better for me"])
def test_a_word_after_is_is_no_name(text):
    assert name_in(text) is None  # "is" alone introduces no name ("Fine", "Good" were taken)


@pytest.mark.parametrize("text", ["the morning one", "next week works", "the first one please", "at 10 on Friday"])
def test_sentences_are_not_names(text):
    assert not reads_as_name(text)


@pytest.mark.parametrize("text, answer", [
    ("That's great, yes please. Thanks!", True), ("ok that works for me", True),
    ("yes but make it 4", None), ("great, but not Friday", None),
])
def test_a_yes_inside_a_sentence(text, answer):
    assert yes_no(text) == answer


@pytest.mark.parametrize("text, book, task", [
    ("Hi there! Could I get a tooth extraction tomorrow morning? Thanks!", True, False),
    ("I need to move my appointment", True, True), ("cancel my visit on friday", True, True),
    ("what do I have coming up", False, True), ("hello", False, False),
    ("i ned an appointmennt thanks", True, False), ("can i bok a consult", True, False),
])
def test_asking_to_book_and_naming_a_task(text, book, task):
    assert (asks_to_book(text), names_a_task(text)) == (book, task)


@pytest.mark.parametrize("text, switch", [
    ("hey ned to canceel my extraction on friday thanks", "switch:cancel"),
    ("Hi I'd lie to change the time of my cleaning appointment", "switch:reschedule"),
    ("can i move my visit to friday", "switch:reschedule"),
    ("Good morning! I just moved to the area. Could I get a tooth extraction?", None),
    ("book my cleaning", None), ("I'd like another cleaning, and to change my habits", None),
])
def test_a_message_about_a_visit_already_booked(text, switch):
    from actions.understanding import changes_a_visit
    assert changes_a_visit(text) == switch
