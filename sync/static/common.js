/*
 * What the staff and patient pages share: sign-in (a staff session cookie from /login, or a
 * token: field or ?token=, kept in sessionStorage), the REST helper, a DOM builder that only
 * ever sets text (never HTML), the connection indicator, and date formatting in the clinic's
 * time zone.
 *
 * Staff pages signed in with the cookie (HttpOnly: never seen here) read who they are and the
 * CSRF token from GET /api/session, and send that token in X-CSRF-Token on every write; the
 * cookie itself goes with every same-origin request and the Socket.IO handshake.
 */
(function (global) {
  "use strict";
  var TOKEN_KEY = "clinic.token";

  function meta(name, fallback) {
    var el = document.querySelector('meta[name="' + name + '"]');
    return el && el.content ? el.content : fallback;
  }
  var clinicTz = meta("clinic-timezone", "UTC");

  /** Build an element: h("li", {class: "x", "data-id": 3}, "text", child). Strings become text nodes. */
  function h(tag, attrs) {
    var el = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) return;
      if (k.slice(0, 2) === "on" && typeof v === "function") el.addEventListener(k.slice(2), v);
      else if (k === "text") el.textContent = String(v);
      else el.setAttribute(k, v === true ? "" : String(v));
    });
    for (var i = 2; i < arguments.length; i++) append(el, arguments[i]);
    return el;
  }
  function append(el, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { append(el, c); }); return; }
    el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }

  // --- sign-in -----------------------------------------------------------------------------
  function takeTokenFromUrl() {
    var params = new URLSearchParams(location.search);
    var t = params.get("token");
    if (t) {
      sessionStorage.setItem(TOKEN_KEY, t.trim());
      sessionStorage.removeItem(NAME_KEY);  // another token: the name shown was another's
      params.delete("token");  // keep it out of the address bar, history and referrers
      var rest = params.toString();
      history.replaceState(null, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
    }
  }
  function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }
  var NAME_KEY = "clinic.name";  // who a token names, as its sign-in said (the patient page's code sign-in)
  function signOut() { sessionStorage.removeItem(TOKEN_KEY); sessionStorage.removeItem(NAME_KEY); location.reload(); }

  var csrf = "";  // the staff session's CSRF token; "" when signed in with a token
  function isStaffPage(roles) { return roles.indexOf("admin") >= 0 || roles.indexOf("dentist") >= 0; }
  function toLogin() {
    sessionStorage.removeItem(TOKEN_KEY);
    location.replace("/login?next=" + encodeURIComponent(location.pathname));
  }
  function signOutSession() {
    api("POST", "/logout").catch(function () { /* the cookie is cleared or already invalid */ })
      .then(function () { location.assign("/login"); });
  }
  function showWho(label, out) {
    var who = document.getElementById("who");
    if (who) {
      who.replaceChildren(h("span", {id: "who-name", text: label}), " ",
        h("button", {type: "button", class: "link", id: "sign-out", onclick: out}, "Sign out"));
    }
  }

  /** The claims of a token (unverified: the server checks it; the page only picks its view). */
  function claims(t) {
    try {
      var part = (t || token()).split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(decodeURIComponent(escape(atob(part))));
    } catch (e) {
      return null;
    }
  }

  /** A staff page without a token: the cookie session, as GET /api/session tells it. */
  function sessionSignIn(root, roles, start) {
    api("GET", "/api/session").then(function (s) {
      csrf = s.csrf_token || "";
      showWho(s.name || s.sub, signOutSession);
      if (roles.indexOf(s.role) < 0) {
        var home = s.role === "admin" ? "/admin" : "/dentist";
        root.replaceChildren(h("section", {class: "card signin", id: "wrong-role"},
          h("h2", {}, "Not your page"),
          h("p", {class: "error", role: "alert"}, "You are signed in as " + (s.name || s.sub) + " (" + s.role +
            "); this page is for " + roles.join(" or ") + " accounts."),
          h("p", {}, h("a", {href: home}, "Open your page"))));
        return;
      }
      start({role: s.role, sub: s.sub, name: s.name, dentist_id: s.dentist_id, patient_id: s.patient_id});
    }).catch(function (err) {
      if (err.status === 401) toLogin();
      else root.replaceChildren(h("p", {class: "error", role: "alert"}, "Could not check your sign-in: " + err.message));
    });
  }

  /**
   * Staff pages: the cookie session (or, when the page came with ?token=, that token); no valid
   * sign-in goes to /login. Patient pages: the token form when there is no token, or the token's
   * role is not among `roles`. Then start(claims) runs.
   */
  function signIn(root, roles, start, problem) {
    takeTokenFromUrl();
    var c = claims();
    var staff = isStaffPage(roles);
    if (token() && c && roles.indexOf(c.role) >= 0 && !problem) {
      showWho(sessionStorage.getItem(NAME_KEY) || c.sub, signOut);
      start(c);
      return;
    }
    if (staff && !token()) {
      if (problem) toLogin();  // the session ended while the page was open
      else sessionSignIn(root, roles, start);
      return;
    }
    var whoEl = document.getElementById("who");
    if (whoEl) whoEl.replaceChildren();
    var input = h("input", {id: "token-input", name: "token", type: "password", autocomplete: "off",
                            required: true, "aria-describedby": "token-help"});
    var form = h("form", {class: "card signin", id: "signin"},
      h("h2", {}, "Sign in"),
      problem || (token() && c && roles.indexOf(c.role) < 0)
        ? h("p", {class: "error", role: "alert"}, problem || ("This page is for " + roles.join(" or ") + " tokens; this one is a " + c.role + " token."))
        : null,
      h("label", {for: "token-input"}, "Access token"),
      input,
      h("p", {id: "token-help", class: "hint"},
        "Paste a token from ", h("code", {}, "python -m bot token " + roles[0] + (roles[0] === "admin" ? "" : " ID")),
        ", or open this page with ?token=…"),
      h("button", {type: "submit"}, "Sign in"),
      staff ? h("p", {class: "hint"}, h("button", {type: "button", class: "link", id: "to-login", onclick: toLogin},
                                        "Sign in with your email and password")) : null);
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var value = input.value.trim();
      sessionStorage.setItem(TOKEN_KEY, value);
      // a staff page is served only to a sign-in it can see: the token goes in the address once
      // (and is taken out of it again at once)
      if (staff) location.assign(location.pathname + "?token=" + encodeURIComponent(value));
      else location.reload();
    });
    root.replaceChildren(form);
    input.focus();
  }

  // --- REST --------------------------------------------------------------------------------
  function ApiError(status, body) {
    this.status = status;
    this.code = (body && body.error) || "error";
    this.message = (body && body.message) || ("HTTP " + status);
  }
  ApiError.prototype = Object.create(Error.prototype);

  function api(method, path, body) {
    var init = {method: method, credentials: "same-origin", headers: {Accept: "application/json"}};
    if (token()) init.headers.Authorization = "Bearer " + token();
    else if (csrf && method !== "GET") init.headers["X-CSRF-Token"] = csrf;
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (resp) {
      if (resp.status === 204) return null;
      return resp.json().catch(function () { return null; }).then(function (data) {
        if (!resp.ok) throw new ApiError(resp.status, data);
        return data;
      });
    });
  }

  // --- connection indicator and messages ---------------------------------------------------
  var STATES = {live: ["Live", "ok"], connecting: ["Connecting…", "wait"], reconnecting: ["Reconnecting…", "wait"],
                refused: ["Refused", "bad"], closed: ["Offline", "bad"]};
  function showConnection(state, detail) {
    var el = document.getElementById("connection");
    if (!el) return;
    var s = STATES[state] || [state, "wait"];
    el.dataset.state = state;
    el.className = "conn " + s[1];
    el.replaceChildren(h("span", {class: "dot", "aria-hidden": "true"}), s[0]);
    el.title = detail ? String(detail) : "";
  }

  function notify(message, kind) {
    var el = document.getElementById("notice");
    if (!el) return;
    el.className = "notice " + (kind || "info");
    el.textContent = message;
  }

  // --- time in the clinic's zone -----------------------------------------------------------
  var fmtDay = new Intl.DateTimeFormat(undefined, {timeZone: clinicTz, weekday: "short", day: "numeric", month: "short"});
  var fmtTime = new Intl.DateTimeFormat(undefined, {timeZone: clinicTz, hour: "2-digit", minute: "2-digit", hourCycle: "h23"});
  var fmtKey = new Intl.DateTimeFormat("en-CA", {timeZone: clinicTz, year: "numeric", month: "2-digit", day: "2-digit"});
  function day(iso) { return fmtDay.format(new Date(iso)); }
  function clock(iso) { return fmtTime.format(new Date(iso)); }
  function dayKey(iso) { return fmtKey.format(iso ? new Date(iso) : new Date()); }

  /** "2026-05-04T09:30" read as a wall-clock time in the clinic's zone → an ISO instant with Z. */
  function clinicLocalToIso(local) {
    var m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})$/.exec(local);
    if (!m) return null;
    var wall = Date.UTC(+m[1], m[2] - 1, +m[3], +m[4], +m[5]);
    var guess = wall;
    for (var i = 0; i < 2; i++) guess = wall - offsetAt(guess);
    return new Date(guess).toISOString();
  }
  function offsetAt(instant) {
    var parts = {};
    new Intl.DateTimeFormat("en-US", {timeZone: clinicTz, hourCycle: "h23", year: "numeric", month: "2-digit",
      day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit"})
      .formatToParts(new Date(instant)).forEach(function (p) { parts[p.type] = p.value; });
    var asUtc = Date.UTC(+parts.year, parts.month - 1, +parts.day, +parts.hour % 24, +parts.minute, +parts.second);
    return asUtc - Math.floor(instant / 1000) * 1000;
  }

  var STATUS_LABELS = {pending: "Pending", confirmed: "Confirmed", cancelled: "Cancelled",
                       completed: "Completed", no_show: "No-show"};
  function statusBadge(status) {
    return h("span", {class: "badge s-" + status, "data-status": status}, STATUS_LABELS[status] || status);
  }

  /** A "Calendar feed" link in the page's navigation: the private .ics URL of the signed-in
   * dentist or patient (GET /api/feeds/me), for a calendar application to subscribe to. */
  function feedLink() {
    var nav = document.querySelector("header.top nav");
    if (!nav || document.getElementById("feed-link")) return;
    api("GET", "/api/feeds/me").then(function (feed) {
      var link = h("a", {href: feed.url, id: "feed-link", rel: "nofollow",
        title: "Subscribe to it in your calendar application; keep it private: it shows your visits"},
        "Calendar feed");
      // a URL shared by mistake is replaced (POST /api/feeds/me/renew): the old one stops working
      var renew = h("button", {type: "button", id: "feed-renew", class: "link",
        title: "Make a new calendar feed URL; calendars subscribed to the old one stop updating"}, "new link");
      renew.addEventListener("click", function () {
        if (!window.confirm("Make a new calendar feed link? Calendars subscribed to the current one " +
                            "stop updating until you subscribe them to the new one.")) return;
        renew.disabled = true;
        api("POST", "/api/feeds/me/renew").then(function (fresh) {
          link.href = fresh.url;
          notify("A new calendar feed link is ready; the old one no longer works.");
        }).catch(function (err) {
          notify("Could not make a new link: " + (err && err.message || "try again"), "error");
        }).then(function () { renew.disabled = false; });
      });
      nav.appendChild(link);
      nav.appendChild(renew);
    }).catch(function () { /* no feed for this sign-in: no link */ });
  }

  /** Briefly mark an element as just changed (and keep it visible for assistive tech). */
  function flash(el) {
    el.classList.remove("flash");
    void el.offsetWidth;  // restart the animation
    el.classList.add("flash");
  }

  global.Clinic = {h: h, meta: meta, token: token, claims: claims, signIn: signIn, takeTokenFromUrl: takeTokenFromUrl, api: api, ApiError: ApiError,
                   showConnection: showConnection, notify: notify, day: day, clock: clock, dayKey: dayKey,
                   clinicLocalToIso: clinicLocalToIso, statusBadge: statusBadge, flash: flash, clinicTz: clinicTz,
                   STATUS_LABELS: STATUS_LABELS, feedLink: feedLink};
})(window);
