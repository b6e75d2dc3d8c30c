/* /admin: every dentist's appointments for today and the next two weeks, live, with status buttons;
   any dentist's date overrides and the clinic's closures. */
(function () {
  "use strict";
  var C = window.Clinic, h = C.h;
  var main = document.getElementById("main");

  function until() { return new Date(Date.now() + (window.Schedule.DAYS + 1) * 864e5).toISOString(); }

  function start() {
    var counters = h("dl", {class: "counters", id: "counters"});
    var board = h("div", {class: "columns", id: "board"});
    var overridesCard = h("section", {class: "card", id: "overrides"});
    var closuresCard = h("section", {class: "card", id: "closures"});
    main.replaceChildren(
      h("div", {id: "notice", class: "notice", role: "alert"}),
      h("section", {class: "card", "aria-labelledby": "counters-title"},
        h("h2", {id: "counters-title"}, "Live service"), counters),
      board,
      h("div", {class: "columns", id: "rules"}, closuresCard, overridesCard));
    var closures = window.Rules.Closures(closuresCard, {editable: true});
    var overrides = null;
    closures.load();

    C.api("GET", "/api/dentists").then(function (data) {
      var columns = data.dentists.filter(function (d) { return d.active; })
        .map(function (d) { return {id: d.id, title: d.full_name}; });
      var b = new window.Schedule.Board(board, {columns: columns, actions: true, title: "Appointments"});
      b.render();
      overrides = window.Rules.Overrides(overridesCard, {
        dentists: data.dentists, dentistId: data.dentists.length ? data.dentists[0].id : null,
        title: "A dentist's other hours on a date"});
      overrides.load();
      window.Schedule.live(b, function () {
        return C.api("GET", "/api/appointments?from=" + encodeURIComponent(C.dayKey()) + "&to=" + encodeURIComponent(until()));
      }, {onChange: statsSoon, onConnect: statsSoon,
          onAvailability: function (ev) { closures.onEvent(ev); overrides.onEvent(ev); },
          onResync: function () { closures.load(); overrides.load(); }});
    }).catch(function (err) {
      if (err.status === 401) C.signIn(main, ["admin"], start, "That token was not accepted: " + err.message);
      else C.notify("Could not load the dentists: " + err.message, "error");
    });

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
