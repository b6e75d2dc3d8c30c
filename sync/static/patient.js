/* /patient: the patient's own upcoming appointments, with their status kept live. */
(function () {
  "use strict";
  var C = window.Clinic, h = C.h;
  var main = document.getElementById("main");
  var DAYS = 90;

  function start(claims) {
    var board = h("div", {id: "board"});
    main.replaceChildren(h("div", {id: "notice", class: "notice", role: "alert"}), board);
    var b = new window.Schedule.Board(board, {columns: null, actions: false, showDentist: true, days: DAYS,
                                              title: "Upcoming visits"});
    var until = new Date(Date.now() + (DAYS + 1) * 864e5).toISOString();
    window.Schedule.live(b, function () {
      return C.api("GET", "/api/appointments?from=" + C.dayKey() + "&to=" + encodeURIComponent(until))
        .catch(function (err) {
          if (err.status === 401) C.signIn(main, ["patient"], start, "That token was not accepted: " + err.message);
          throw err;
        });
    }, {onRefused: function (why) {
      window.clinicSync.close();
      C.signIn(main, ["patient"], start, "That token was not accepted: " + why);
    }});
  }

  C.signIn(main, ["patient"], start);
})();
