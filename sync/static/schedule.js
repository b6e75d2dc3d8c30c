/*
 * An appointment board shared by /admin, /dentist and /patient: lists visits by day (and by
 * dentist for the front desk), status buttons for staff, and live updates. An event is only a
 * signal: the board re-reads that appointment over REST, so a repeated or late event is harmless.
 */
(function (global) {
  "use strict";
  var C = global.Clinic, h = C.h;
  var DAYS = 14;
  // the buttons a visit in each status offers staff: [label, new status, style]
  var ACTIONS = {
    pending: [["Confirm", "confirmed", ""], ["Cancel", "cancelled", "danger"], ["No-show", "no_show", "secondary"]],
    confirmed: [["Complete", "completed", ""], ["No-show", "no_show", "secondary"], ["Cancel", "cancelled", "danger"]]
  };

  function Board(root, options) {
    this.root = root;
    this.options = options;               // {columns: [{id, title}] | null, columnKey, actions, title, days}
    this.items = new Map();
    this.changes = new Map();             // id → "created" | "updated": marked until the page reloads
    this.days = options.days === undefined ? DAYS : options.days;  // today and this many days ahead
  }

  Board.prototype.inWindow = function (a) {
    var key = C.dayKey(a.starts_at), today = C.dayKey();
    var last = C.dayKey(new Date(Date.now() + this.days * 864e5).toISOString());
    return key >= today && key <= last;
  };

  Board.prototype.load = function (list) {
    var self = this;
    self.items.clear();
    list.forEach(function (a) { if (self.inWindow(a)) self.items.set(a.id, a); });
    self.render();
  };

  Board.prototype.upsert = function (a, how) {
    if (!this.inWindow(a)) { this.remove(a.id); return; }
    var before = this.items.get(a.id);
    this.items.set(a.id, a);
    this.render();
    var li = this.root.querySelector('li[data-id="' + a.id + '"]');
    if (li && how) {
      if (this.changes.get(a.id) !== "created") this.changes.set(a.id, how);
      li.dataset.change = this.changes.get(a.id);
      C.flash(li);
      announce((how === "created" ? "New booking: " : "Updated: ") + a.patient_name + " with " + a.dentist_name +
               ", " + C.day(a.starts_at) + " " + C.clock(a.starts_at) + ", " + (C.STATUS_LABELS[a.status] || a.status) +
               (before && before.status !== a.status ? " (was " + (C.STATUS_LABELS[before.status] || before.status) + ")" : ""));
    }
  };

  Board.prototype.remove = function (id) {
    if (this.items.delete(id)) this.render();
  };

  Board.prototype.render = function () {
    var self = this, opts = self.options;
    var focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.key : null;
    var sorted = Array.from(self.items.values()).sort(function (a, b) {
      return a.starts_at < b.starts_at ? -1 : a.starts_at > b.starts_at ? 1 : a.id - b.id;
    });
    var columns = opts.columns || [{id: null, title: null}];
    var sections = columns.map(function (col) {
      var key = opts.columnKey || "dentist_id";  // "operatory_id": a column per chair
      var mine = sorted.filter(function (a) { return col.id === null || a[key] === col.id; });
      var list = h("ul", {class: "appts", "aria-label": col.title ? "Appointments with " + col.title : "Appointments"});
      var lastDay = null;
      mine.forEach(function (a) {
        var dk = C.dayKey(a.starts_at);
        if (dk !== lastDay) {
          lastDay = dk;
          list.appendChild(h("li", {class: "day-label", role: "presentation"},
                             dk === C.dayKey() ? "Today · " + C.day(a.starts_at) : C.day(a.starts_at)));
        }
        list.appendChild(self.item(a));
      });
      return h("section", {class: "card column", "data-dentist": key === "dentist_id" ? col.id : null,
                           "data-column": col.id, "aria-label": col.title || opts.title},
        h("h2", {}, col.title || opts.title),
        mine.length ? list : h("p", {class: "empty"}, self.days ? "No appointments in the next " + self.days + " days."
                                                                : "No appointments today."));
    });
    self.root.replaceChildren.apply(self.root, sections);
    if (focused) {
      var again = self.root.querySelector('[data-key="' + focused + '"]');
      if (again) again.focus();
    }
  };

  Board.prototype.item = function (a) {
    var self = this;
    var buttons = self.options.actions ? (ACTIONS[a.status] || []).map(function (act) {
      return h("button", {type: "button", class: act[2], "data-key": a.id + ":" + act[1], "data-action": act[1],
                          "aria-label": act[0] + " " + a.patient_name + " at " + C.clock(a.starts_at),
                          onclick: function (ev) { self.setStatus(a, act[1], ev.currentTarget); }}, act[0]);
    }) : [];
    var li = h("li", {"data-id": a.id, "data-status": a.status, "data-change": self.changes.get(a.id),
                      class: a.status === "cancelled" ? "cancelled" : null},
      h("div", {class: "appt-head"},
        h("span", {class: "appt-time"}, C.clock(a.starts_at) + "–" + C.clock(a.ends_at)),
        h("span", {class: "appt-who"}, self.options.columnKey === "operatory_id" ? a.patient_name + " · " + a.dentist_name
              : self.options.columns ? a.patient_name : (self.options.showDentist ? a.dentist_name : a.patient_name)),
        h("span", {class: "appt-service"}, a.service_name),
        C.statusBadge(a.status)),
      a.notes ? h("div", {class: "appt-notes"}, a.notes) : null,
      buttons.length ? h("div", {class: "appt-actions"}, buttons) : null);
    return li;
  };

  Board.prototype.setStatus = function (a, status, button) {
    var self = this;
    if (status === "cancelled" && !global.confirm("Cancel " + a.patient_name + "'s visit at " + C.clock(a.starts_at) + "?")) return;
    button.disabled = true;
    C.api("PATCH", "/api/appointments/" + a.id, {status: status}).then(function (data) {
      self.upsert(data.appointment, "updated");
      C.notify("");
    }).catch(function (err) {
      button.disabled = false;
      C.notify("Could not change the status: " + err.message, "error");
    });
  };

  function announce(text) {
    var el = document.getElementById("announce");
    if (el) el.textContent = text;
  }

  /**
   * Keep `board` current: connect first, then load (so nothing falls between the two), and
   * re-read every appointment an event names. `load` returns a promise of the
   * GET /api/appointments answer.
   */
  function live(board, load, extra) {
    extra = extra || {};
    function refresh(event, how) {
      var id = event && event.appointment && event.appointment.id;
      if (!id) return;
      if (event.moved_away) { board.remove(id); return; }
      C.api("GET", "/api/appointments/" + id).then(function (data) { board.upsert(data.appointment, how); })
        .catch(function (err) { if (err.status === 404 || err.status === 403) board.remove(id); });
      if (extra.onChange) extra.onChange(event);
    }
    function reload() {
      return load().then(function (data) {
        board.load(data.appointments);
        sync.advance(data.last_event_id);  // a restart later resumes from this snapshot
      }).catch(function (err) {
        C.notify("Could not load appointments: " + err.message, "error");
      });
    }
    var first = true;
    var sync = global.realtimeSync({token: C.token}, {
      onConnect: function () { if (first) { first = false; reload(); } if (extra.onConnect) extra.onConnect(); },
      onAppointmentCreated: function (ev) { refresh(ev, "created"); },
      onAppointmentUpdated: function (ev) { refresh(ev, "updated"); },
      onAppointmentDeleted: function (ev) { if (ev.appointment) board.remove(ev.appointment.id); if (extra.onChange) extra.onChange(ev); },
      onAvailabilityChanged: function (ev) { if (extra.onAvailability) extra.onAvailability(ev); },
      onResyncRequired: function () { reload(); if (extra.onResync) extra.onResync(); },
      onAdvance: function () { if (extra.onAdvance) extra.onAdvance(); },  // cards read before the snapshot
      onConnectionChange: function (state, detail) {
        C.showConnection(state, detail);
        if (state === "refused") {
          if (extra.onRefused) extra.onRefused(detail);
          else C.notify("The live connection was refused: " + detail, "error");
        }
      }
    });
    global.clinicSync = sync;  // for the browser tests and the curious
    return sync;
  }

  global.Schedule = {Board: Board, live: live, DAYS: DAYS};
})(window);
