"""Reading a patient's answer to the question the form asked, without the intent classifier.

While a form waits for a name, a phone number, a service, a dentist or a time, the text typed is
read here first: the classifier may call "Ng" out of scope or a surname "stop", but a reply that
reads as the answer is the answer. Only a message that is *clearly* something else — stopping, an
emergency, asking for a person, a question about the clinic — is left to the rules; those are
recognised from their words (``interruption``), not from the model's guess.

Pure: every function takes the text and what it is compared with (the catalogue's names, the
clinic's phone region), so tests need no Rasa and no database.

Service and dentist names are matched with ``rapidfuzz`` (typos: "cleanign", "dr chenn"); the
words for stopping, emergencies and hand-offs are short lists kept here, since they must be
recognised before and without the model.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import phonenumbers
from rapidfuzz import fuzz, process
from rapidfuzz.distance import DamerauLevenshtein

# --- what is clearly not an answer ---------------------------------------------------------
_STOP = re.compile(
    r"^\s*(?:oh\s+|no\s+|ok\s+|okay\s+)?(?:please\s+)?(stop|stop it|cancel|cancel (?:that|this|it|the booking)|"
    r"quit|exit|abort|never ?mind|nvm|forget (?:it|about it)|leave it|i changed my mind|i've changed my mind|"
    r"don'?t book|do not book|no thanks?|i don'?t want (?:it|to book|an appointment) ?(?:anymore)?)"
    r"[\s.!]*$", re.IGNORECASE)
_EMERGENCY = re.compile(
    r"\b(emergency|urgent(?:ly)?|bleeding|bleeds|swollen|swelling|abscess|unbearable|severe pain|"
    r"in (?:a lot of )?pain|(?:really |so |very )?painful|toothache|tooth ache|knocked out|"
    r"broke (?:my|a) tooth|broken tooth|cracked tooth|hurts? (?:so|really|a lot|badly)|can'?t sleep)\b",
    re.IGNORECASE)
_HANDOFF = re.compile(
    r"\b(human|real person|a person|someone|somebody|receptionist|front desk|an agent|operator|"
    r"(?:talk|speak) (?:to|with))\b", re.IGNORECASE)
_QUESTION_START = re.compile(
    r"^\s*(what|when|where|why|how|who|which|do you|does|did|can you|can i|could you|is (?:it|there|the)|"
    r"are (?:you|there)|will|should)\b", re.IGNORECASE)
_START_OVER = re.compile(r"^\s*(?:let'?s\s+|can we\s+|please\s+)?(start over|start again|restart|begin again|"
                         r"from the (?:start|beginning|top)|start from scratch|reset)[\s.!]*$", re.IGNORECASE)


def interruption(text: str) -> str | None:
    """``stop``, ``emergency``, ``handoff`` or ``question`` when ``text`` clearly does that."""
    if _STOP.match(text):
        return "stop"
    if _EMERGENCY.search(text):
        return "emergency"
    if _HANDOFF.search(text):
        return "handoff"
    if text.rstrip().endswith("?") or _QUESTION_START.match(text):
        return "question"
    return None


_BOOKING_CUE = re.compile(r"\b(boo?k\w*|bok|a+pp?oi?n+t\w*|apo?intment\w*|appt|apptment|schedu?l\w*|shedul\w*|"
                          r"reserv\w*|come in|see (?:a|the) dentist|get (?:a|an|my)|ne+d (?:a|an)|visit)\b",
                          re.IGNORECASE)
_TASK_CUE = re.compile(
    r"\b(do i have|what (?:appointments|visits|bookings)|list|show me|mov(?:e|ing)\b(?!\s+(?:to|here|in|into)\b)|mvoe|resch\w*|reshed\w*|res?che?d\w*|postpon\w*|"
    r"push (?:it )?back|chang\w*|chnag\w*|canc\w*|cance\w*|cacel\w*|canel\w*|call off|upcoming|"
    r"what do i have|my\b[\w\s]{0,25}\b(?:appointments?|appt|visits?|bookings?))\b", re.IGNORECASE)


_CANCEL_VERB = re.compile(r"\b(canc\w*|cance\w*|cacel\w*|canel\w*|call off)\b", re.IGNORECASE)
_MOVE_VERB = re.compile(r"\b(mov(?:e|ing)\b(?!\s+(?:to|here|in|into)\b)|mvoe|resch\w*|reshed\w*|postpon\w*|"
                        r"push (?:it )?back|chang\w*|chnag\w*)", re.IGNORECASE)
_NEW_VISIT = re.compile(r"\b(book\w*|new|another|second|also)\b", re.IGNORECASE)


# Verbs of changing a visit, as typed with a typo or two ("caancel", "moe", "reshedule").
_VERBS = (("cancel", "switch:cancel", 2), ("reschedule", "switch:reschedule", 3), ("postpone", "switch:reschedule", 2),
          ("change", "switch:reschedule", 1), ("move", "switch:reschedule", 1))
_NOT_VERBS = frozenset({"more", "mode", "love", "mole", "movie", "moves", "range", "chance", "canned"})


def _verb_of(word: str) -> str | None:
    for verb, switch, most in _VERBS:
        if word.startswith(verb) or (len(word) >= len(verb) - 1 and word not in _NOT_VERBS
                                     and DamerauLevenshtein.distance(word, verb) <= most):
            return switch
    return None


def cancels_not_moves(text: str) -> bool:
    """Whether ``text`` asks to cancel a visit and says nothing of moving it ("I just moved to the
    area. cancel my appointment"), so a move the model read into it is a cancellation."""
    return changes_a_visit(text) == "switch:cancel" and not _MOVE_VERB.search(text)


def changes_a_visit(text: str) -> str | None:
    """``switch:cancel`` / ``switch:reschedule`` for a message about a visit already booked ("I need to
    cancel my extraction", "change the time of my cleaning appointment", "Can I caancel my
    consultation?"), None otherwise."""
    if _NEW_VISIT.search(text) or not re.search(r"\bmy\b", text, re.IGNORECASE):
        return None
    if _CANCEL_VERB.search(text):
        return "switch:cancel"
    if _MOVE_VERB.search(text):
        return "switch:reschedule"
    if re.search(r"\bmoved\s+(?:to|here|in|into)\b", text, re.IGNORECASE):
        return None
    for word in re.findall(r"[a-z]+", text.lower()):
        found = _verb_of(word)
        if found:
            return found
    return None


_DATE_SPAN = re.compile(
    r"\b(?:(?:on|for)\s+)?((?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?\s+\d{1,2}(?:st|nd|rd|th)?"
    r"(?:,?\s+\d{4})?|\d{1,2}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)"
    r"[a-z]*(?:,?\s+\d{4})?|\d{1,2}/\d{1,2}(?:/\d{2,4})?|in\s+\d{4})\b", re.IGNORECASE)


def date_span(text: str) -> str | None:
    """A calendar date written in ``text`` ("March 3, 2099", "3rd of May", "12/3", "in 2099"), as typed."""
    found = _DATE_SPAN.search(text)
    return found.group(1) if found else None


def asks_to_book(text: str) -> bool:
    """Whether ``text`` asks for a visit in so many words ("could I get ...", "book", "appointment")."""
    return bool(_BOOKING_CUE.search(text))


def names_a_task(text: str) -> bool:
    """Whether ``text`` speaks of moving, cancelling or listing visits in so many words."""
    if _TASK_CUE.search(text):
        return True
    if re.search(r"\bmoved\s+(?:to|here|in|into)\b", text, re.IGNORECASE):
        return False
    return any(_verb_of(w) for w in re.findall(r"[a-z]+", text.lower()))


def is_start_over(text: str) -> bool:
    return bool(_START_OVER.match(text))


# --- yes and no ------------------------------------------------------------------------------
_YES = re.compile(r"^\s*(yes|yeah|yea|yep|yup|ya|y|sure|ok|okay|k|fine|correct|right|perfect|great|"
                  r"sounds good|that'?s (?:right|fine|good|perfect|correct)|do it|go ahead|book it|please do|"
                  r"confirm(?:ed)?|absolutely|definitely|of course|alright|all right)\b(?![\s\w]*\b(?:not|no)\b)",
                  re.IGNORECASE)
_NO = re.compile(r"^\s*(no|nope|nah|n|not really|don'?t|do not|negative|wrong|that'?s wrong|not that)\b",
                 re.IGNORECASE)


_YES_ANYWHERE = re.compile(r"\b(yes|yeah|yep|yup|sure|ok|okay|correct|perfect|great|sounds good|book it|"
                           r"go ahead|please do|confirm(?:ed)?|absolutely|definitely|that works|works for me)\b",
                           re.IGNORECASE)
_NO_ANYWHERE = re.compile(r"\b(no|nope|nah|not|don'?t|do not|wrong|never ?mind|instead|rather|change|"
                          r"but|actually)\b", re.IGNORECASE)


def yes_no(text: str) -> bool | None:
    """True for a yes ("That's great, yes please. Thanks!"), False for a plain no, None for
    anything else or both at once (never guessed)."""
    if _NO.match(text):
        return False
    yes = _YES.match(text)
    if yes and not _NO_ANYWHERE.search(text, yes.end()):
        return True
    if _YES_ANYWHERE.search(text) and not _NO_ANYWHERE.search(text) and len(text) <= 80:
        return True
    return None


# --- names -----------------------------------------------------------------------------------
# "my name is", with the typos people make in it ("my nae is", "my nmae's")
_MY_NAME = r"my (?:full )?n[a-z]{1,3}e?(?: is|'s|s)"
_INTRO = (rf"{_MY_NAME}|name is|name'?s|name:|(?:the )?n[a-z]{{1,4}}e?(?: is|'s| s[a-z]{{2,5}}d be)|"
          r"(?:change|correct|fix) (?:the|my) name to|it should be|i am|i'?m|im|it'?s|i's|its|it is|this is|"
          r"call me|you can call me|under|book it under|put it under|under the name(?: of)?")
_NAME_PREFIX = re.compile(
    # "Of course! Omar Cohen", "Great, Ana Lima": a word of assent with its punctuation
    rf"^\s*(?:(?:of course|certainly|absolutely|sure thing|great|perfect|lovely|alright|all right|right|yeah|"
    rf"yep|cool|no problem|happy to)\s*[,.!]+\s*"
    rf"|(?:hi|hello|hey|ok|okay|sure|yes|no|nope|sorry|oops|actually|wait|oh)\b[\s,.!]*)*"
    rf"(?:(?:{_INTRO})\s+)?(?:(?:just|jst|juts|actually)\s+)?", re.IGNORECASE)
_NAME_SUFFIX = re.compile(r"\s+(?:here|speaking|thanks|thank you|please)[\s.!]*$", re.IGNORECASE)
# A name: letters of any script, with the marks names carry (O'Brien, Jean-Luc, St. John).
_NAME_SHAPE = re.compile(r"^[^\W\d_][^\W\d_'’.\-]*(?:[\s'’.\-]+[^\W\d_][^\W\d_'’.\-]*){0,5}\.?$")
_NOT_NAMES = frozenset("""
yes yeah yep no nope ok okay sure hi hello hey thanks thank you please help stop cancel quit bye
goodbye what why how when where who anything whatever idk dunno none nothing morning afternoon
evening today tomorrow asap any anyone anybody
""".split())


def strip_name(text: str) -> str:
    """``text`` without "my name is" / "it's" / "no, it's just" before it and "here" after it."""
    name = _NAME_PREFIX.sub("", text.strip(), count=1)
    return _NAME_SUFFIX.sub("", name).strip().strip(",.!").strip()


# Words a sentence has and a name does not ("the morning one", "next week works").
_FUNCTION_WORDS = frozenset("""
the one a an at on in with for to is it that this of my your some next last first second third please
time times day days week works work fine good okay ok would could can will be me i you we they are was
""".split())


def reads_as_name(text: str) -> bool:
    """Whether ``text`` (already stripped) looks like a person's name and nothing else."""
    if not text or len(text) > 200 or not _NAME_SHAPE.match(text):
        return False
    words = re.findall(r"[^\W\d_]+", text.lower())
    if len(words) > 1 and any(w in _FUNCTION_WORDS for w in words):
        return False
    return not all(w in _NOT_NAMES for w in words)


_NAME_WORD = r"[^\W\d_](?:[^\W\d_]|['’\-](?=[^\W\d_]))*"
_NAME_IN_SENTENCE = re.compile(
    rf"(?:\b(?:{_INTRO}))\s+(?:(?:just|jst|juts|actually)\s+)?({_NAME_WORD}(?:\s+{_NAME_WORD}){{0,3}})", re.IGNORECASE)


# what a patient says is *not* meant ("Dr Patel not Dr Chen", "4pm not 3pm", "a cleaning, not
# extraction"): it names no offer, no dentist, no service
NEGATED = re.compile(r"\b(?:not|rather than|instead of)\s+(?:with\s+|the\s+)?(?:(?:dr|doctor)\.?\s*)?"
                     r"(?:[\w:']+\s+){0,2}?[\w:']+(?=\s*(?:[,.;!?]|$))", re.IGNORECASE)


def name_in(text: str, *, not_words: Iterable[str] = ()) -> str | None:
    """A name introduced in a longer message ("... my name is Ana Lima, 212 555 0101 ..."):
    the words after "my name is" / "I'm" / "this is" up to the first word that is not a name's."""
    stop = {w.lower() for w in not_words} | _NOT_NAMES | {
        "and", "for", "with", "at", "on", "my", "phone", "number", "is", "i", "a", "an", "the", "to",
        "would", "like", "want", "need", "looking", "booking", "book", "calling", "dr", "doctor",
        "next", "this", "in", "from", "please", "can", "could", "free", "available", "interested"}
    for m in _NAME_IN_SENTENCE.finditer(text):
        words = []
        for word in m.group(1).split():
            if word.lower() in stop:
                break
            words.append(word)
        if words and reads_as_name(" ".join(words)):
            return " ".join(w[:1].upper() + w[1:] if w.islower() else w for w in words)
    return None


# --- phone numbers ---------------------------------------------------------------------------
def phone_in(text: str, region: str) -> str | None:
    """The first phone number written in ``text`` (as typed), if any."""
    for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.POSSIBLE):
        return match.raw_string
    digits = re.search(r"\+?\d[\d\s().\-]{6,}\d", text)  # "5551234567" glued to words
    return digits.group(0) if digits else None


# --- services and dentists ---------------------------------------------------------------------
@dataclass(frozen=True)
class Vocabulary:
    """The spellings of each canonical service / dentist key (from the NLU synonyms and the
    catalogue), for matching words typed with typos."""

    services: Mapping[str, str]   # spelling -> service key
    dentists: Mapping[str, str]   # spelling -> dentist key

    @classmethod
    def build(cls, services: Mapping[str, Iterable[str]], dentists: Mapping[str, Iterable[str]]) -> "Vocabulary":
        def flat(table: Mapping[str, Iterable[str]]) -> dict[str, str]:
            out: dict[str, str] = {}
            for key, spellings in table.items():
                out[key.lower()] = key
                for s in spellings:
                    out[s.lower()] = key
            return out
        return cls(flat(services), flat(dentists))


ANY_DENTIST = re.compile(r"\b(any(?:one|body| dentist| doctor| of them)?|no preference|don'?t mind|doesn'?t matter|"
                         r"whoever|either|first available)\b", re.IGNORECASE)


def _fuzzy(text: str, table: Mapping[str, str], *, cutoff: float) -> str | None:
    words = re.findall(r"[a-z]+(?:[-'][a-z]+)?", text.lower())
    if not words:
        return None
    grams = {" ".join(words[i:i + n]) for n in (1, 2, 3) for i in range(len(words) - n + 1)}
    best: tuple[float, int, str] | None = None
    for gram in grams:
        if len(gram) < 3:
            continue
        found = process.extractOne(gram, table.keys(), scorer=fuzz.ratio, score_cutoff=cutoff)
        if found is None:
            continue
        score = (found[1], len(found[0]), table[found[0]])
        if best is None or score > best:
            best = score
    return best[2] if best else None


def service_in(text: str, vocabulary: Vocabulary) -> str | None:
    """The service key ``text`` names ("a cleanign", "my root canel"), if any."""
    return _fuzzy(text, vocabulary.services, cutoff=84)


def dentist_in(text: str, vocabulary: Vocabulary) -> str | None:
    """The dentist key ``text`` names ("dr chenn", "Priya"), ``any`` for no preference."""
    found = _fuzzy(re.sub(r"\b(?:dr|doctor)\b\.?", " ", text, flags=re.IGNORECASE), vocabulary.dentists,
                   cutoff=80)
    if found is None and ANY_DENTIST.search(text):
        return "any"
    return found
