/* /patient: the patient's own upcoming appointments, with their status kept live, and their
 * waitlist: requests, and offers of freed time to accept (waitlist.js).
 * Sign-in: a 6-digit code texted to the phone on file (POST /api/patient/sign-in/code, then
 * /verify, which answers with a patient token kept in sessionStorage like any token). */
(function () {
  "use strict";
  var C = window.Clinic, h = C.h;
  var main = document.getElementById("main");
  var DAYS = 90;
  var TOKEN_KEY = "clinic.token";

  function start(claims) {
    C.feedLink();
    var board = h("div", {id: "board"});
    var offers = h("div", {id: "offers"});
    var waitlistCard = h("section", {class: "card", id: "waitlist", "aria-label": "Waitlist"});
    main.replaceChildren(h("div", {id: "notice", class: "notice", role: "alert"}), offers, board, waitlistCard);
    var waitlist = window.Waitlist.PatientCard(waitlistCard, offers);
    waitlist.load();
    var b = new window.Schedule.Board(board, {columns: null, actions: false, showDentist: true, days: DAYS,
                                              title: "Upcoming visits"});
    var until = new Date(Date.now() + (DAYS + 1) * 864e5).toISOString();
    var sync = window.Schedule.live(b, function () {
      return C.api("GET", "/api/appointments?from=" + C.dayKey() + "&to=" + encodeURIComponent(until))
        .catch(function (err) {
          if (err.status === 401) codeSignIn("Your sign-in has ended; please sign in again.");
          throw err;
        });
    }, {onRefused: function (why) {
      window.clinicSync.close();
      codeSignIn("Your sign-in was not accepted: " + why);
    }});
    waitlist.listen(sync);  // offers and requests, live
  }

  function post(path, body) {
    return fetch(path, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)})
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (data) {
          if (!r.ok) throw new C.ApiError(r.status, data);
          return data;
        });
      });
  }

  /** Step 1: the phone number; step 2: the code texted to it. */
  function codeSignIn(problem) {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem("clinic.name");
    var phone = h("input", {id: "phone-input", name: "phone", type: "tel", autocomplete: "tel", required: true});
    var error = h("p", {id: "signin-error", class: "error", role: "alert"}, problem || "");
    var form = h("form", {class: "card signin", id: "code-signin"},
      h("h2", {}, "Sign in"), error,
      h("label", {for: "phone-input"}, "The phone number the clinic has for you"), phone,
      h("button", {type: "submit", id: "send-code"}, "Text me a code"),
      h("p", {class: "hint"}, h("button", {type: "button", class: "link", id: "use-token",
        onclick: function () { C.signIn(main, ["patient"], start); }}, "I have an access token")));
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      error.textContent = "";
      post("/api/patient/sign-in/code", {phone: phone.value}).then(function (sent) {
        askCode(sent.attempt, sent.message);
      }).catch(function (err) { error.textContent = err.message; });
    });
    main.replaceChildren(form);
    phone.focus();
  }

  function askCode(attempt, message) {
    var code = h("input", {id: "code-input", name: "code", inputmode: "numeric", autocomplete: "one-time-code",
                           pattern: "[0-9 ]{6,7}", maxlength: "7", required: true});
    var error = h("p", {id: "signin-error", class: "error", role: "alert"});
    var form = h("form", {class: "card signin", id: "code-verify"},
      h("h2", {}, "Type the code"), h("p", {class: "hint", id: "code-sent"}, message), error,
      h("label", {for: "code-input"}, "6-digit code"), code,
      h("button", {type: "submit", id: "verify-code"}, "Sign in"),
      h("p", {class: "hint"}, h("button", {type: "button", class: "link", id: "new-code",
        onclick: function () { codeSignIn(); }}, "Send a new code")));
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      error.textContent = "";
      post("/api/patient/sign-in/verify", {attempt: attempt, code: code.value}).then(function (done) {
        sessionStorage.setItem(TOKEN_KEY, done.token);
        sessionStorage.setItem("clinic.name", done.name);  // the header shows it (common.js)
        location.reload();
      }).catch(function (err) {
        error.textContent = err.message;
      });
    });
    main.replaceChildren(form);
    code.focus();
  }

  C.takeTokenFromUrl();
  var claims = C.claims();
  if (C.token() && claims && claims.role === "patient" && (!claims.exp || claims.exp * 1000 > Date.now())) {
    C.signIn(main, ["patient"], start);
  } else {
    codeSignIn();
  }
})();
