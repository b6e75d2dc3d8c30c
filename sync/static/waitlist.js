/*
 * The waitlist cards (REST: /api/waitlist, docs/web.md). /patient: the patient's live requests
 * with a withdraw button, a form to join, and a banner for each open offer (loaded at start from
 * GET /api/waitlist/offers, then live from waitlist_offer events) with Accept / No thanks.
 * /admin: every live request, kept live by waitlist_changed events. Text only, never HTML.
 */
(function (global) {
  "use strict";
  var C = global.Clinic, h = C.h;
  var ENTRY_LABELS = {waiting: "Waiting", offered: "Offered", booked: "Booked", expired: "Expired",
                      withdrawn: "Withdrawn"};
  var DEFAULT_DAYS = 14;  // the join form's "until" date, from today

  function when(iso) { return C.day(iso) + " " + C.clock(iso); }
  function badge(status) {
    return h("span", {class: "badge w-" + status, "data-status": status}, ENTRY_LABELS[status] || status);
  }
  function debounced(fn) {
    var timer = null;
    return function () { clearTimeout(timer); timer = setTimeout(fn, 150); };
  }
  function dentistText(e) { return e.dentist_name || "any dentist"; }
  function rangeText(e) { return when(e.earliest) + " – " + when(e.latest); }

  /** One request as a list row; `extra` (a button) is added to its actions. */
  function entryRow(e, who, extra) {
    return h("li", {"data-entry": e.id, "data-status": e.status},
      h("div", {class: "appt-head"},
        who ? h("span", {class: "appt-who"}, who) : null,
        h("span", {class: "appt-service"}, e.service_name + " · " + dentistText(e)),
        h("span", {class: "appt-time"}, rangeText(e)),
        badge(e.status)),
      extra ? h("div", {class: "appt-actions"}, extra) : null);
  }

  /** /admin: every live request (patient, service, dentist or any, range, status). */
  function AdminCard(card) {
    var list = h("ul", {class: "appts", id: "waitlist-list", "aria-label": "Waitlist"});
    function load() {
      return C.api("GET", "/api/waitlist").then(function (data) {
        list.replaceChildren.apply(list, data.entries.map(function (e) { return entryRow(e, e.patient_name); }));
        card.replaceChildren(h("h2", {}, "Waitlist"),
          data.entries.length ? list : h("p", {class: "empty"}, "Nobody is waiting."));
      }).catch(function (err) { C.notify("Could not load the waitlist: " + err.message, "error"); });
    }
    var soon = debounced(load);
    return {card: card, load: load, listen: function (sync) {
      sync.addListener({onWaitlistChanged: soon, onResyncRequired: soon, onAdvance: soon});
    }};
  }

  /**
   * /patient: the patient's requests and join form in `card`, open offers in `offersBox`.
   * Returns {load, listen(sync)}.
   */
  function PatientCard(card, offersBox) {
    var list = h("ul", {class: "appts", id: "waitlist-list", "aria-label": "My waitlist requests"});
    var status = h("p", {class: "hint", id: "waitlist-status", role: "status", "aria-live": "polite"});
    var serviceIn = h("select", {id: "wl-service", required: true});
    var dentistIn = h("select", {id: "wl-dentist"}, h("option", {value: ""}, "Any dentist"));
    var untilIn = h("input", {id: "wl-until", type: "date", required: true, min: C.dayKey(),
                              value: C.dayKey(new Date(Date.now() + DEFAULT_DAYS * 864e5).toISOString())});
    var form = h("form", {id: "waitlist-form", class: "row-form"},
      h("div", {}, h("label", {for: "wl-service"}, "Treatment"), serviceIn),
      h("div", {}, h("label", {for: "wl-dentist"}, "Dentist"), dentistIn),
      h("div", {}, h("label", {for: "wl-until"}, "Until"), untilIn),
      h("div", {}, h("button", {type: "submit", id: "join-waitlist"}, "Join the waitlist")));
    card.replaceChildren(h("h2", {}, "Waitlist"),
      h("p", {class: "hint"}, "Want an earlier time? We tell you here as soon as one opens."),
      status, list, form);
    var banners = {};  // offer id -> its banner element

    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var body = {service_id: Number(serviceIn.value), latest: C.clinicLocalToIso(untilIn.value + "T23:59")};
      if (dentistIn.value) body.dentist_id = Number(dentistIn.value);
      C.api("POST", "/api/waitlist", body).then(function (data) {
        status.textContent = data.message;
        loadEntries();
      }).catch(function (err) { status.textContent = "Not added: " + err.message; });
    });

    function loadEntries() {
      return C.api("GET", "/api/waitlist").then(function (data) {
        list.replaceChildren.apply(list, data.entries.map(function (e) {
          return entryRow(e, null, h("button", {type: "button", class: "danger", "aria-label": "Withdraw " + e.service_name,
            onclick: function (ev) { withdraw(ev.currentTarget, e); }}, "Withdraw"));
        }));
        if (!data.entries.length) list.replaceChildren(h("li", {class: "empty"}, "You are not on the waitlist."));
      }).catch(function (err) { status.textContent = "Could not load your waitlist: " + err.message; });
    }
    function withdraw(button, e) {
      button.disabled = true;
      C.api("DELETE", "/api/waitlist/" + e.id).then(function (data) {
        status.textContent = data.message;
        loadEntries();
      }).catch(function (err) {
        button.disabled = false;
        status.textContent = "Not withdrawn: " + err.message;
      });
    }

    function offerText(o) {
      return (/^[aeiou]/i.test(o.service_name) ? "An " : "A ") + o.service_name + " with " + o.dentist_name + " opened on " + when(o.starts_at) +
        " — held for you until " + C.clock(o.expires_at);
    }
    function showOffer(o) {
      var old = banners[o.id];
      var text = h("p", {class: "offer-text"}, offerText(o));
      var accept = h("button", {type: "button", class: "accept-offer", onclick: function () { answer(o, "accept"); }}, "Accept");
      var decline = h("button", {type: "button", class: "secondary decline-offer",
                                 onclick: function () { answer(o, "decline"); }}, "No thanks");
      var banner = h("div", {class: "offer", "data-offer": o.id, "data-status": "open", role: "alert"},
        text, h("div", {class: "appt-actions"}, accept, decline));
      if (old) offersBox.replaceChild(banner, old); else offersBox.insertBefore(banner, offersBox.firstChild);
      banners[o.id] = banner;
    }
    /** The offer ended: say so in its banner (no buttons); `text` null removes the banner. */
    function endOffer(id, offerStatus, text) {
      var banner = banners[id];
      if (!banner) return;
      if (text === null) { banner.remove(); delete banners[id]; return; }
      banner.dataset.status = offerStatus;
      banner.replaceChildren(h("p", {class: "offer-text"}, text));
    }
    function answer(o, how) {
      var banner = banners[o.id];
      banner.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
      banner.dataset.status = "answering";  // our own answer's event must not speak over its reply
      C.api("POST", "/api/waitlist/offers/" + o.id + "/" + how).then(function (data) {
        if (how === "accept") {
          endOffer(o.id, "accepted", "Booked: " + o.service_name + " with " + o.dentist_name + " on " +
            when(data.appointment.starts_at) + ". It is in your visits below.");
        } else {
          endOffer(o.id, "declined", null);
          status.textContent = data.message;
        }
        loadEntries();
      }).catch(function (err) {
        if (err.code === "offer_gone") endOffer(o.id, "gone", err.message);
        else {
          banner.dataset.status = "open";
          banner.querySelectorAll("button").forEach(function (b) { b.disabled = false; });
          status.textContent = "That did not work: " + err.message;
        }
        loadEntries();
      });
    }
    function loadOffers() {
      return C.api("GET", "/api/waitlist/offers").then(function (data) {
        data.offers.slice().reverse().forEach(showOffer);  // the latest first, on top
      }).catch(function (err) { status.textContent = "Could not load your offers: " + err.message; });
    }
    function onOffer(ev) {
      var o = ev.offer || {};
      if (o.status === "open") loadOffers();  // the answer names the service and dentist
      else if (o.status === "gone") endOffer(o.id, "gone", "That time was taken by someone else; you stay on the waitlist.");
      else if (o.status === "expired") endOffer(o.id, "expired", "That time is no longer held for you; you stay on the waitlist.");
      else if (o.status === "declined") endOffer(o.id, "declined", null);
      else if (o.status === "accepted" && banners[o.id] && banners[o.id].dataset.status === "open") {
        endOffer(o.id, "accepted", "Booked. It is in your visits below.");  // accepted in another tab or the chat
      }
      entriesSoon();
    }
    var entriesSoon = debounced(loadEntries);

    function load() {
      Promise.all([C.api("GET", "/api/services"), C.api("GET", "/api/dentists")]).then(function (got) {
        serviceIn.replaceChildren.apply(serviceIn, got[0].services.map(function (s) {
          return h("option", {value: s.id}, s.name);
        }));
        got[1].dentists.filter(function (d) { return d.active; }).forEach(function (d) {
          dentistIn.appendChild(h("option", {value: d.id}, d.full_name));
        });
      }).catch(function (err) { status.textContent = "Could not load the treatments: " + err.message; });
      loadEntries();
      loadOffers();
    }
    return {load: load, listen: function (sync) {
      function reload() { loadEntries(); loadOffers(); }
      // onAdvance: the page's snapshot came after the first read, and skips the events before it
      sync.addListener({onWaitlistOffer: onOffer, onWaitlistChanged: entriesSoon,
                        onResyncRequired: reload, onAdvance: reload});
    }};
  }

  global.Waitlist = {AdminCard: AdminCard, PatientCard: PatientCard};
})(window);
