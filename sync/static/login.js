/*
 * /login: the staff sign-in form. Sends {email, password, next} as JSON to POST /login; on
 * success the server has set the session cookie (HttpOnly: this script never sees it) and names
 * the page to open. A wrong email or password, and a locked account, are said as the server says
 * them (it never tells whether an email has an account).
 */
(function () {
  "use strict";
  var form = document.getElementById("login");
  var problem = document.getElementById("login-error");
  var button = document.getElementById("sign-in");
  var next = new URLSearchParams(location.search).get("next") || "";
  // this tab signed in to a staff page with a token (?token=, kept in sessionStorage), then
  // reloaded it: the server saw no session cookie and sent it here; go back with that token
  var kept = sessionStorage.getItem("clinic.token");
  if (kept && (next === "/admin" || next === "/dentist")) {
    location.replace(next + "?token=" + encodeURIComponent(kept));
    return;
  }
  document.getElementById("next").value = next;
  var clinic = document.querySelector('meta[name="clinic-name"]');
  if (clinic && clinic.content) document.getElementById("clinic").textContent = "Sign in to " + clinic.content;

  function say(text) {
    problem.textContent = text;
    problem.hidden = !text;
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var email = form.email.value.trim(), password = form.password.value;
    if (!email || !password) { say("Enter your email and your password."); return; }
    button.disabled = true;
    say("");
    fetch("/login", {method: "POST", credentials: "same-origin",
                     headers: {"Content-Type": "application/json", Accept: "application/json"},
                     body: JSON.stringify({email: email, password: password, next: next})})
      .then(function (resp) {
        return resp.json().catch(function () { return {}; }).then(function (data) {
          if (resp.ok && data.redirect) { location.assign(data.redirect); return; }
          button.disabled = false;
          form.password.value = "";
          form.password.focus();
          if (resp.status === 429) say("Too many failed sign-ins. " + (data.message || "Try again later."));
          else if (resp.status === 401) say("Wrong email or password.");
          else say(data.message || ("Sign-in failed (HTTP " + resp.status + ")."));
        });
      })
      .catch(function () {
        button.disabled = false;
        say("The clinic's server cannot be reached. Try again in a moment.");
      });
  });
  form.email.focus();
})();
