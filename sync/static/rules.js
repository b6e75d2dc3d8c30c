/*
 * Scheduling rules by date, shared by /dentist and /admin: a dentist's date overrides (other
 * hours on one date, or not working) and the clinic's closures. Each card lists what is set from
 * today on, adds and removes over REST, and reloads when an availability_changed event names it.
 */
(function (global) {
  "use strict";
  var C = global.Clinic, h = C.h;
  // a plain date ("2030-05-06") is no instant: format it as such, whatever the zones
  var fmtDate = new Intl.DateTimeFormat(undefined, {timeZone: "UTC", weekday: "short", day: "numeric",
                                                    month: "short", year: "numeric"});
  function dateLabel(d) { return fmtDate.format(new Date(d + "T12:00:00Z")); }

  function removeButton(label, path, done) {
    return h("button", {type: "button", class: "danger", "aria-label": label, onclick: function (ev) {
      ev.currentTarget.disabled = true;
      var button = ev.currentTarget;
      C.api("DELETE", path).then(done).catch(function (err) {
        button.disabled = false;
        C.notify("Not removed: " + err.message, "error");
      });
    }}, "Remove");
  }

  /** fn, called once 150 ms after the last of a burst of calls (a week's closure is seven events). */
  function debounced(fn) {
    var timer = null;
    return function () { clearTimeout(timer); timer = setTimeout(fn, 150); };
  }

  function clashText(ids, what) {
    return ids.length ? " " + ids.length + " booked visit(s) fall " + what + ": please move or cancel them." : "";
  }

  /**
   * A dentist's date overrides in `card`. options: {dentistId, dentists: [{id, full_name}] (admin:
   * a picker), title}. Returns {load, dentistId(), onEvent(ev)}.
   */
  function Overrides(card, options) {
    var dentistId = options.dentistId;
    var list = h("ul", {class: "appts", id: "override-list", "aria-label": "Date overrides"});
    var status = h("p", {class: "hint", role: "status", "aria-live": "polite"});
    var dateIn = h("input", {id: "ov-date", type: "date", required: true, min: C.dayKey()});
    var offIn = h("input", {id: "ov-off", type: "checkbox", onchange: syncTimes});
    var startIn = h("input", {id: "ov-start", type: "time", step: 300, value: "09:00", required: true});
    var endIn = h("input", {id: "ov-end", type: "time", step: 300, value: "13:00", required: true});
    var reasonIn = h("input", {id: "ov-reason", type: "text", maxlength: 500, autocomplete: "off"});
    function syncTimes() {
      startIn.disabled = endIn.disabled = offIn.checked;
    }
    var picker = null;
    if (options.dentists) {
      picker = h("select", {id: "override-dentist", onchange: function () {
        dentistId = Number(picker.value);
        status.textContent = "";
        load();
      }}, options.dentists.map(function (d) {
        return h("option", {value: d.id, selected: d.id === dentistId}, d.full_name);
      }));
    }
    var form = h("form", {id: "override-form", class: "row-form"},
      h("div", {}, h("label", {for: "ov-date"}, "Date"), dateIn),
      h("div", {}, h("label", {class: "check", for: "ov-off"}, offIn, "Not working")),
      h("div", {}, h("label", {for: "ov-start"}, "From"), startIn),
      h("div", {}, h("label", {for: "ov-end"}, "To"), endIn),
      h("div", {}, h("label", {for: "ov-reason"}, "Reason (optional)"), reasonIn),
      h("div", {}, h("button", {type: "submit", id: "add-override"}, "Add")));
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var body = {on_date: dateIn.value, reason: reasonIn.value.trim() || null};
      if (!offIn.checked) { body.start_time = startIn.value; body.end_time = endIn.value; }
      C.api("POST", "/api/dentists/" + dentistId + "/date-overrides", body).then(function (data) {
        var o = data.date_override;
        form.reset();
        syncTimes();
        status.textContent = "Added: " + (o.start_time
          ? "on " + dateLabel(o.on_date) + " " + o.start_time + "–" + o.end_time + " replaces the weekly hours."
          : "not working on " + dateLabel(o.on_date) + ".") +
          clashText(data.overlapping_appointments, "outside working time");
        load();
      }).catch(function (err) { C.notify("Override not added: " + err.message, "error"); });
    });
    card.replaceChildren(
      h("h2", {id: "overrides-title"}, options.title || "Date overrides"),
      h("div", {}, picker ? [h("label", {for: "override-dentist"}, "Dentist"), picker] : null),
      list, form,
      h("p", {class: "hint"}, "One date's hours replace that weekday's (add several blocks for a break), " +
                              "or mark the date as not working. Times in the clinic's zone (" + C.clinicTz + ")."),
      status);
    card.setAttribute("aria-labelledby", "overrides-title");

    function load() {
      var asked = dentistId;
      if (asked == null) return Promise.resolve();  // a clinic without dentists yet
      return C.api("GET", "/api/dentists/" + asked + "/date-overrides").then(function (d) {
        if (asked !== dentistId) return;  // the picker moved on meanwhile
        list.replaceChildren.apply(list, d.date_overrides.length ? d.date_overrides.map(function (o) {
          var when = dateLabel(o.on_date) + " · " + (o.start_time ? o.start_time + "–" + o.end_time : "Not working");
          return h("li", {"data-id": o.id, "data-date": o.on_date},
            h("div", {class: "appt-head"},
              h("span", {class: "appt-time"}, when),
              o.reason ? h("span", {class: "appt-notes"}, o.reason) : null,
              removeButton("Remove override of " + dateLabel(o.on_date), "/api/date-overrides/" + o.id, load)));
        }) : [h("li", {class: "empty"}, "No date overrides: the weekly hours apply.")]);
      }).catch(function (err) { C.notify("Could not load the date overrides: " + err.message, "error"); });
    }
    var reload = debounced(load);
    return {load: load, dentistId: function () { return dentistId; },
            onEvent: function (ev) { if (ev.source === "date_overrides" && ev.dentist_id === dentistId) reload(); }};
  }

  /** The clinic's closures in `card`; options.editable (admin) adds the form and remove buttons. */
  function Closures(card, options) {
    var list = h("ul", {class: "appts", id: "closure-list", "aria-label": "Clinic closures"});
    var status = h("p", {class: "hint", role: "status", "aria-live": "polite"});
    var parts = [h("h2", {id: "closures-title"}, "Clinic closures"), list];
    if (options.editable) {
      var fromIn = h("input", {id: "cl-from", type: "date", required: true, min: C.dayKey()});
      var toIn = h("input", {id: "cl-to", type: "date", min: C.dayKey()});
      var reasonIn = h("input", {id: "cl-reason", type: "text", maxlength: 500, autocomplete: "off"});
      var form = h("form", {id: "closure-form", class: "row-form"},
        h("div", {}, h("label", {for: "cl-from"}, "From"), fromIn),
        h("div", {}, h("label", {for: "cl-to"}, "To (optional)"), toIn),
        h("div", {}, h("label", {for: "cl-reason"}, "Reason"), reasonIn),
        h("div", {}, h("button", {type: "submit", id: "add-closure"}, "Close the clinic")));
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var body = {on_date: fromIn.value, last_date: toIn.value || null, reason: reasonIn.value.trim() || null};
        C.api("POST", "/api/closures", body).then(function (data) {
          form.reset();
          status.textContent = "Closed on " + data.closures.length + " day(s). Nobody is offered those dates." +
            clashText(data.overlapping_appointments, "on them");
          load();
        }).catch(function (err) { C.notify("Closure not added: " + err.message, "error"); });
      });
      parts.push(form, h("p", {class: "hint"}, "Nobody works on a closed date; the assistant offers none of it."));
    } else {
      parts.push(h("p", {class: "hint"}, "Set by the front desk: nobody works on these dates."));
    }
    parts.push(status);
    card.replaceChildren.apply(card, parts);
    card.setAttribute("aria-labelledby", "closures-title");

    function load() {
      return C.api("GET", "/api/closures").then(function (d) {
        list.replaceChildren.apply(list, d.closures.length ? d.closures.map(function (x) {
          return h("li", {"data-id": x.id, "data-date": x.on_date},
            h("div", {class: "appt-head"},
              h("span", {class: "appt-time"}, dateLabel(x.on_date)),
              x.reason ? h("span", {class: "appt-notes"}, x.reason) : null,
              options.editable ? removeButton("Reopen " + dateLabel(x.on_date), "/api/closures/" + x.id, load) : null));
        }) : [h("li", {class: "empty"}, "No closures planned.")]);
      }).catch(function (err) { C.notify("Could not load the closures: " + err.message, "error"); });
    }
    var reload = debounced(load);
    return {load: load, onEvent: function (ev) { if (ev.source === "clinic_closures") reload(); }};
  }

  global.Rules = {Overrides: Overrides, Closures: Closures, dateLabel: dateLabel};
})(window);
