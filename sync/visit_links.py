"""A reminder's signed link: ``GET /visit/<token>`` shows the visit, ``POST .../confirm`` and
``POST .../cancel`` change it (``bot.links`` makes and reads the token).

The token is the credential: it names one visit and its patient, and every action runs as that
patient through the booking service (``BookingService.confirm`` / ``cancel``), so a patient's
rules hold, the cancellation notice (``CANCEL_NOTICE_HOURS``) among them, and a token whose
patient is not the visit's opens nothing. GET only reads: mail scanners and link previews fetch
links. A POST is authorised by the token in its URL, not by a cookie, so there is nothing for
another site to forge with a visitor's credentials; still, as for the sign-in form
(``sync.login``), a POST naming another site's ``Origin`` is refused (403). Every change is a
write to ``appointments``, so the outbox triggers announce it to every dashboard.

Answers are HTML pages (``static/visit.html``), never cached (``no-store``): 200; 404 for a
forged, tampered, wrong-purpose or unknown link (one answer for all); 410 for a link whose
visit has started; 409 for a refusal (inside the notice, a cancelled visit), with the clinic's
phone; 503 when the database is down.
"""

from __future__ import annotations

import asyncio
import html
import logging
from dataclasses import dataclass

from aiohttp import web

from bot.booking import AppointmentView, Outcome, Result
from bot.db import DatabaseError
from bot.links import LinkError, LinkExpired, VisitLink, read_visit_token
from bot.reminders import when_text
from bot.tokens import Identity

from . import keys
from .api import BOOKING
from .origins import foreign_origin
from .web import page

log = logging.getLogger(__name__)

# same-origin: a form POST then names our Origin (under no-referrer a browser sends "Origin: null"),
# and the token in the address is still never sent to another site
HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "same-origin"}
LIVE = ("pending", "confirmed")


@dataclass
class Answer:
    status: int
    message: str
    error: bool = False


class Refused(Exception):
    """The link opens nothing: a page that says why, and the number to call."""

    def __init__(self, status: int, title: str, message: str):
        super().__init__(message)
        self.status, self.title = status, title


def _link(request: web.Request) -> VisitLink:
    settings = request.app[keys.SETTINGS]
    try:
        return read_visit_token(request.match_info["token"], settings)
    except LinkExpired:
        raise Refused(410, "This link has expired",
                      "A visit's link works until the visit starts.") from None
    except LinkError as exc:
        log.info("visit link refused: %s", exc)
        raise _not_valid() from None


def _not_valid() -> Refused:
    return Refused(404, "This link is not valid", "Check that the whole link from your reminder was opened.")


def _patient(link: VisitLink) -> Identity:
    """Who the link acts for: the patient it names, and no one else."""
    return Identity(role="patient", sub=f"patient:{link.patient_id}", patient_id=link.patient_id)


async def _booking(request: web.Request, method: str, link: VisitLink) -> Result:
    fn = getattr(request.app[BOOKING], method)
    result = await asyncio.to_thread(fn, _patient(link), link.appointment_id)
    if result.outcome is Outcome.NOT_FOUND:
        raise _not_valid()  # not this patient's visit (or no longer there): as a forged link
    if result.outcome is Outcome.UNAVAILABLE:
        raise Refused(503, "Please try again shortly", result.message)
    return result


def _render(request: web.Request, token: str, visit: AppointmentView, answer: Answer | None) -> web.Response:
    settings = request.app[keys.SETTINGS]
    e = html.escape
    ahead = visit.status in LIVE and visit.starts_at > request.app[BOOKING].now()
    buttons = []
    if ahead and visit.status == "pending":
        buttons.append(f'<form method="post" action="/visit/{e(token)}/confirm">'
                       '<button type="submit" id="confirm">Confirm</button></form>')
    if ahead:
        buttons.append(f'<form method="post" action="/visit/{e(token)}/cancel">'
                       '<button type="submit" class="danger" id="cancel">Cancel the visit</button></form>')
    state = {"pending": "Not confirmed yet", "confirmed": "Confirmed", "cancelled": "Cancelled"}.get(
        visit.status, visit.status.replace("_", " ").capitalize())
    notice = ""
    if answer is not None:
        role = "alert" if answer.error else "status"
        notice = (f'<p id="visit-message" class="notice {"error" if answer.error else "info"}" role="{role}">'
                  f'{e(answer.message)}</p>')
    content = (
        f'<section class="card signin" id="visit" data-status="{e(visit.status)}">'
        f'<h2>{e(visit.service_name)} with {e(visit.dentist_name)}</h2>'
        f'<p class="appt-time" id="visit-when">{e(when_text(visit.starts_at, settings))}</p>'
        f'<p>{e(settings.clinic_name)}, {e(settings.clinic_address)}</p>'
        f'<p>Status: <span id="visit-status" class="badge s-{e(visit.status)}">{e(state)}</span></p>'
        f'{notice}<div class="appt-actions">{"".join(buttons)}</div>'
        f'<p class="hint">To move it, or for anything else, call {e(settings.clinic_phone)}.</p></section>')
    return page(request, "visit.html", answer.status if answer else 200, content=content, headers=HEADERS)


def _refused_page(request: web.Request, refused: Refused) -> web.Response:
    phone = request.app[keys.SETTINGS].clinic_phone
    content = (f'<section class="card signin" id="visit-refused"><h2>{html.escape(refused.title)}</h2>'
               f'<p id="visit-message" class="error" role="alert">{html.escape(str(refused))}</p>'
               f'<p class="hint">To confirm, move or cancel a visit, call {html.escape(phone)}.</p></section>')
    return page(request, "visit.html", refused.status, content=content, headers=HEADERS)


def _answered(fn):
    async def handler(request: web.Request) -> web.Response:
        try:
            return await fn(request)
        except Refused as refused:
            return _refused_page(request, refused)
        except DatabaseError as exc:
            log.warning("visit link: database trouble: %s", exc)
            return _refused_page(request, Refused(503, "Please try again shortly",
                                                  "The booking system is unavailable right now."))
    return handler


@_answered
async def show(request: web.Request) -> web.Response:
    link = _link(request)
    result = await _booking(request, "get", link)
    assert result.appointment is not None
    answer = None
    if result.appointment.status == "cancelled":
        answer = Answer(200, "This visit was cancelled.")
    return _render(request, request.match_info["token"], result.appointment, answer)


def _answer(action: str, result: Result, phone: str) -> Answer:
    if result.outcome is Outcome.UPDATED:
        return Answer(200, "Thank you: your visit is confirmed.")
    if result.outcome is Outcome.CANCELLED:
        return Answer(200, "Your visit is cancelled.")
    if result.outcome is Outcome.ALREADY_CANCELLED:
        if action == "cancel":  # the same request twice: the same end
            return Answer(200, "Your visit is cancelled.")
        return Answer(409, "This visit was cancelled, so it cannot be confirmed; "
                           f"to book another, call {phone} or use the chat.", error=True)
    return Answer(409, f"{result.message} Please call {phone}.", error=True)


def _act(action: str):
    """The POST of one button; a refusal (TOO_LATE inside the notice, a visit that has begun)
    is a 409 page with the clinic's number."""
    @_answered
    async def handler(request: web.Request) -> web.Response:
        if foreign_origin(request):
            raise Refused(403, "Not from this site", "Use the buttons on your visit's own page.")
        link = _link(request)
        result = await _booking(request, action, link)
        phone = request.app[keys.SETTINGS].clinic_phone
        visit = result.appointment
        if visit is None:  # a refusal without the visit: read it for the page
            visit = (await _booking(request, "get", link)).appointment
            assert visit is not None
        if result.ok:
            log.info("visit %s: %s by the patient's link", link.appointment_id, action)
        return _render(request, request.match_info["token"], visit, _answer(action, result, phone))
    return handler


def setup(app: web.Application) -> None:
    """After ``sync.api`` (its booking service, ``BOOKING``)."""
    app.router.add_get("/visit/{token}", show)
    app.router.add_post("/visit/{token}/confirm", _act("confirm"))
    app.router.add_post("/visit/{token}/cancel", _act("cancel"))
