/* /dentist: my diary (live, with status buttons), my weekly hours, my time off, my date overrides,
   the clinic's closures. */
(function () {
  "use strict";
  var C = window.Clinic, h = C.h;
  var main = document.getElementById("main");
  var WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

  function start(claims) {
    var dentistId = claims.dentist_id;
    C.feedLink();
    var board = h("div", {id: "board"});
    var hoursCard = h("section", {class: "card", id: "hours", "aria-labelledby": "hours-title"});
    var offCard = h("section", {class: "card", id: "time-off", "aria-labelledby": "off-title"});
    var overridesCard = h("section", {class: "card", id: "overrides"});
    var closuresCard = h("section", {class: "card", id: "closures"});
    main.replaceChildren(h("div", {id: "notice", class: "notice", role: "alert"}),
      h("div", {class: "columns"}, board, h("div", {}, hoursCard, offCard, overridesCard, closuresCard)));
    var overrides = window.Rules.Overrides(overridesCard, {dentistId: dentistId, title: "Other hours on a date"});
    var closures = window.Rules.Closures(closuresCard, {editable: false});

    var b = new window.Schedule.Board(board, {columns: null, actions: true, title: "Appointments, next two weeks"});
    var until = new Date(Date.now() + (window.Schedule.DAYS + 1) * 864e5).toISOString();
    window.Schedule.live(b, function () {
      return C.api("GET", "/api/appointments?from=" + C.dayKey() + "&to=" + encodeURIComponent(until));
    }, {onAvailability: availabilityChanged,
        onResync: function () { loadHours(); loadTimeOff(); overrides.load(); closures.load(); },
        onRefused: function (why) {
          window.clinicSync.close();
          C.signIn(main, ["dentist"], start, "That token was not accepted: " + why);
        }});

    var editing = false;  // a half-edited schedule is not overwritten by a live reload
    var reloadTimer = null;
    function availabilityChanged(ev) {
      overrides.onEvent(ev);
      closures.onEvent(ev);
      if (ev.source !== "time_off" && ev.source !== "working_hours") return;
      clearTimeout(reloadTimer);
      reloadTimer = setTimeout(function () {
        if (ev.source === "time_off") loadTimeOff();
        else if (ev.source === "working_hours" && !editing) loadHours();
      }, 150);
    }

    // --- weekly hours ------------------------------------------------------------------------
    var rowsBody = h("tbody");
    var hoursStatus = h("p", {class: "hint", role: "status", "aria-live": "polite"});
    function timeInput(value, label) {
      return h("input", {type: "time", value: value, required: true, step: 300, "aria-label": label,
                         oninput: function () { editing = true; }});
    }
    function addRow(block) {
      var n = rowsBody.children.length + 1;
      var sel = h("select", {"aria-label": "Weekday of block " + n, onchange: function () { editing = true; }},
        WEEKDAYS.map(function (name, i) {
          return h("option", {value: i + 1, selected: block.weekday === i + 1}, name);
        }));
      var tr = h("tr", {},
        h("td", {}, sel),
        h("td", {}, timeInput(block.start_time, "Start of block " + n)),
        h("td", {}, timeInput(block.end_time, "End of block " + n)),
        h("td", {}, h("button", {type: "button", class: "danger", "aria-label": "Remove block " + n,
                                 onclick: function () { editing = true; tr.remove(); }}, "Remove")));
      rowsBody.appendChild(tr);
      return tr;
    }
    var hoursForm = h("form", {id: "hours-form"},
      h("table", {class: "hours"},
        h("thead", {}, h("tr", {}, h("th", {scope: "col"}, "Day"), h("th", {scope: "col"}, "From"),
                                   h("th", {scope: "col"}, "To"), h("th", {scope: "col"}, h("span", {class: "sr-only"}, "Actions")))),
        rowsBody),
      h("p", {class: "hint"}, "Times are in the clinic's time zone (" + C.clinicTz + "). A gap between two blocks is a break."),
      h("div", {class: "appt-actions"},
        h("button", {type: "button", class: "secondary", onclick: function () {
          editing = true;
          addRow({weekday: 1, start_time: "09:00", end_time: "17:00"}).querySelector("select").focus();
        }}, "Add block"),
        h("button", {type: "submit", id: "save-hours"}, "Save hours")),
      hoursStatus);
    hoursForm.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var blocks = Array.from(rowsBody.children).map(function (tr) {
        var f = tr.querySelectorAll("select, input");
        return {weekday: Number(f[0].value), start_time: f[1].value, end_time: f[2].value};
      });
      hoursStatus.textContent = "Saving…";
      C.api("PUT", "/api/dentists/" + dentistId + "/working-hours", blocks).then(function (data) {
        editing = false;
        showHours(data.working_hours);
        hoursStatus.textContent = "Saved. The assistant offers the new hours from now on.";
      }).catch(function (err) { hoursStatus.textContent = ""; C.notify("Hours not saved: " + err.message, "error"); });
    });
    hoursCard.replaceChildren(h("h2", {id: "hours-title"}, "Weekly hours"), hoursForm);
    function showHours(list) {
      rowsBody.replaceChildren();
      list.forEach(addRow);
    }
    function loadHours() {
      return C.api("GET", "/api/dentists/" + dentistId + "/working-hours").then(function (d) { showHours(d.working_hours); })
        .catch(function (err) { C.notify("Could not load your hours: " + err.message, "error"); });
    }

    // --- time off ----------------------------------------------------------------------------
    var offList = h("ul", {class: "appts", id: "time-off-list", "aria-label": "Time off"});
    var offStatus = h("p", {class: "hint", role: "status", "aria-live": "polite"});
    var startIn = h("input", {id: "off-start", type: "datetime-local", required: true});
    var endIn = h("input", {id: "off-end", type: "datetime-local", required: true});
    var reasonIn = h("input", {id: "off-reason", type: "text", maxlength: 500, autocomplete: "off"});
    var offForm = h("form", {id: "time-off-form", class: "row-form"},
      h("div", {}, h("label", {for: "off-start"}, "From"), startIn),
      h("div", {}, h("label", {for: "off-end"}, "To"), endIn),
      h("div", {}, h("label", {for: "off-reason"}, "Reason (optional)"), reasonIn),
      h("div", {}, h("button", {type: "submit", id: "add-time-off"}, "Add time off")));
    offForm.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var body = {starts_at: C.clinicLocalToIso(startIn.value), ends_at: C.clinicLocalToIso(endIn.value),
                  reason: reasonIn.value.trim() || null};
      if (!body.starts_at || !body.ends_at) { C.notify("Enter both dates and times.", "error"); return; }
      C.api("POST", "/api/dentists/" + dentistId + "/time-off", body).then(function (data) {
        offForm.reset();
        var clash = data.overlapping_appointments.length;
        offStatus.textContent = "Added. The assistant no longer offers that time." +
          (clash ? " " + clash + " booked visit(s) fall inside it: please move or cancel them." : "");
        loadTimeOff();
      }).catch(function (err) { C.notify("Time off not added: " + err.message, "error"); });
    });
    offCard.replaceChildren(h("h2", {id: "off-title"}, "Time off"), offList, offForm,
      h("p", {class: "hint"}, "Dates and times in the clinic's time zone (" + C.clinicTz + ")."), offStatus);

    function loadTimeOff() {
      return C.api("GET", "/api/dentists/" + dentistId + "/time-off").then(function (d) {
        offList.replaceChildren.apply(offList, d.time_off.length ? d.time_off.map(function (t) {
          return h("li", {"data-id": t.id},
            h("div", {class: "appt-head"},
              h("span", {class: "appt-time"}, C.day(t.starts_at) + " " + C.clock(t.starts_at) + " – " +
                                             C.day(t.ends_at) + " " + C.clock(t.ends_at)),
              t.reason ? h("span", {class: "appt-notes"}, t.reason) : null,
              h("button", {type: "button", class: "danger", "aria-label": "Remove time off from " + C.day(t.starts_at),
                           onclick: function (ev) {
                             ev.currentTarget.disabled = true;
                             C.api("DELETE", "/api/time-off/" + t.id).then(loadTimeOff)
                               .catch(function (err) { C.notify("Not removed: " + err.message, "error"); });
                           }}, "Remove")));
        }) : [h("li", {class: "empty"}, "No time off planned.")]);
      }).catch(function (err) { C.notify("Could not load your time off: " + err.message, "error"); });
    }
    loadHours();
    loadTimeOff();
    overrides.load();
    closures.load();
  }

  C.signIn(main, ["dentist"], start);
})();
