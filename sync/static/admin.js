/* /admin: every dentist's appointments for today and the next two weeks, live, with status buttons;
   today per chair; any dentist's date overrides and the clinic's closures; the waitlist (waitlist.js). */
(function () {
  "use strict";
  var C = window.Clinic, h = C.h;
  var main = document.getElementById("main");

  function until() { return new Date(Date.now() + (window.Schedule.DAYS + 1) * 864e5).toISOString(); }

  function start() {
    var counters = h("dl", {class: "counters", id: "counters"});
    var board = h("div", {class: "columns", id: "board"});
    var chairsBoard = h("div", {class: "columns", id: "chairs"});
    var overridesCard = h("section", {class: "card", id: "overrides"});
    var closuresCard = h("section", {class: "card", id: "closures"});
    var recallsCard = h("section", {class: "card", id: "recalls"});
    var attendanceCard = h("section", {class: "card", id: "attendance"});
    main.replaceChildren(
      h("div", {id: "notice", class: "notice", role: "alert"}),
      h("section", {class: "card", "aria-labelledby": "counters-title"},
        h("h2", {id: "counters-title"}, "Live service"), counters),
      board,
      h("h2", {class: "section-title"}, "Today per chair"), chairsBoard,
      h("div", {class: "columns", id: "rules"}, closuresCard, overridesCard, recallsCard, attendanceCard));
    recalls();
    var closures = window.Rules.Closures(closuresCard, {editable: true});
    var overrides = null;
    closures.load();
    var waitlist = window.Waitlist.AdminCard(h("section", {class: "card", id: "waitlist"}));  // waitlist.js
    main.appendChild(waitlist.card);
    waitlist.load();

    Promise.all([C.api("GET", "/api/dentists"), C.api("GET", "/api/operatories")]).then(function (got) {
      var data = got[0];
      var columns = data.dentists.filter(function (d) { return d.active; })
        .map(function (d) { return {id: d.id, title: d.full_name}; });
      var dentists = new window.Schedule.Board(board, {columns: columns, actions: true, title: "Appointments"});
      var chairs = new window.Schedule.Board(chairsBoard, {
        columns: got[1].operatories.filter(function (o) { return o.active; })
          .map(function (o) { return {id: o.id, title: o.name}; }),
        columnKey: "operatory_id", days: 0, title: "Chairs"});
      var b = {  // both boards show the same visits: one live stream feeds them
        load: function (list) { dentists.load(list); chairs.load(list); },
        upsert: function (a, how) { dentists.upsert(a, how); chairs.upsert(a); },
        remove: function (id) { dentists.remove(id); chairs.remove(id); }
      };
      dentists.render();
      chairs.render();
      overrides = window.Rules.Overrides(overridesCard, {
        dentists: data.dentists, dentistId: data.dentists.length ? data.dentists[0].id : null,
        title: "A dentist's other hours on a date"});
      overrides.load();
      waitlist.listen(window.Schedule.live(b, function () {
        return C.api("GET", "/api/appointments?from=" + encodeURIComponent(C.dayKey()) + "&to=" + encodeURIComponent(until()));
      }, {onChange: function () { statsSoon(); recallsSoon(); }, onConnect: statsSoon,
          onAvailability: function (ev) { closures.onEvent(ev); overrides.onEvent(ev); },
          onResync: function () { closures.load(); overrides.load(); },
          onAdvance: function () { closures.load(); overrides.load(); }}));
    }).catch(function (err) {
      if (err.status === 401) C.signIn(main, ["admin"], start, "That token was not accepted: " + err.message);
      else C.notify("Could not load the dentists: " + err.message, "error");
    });

    // who is due for a recalled service (the six-month cleaning): read again after a visit changes
    var recallTimer = null;
    function recallsSoon() { clearTimeout(recallTimer); recallTimer = setTimeout(recalls, 500); }
    function recalls() {
      attendance();
      listCard(recallsCard, {url: "/api/recalls", key: "due", title: "Recalls due",
        label: "Patients due for a recall", empty: "Nobody is due.", failed: "Could not load the recall list",
        row: function (d) {
          return [d.service_name, "due since " + C.day(d.due_at) + " (last visit " + C.day(d.last_visit) + ")"];
        }});
    }

    // no-shows and late cancellations per patient (the cancellation policy's counts)
    function attendance() {
      listCard(attendanceCard, {url: "/api/attendance", key: "patients", title: "No-shows and late cancellations",
        label: "No-shows and late cancellations", empty: "Nobody has missed a visit.", failed: "Could not load attendance",
        row: function (p) {
          return [p.no_shows + " no-show" + (p.no_shows === 1 ? "" : "s"),
                  p.late_cancels + " late cancellation" + (p.late_cancels === 1 ? "" : "s")];
        }});
    }

    // a card listing one patient a line (what list.key of GET list.url holds): their name and
    // the two texts list.row gives, or list.empty when there is nobody
    function listCard(card, list) {
      C.api("GET", list.url).then(function (data) {
        var items = data[list.key];
        var ul = h("ul", {class: "appts", "aria-label": list.label});
        items.forEach(function (item) {
          var texts = list.row(item);
          ul.appendChild(h("li", {"data-patient": item.patient_id},
            h("div", {class: "appt-head"},
              h("span", {class: "appt-who"}, item.patient_name),
              h("span", {class: "appt-service"}, texts[0]),
              h("span", {class: "appt-time"}, texts[1]))));
        });
        card.replaceChildren(h("h2", {}, list.title), items.length ? ul : h("p", {class: "empty"}, list.empty));
      }).catch(function (err) { C.notify(list.failed + ": " + err.message, "error"); });
    }

    var timer = null;
    function statsSoon() { clearTimeout(timer); timer = setTimeout(stats, 300); }
    function stats() {
      C.api("GET", "/api/realtime/stats").then(function (s) {
        var lag = s.deliveryLagMs || {};
        var rows = [
          ["Connections", s.connections ? s.connections.total : "–"],
          ["Staff / patients", s.connections ? (s.connections.byRole.admin + s.connections.byRole.dentist) + " / " + s.connections.byRole.patient : "–"],
          ["Events processed", s.eventsProcessed],
          ["Events delivered", s.eventsDelivered],
          ["Delivery lag p50 / p99", lag.p50 != null ? Math.round(lag.p50) + " / " + Math.round(lag.p99) + " ms" : "–"],
          ["Last event id", s.lastOutboxId]
        ];
        counters.replaceChildren.apply(counters, rows.map(function (r) {
          return h("div", {}, h("dt", {}, r[0]), h("dd", {"data-counter": r[0]}, r[1] == null ? "–" : String(r[1])));
        }));
      }).catch(function () { /* counters are a nicety; the indicator shows connection trouble */ });
    }
    stats();
    setInterval(stats, 5000);
  }

  C.signIn(main, ["admin"], start);
})();
