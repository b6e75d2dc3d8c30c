/*
 * The chat widget: Rasa's socketio channel (credentials.yml). On connect it sends
 * `session_request` with the conversation id kept in localStorage, so a reload continues the
 * same conversation (Rasa keeps the tracker; this page keeps the transcript it has shown).
 * Messages go out as `user_uttered` {message, session_id, metadata: {token}}; replies come back
 * as `bot_uttered` {text, quick_replies | buttons}. Everything shown is set as text, never HTML.
 */
(function () {
  "use strict";
  var C = window.Clinic, h = C.h;
  var MAX_TRANSCRIPT = 200;
  var REPLY_TIMEOUT = 20000;

  C.takeTokenFromUrl();
  var token = C.token();
  var claims = token ? C.claims(token) : null;
  var who = claims && claims.sub ? claims.sub : "guest";
  var SESSION_KEY = "chat.session." + who;      // one conversation per person on this browser
  var LOG_KEY = "chat.transcript." + who;

  var log = document.getElementById("chat-log");
  var typing = document.getElementById("typing");
  var replies = document.getElementById("quick-replies");
  var form = document.getElementById("chat-form");
  var input = document.getElementById("chat-input");
  var send = document.getElementById("chat-send");
  var status = document.getElementById("chat-status");
  var problem = document.getElementById("chat-problem");
  document.getElementById("clinic-name").textContent = C.meta("clinic-name", "Dental clinic");
  document.title = C.meta("clinic-name", "Dental clinic") + " · chat with our assistant";
  if (claims && claims.role === "patient") {
    document.getElementById("chat-who").textContent = "You are signed in: the assistant knows who you are.";
  }

  function rasaUrl() {
    var fromQuery = new URLSearchParams(location.search).get("rasa");
    if (fromQuery) return fromQuery;
    var configured = C.meta("rasa-url", "");
    if (configured) return configured;
    return location.protocol + "//" + location.hostname + ":" + C.meta("rasa-port", "5005");
  }

  // --- transcript ------------------------------------------------------------------------------
  var transcript = [];
  try { transcript = JSON.parse(localStorage.getItem(LOG_KEY) || "[]"); } catch (e) { transcript = []; }
  function save() {
    transcript = transcript.slice(-MAX_TRANSCRIPT);
    try { localStorage.setItem(LOG_KEY, JSON.stringify(transcript)); } catch (e) { /* storage full: keep going */ }
  }
  function show(entry) {
    log.appendChild(h("li", {class: "msg " + entry.from},
      h("span", {class: "sr-only"}, entry.from === "user" ? "You: " : entry.from === "bot" ? "Assistant: " : ""),
      entry.text));
    log.scrollTop = log.scrollHeight;
  }
  function add(from, text) {
    var entry = {from: from, text: String(text)};
    transcript.push(entry);
    save();
    show(entry);
  }
  transcript.forEach(show);

  function showReplies(buttons) {
    replies.replaceChildren.apply(replies, (buttons || []).map(function (b) {
      return h("button", {type: "button", onclick: function () { say(b.payload || b.title, b.title); }}, b.title);
    }));
  }
  try { showReplies(JSON.parse(localStorage.getItem(LOG_KEY + ".replies") || "[]")); } catch (e) { /* none */ }
  function keepReplies(buttons) {
    try { localStorage.setItem(LOG_KEY + ".replies", JSON.stringify(buttons || [])); } catch (e) { /* ignore */ }
  }

  // --- connection ------------------------------------------------------------------------------
  var sessionId = localStorage.getItem(SESSION_KEY);
  var confirmed = false;
  var queue = [];
  var replyTimer = null;

  function setStatus(state, text) {
    status.className = "conn " + state;
    status.dataset.state = state;
    status.replaceChildren(h("span", {class: "dot", "aria-hidden": "true"}), text);
  }
  function setProblem(text) { problem.textContent = text || ""; }

  var socket = window.io(rasaUrl(), {transports: ["websocket"], reconnectionDelay: 1000, reconnectionDelayMax: 10000});
  socket.on("connect", function () {
    confirmed = false;
    socket.emit("session_request", {session_id: sessionId});
  });
  socket.on("session_confirm", function (data) {
    var id = typeof data === "string" ? data : data && data.session_id;
    if (!id) return;
    sessionId = id;
    localStorage.setItem(SESSION_KEY, id);
    confirmed = true;
    setStatus("ok", "Assistant online");
    setProblem("");
    send.disabled = false;
    if (!transcript.length && !queue.length) queue.push({text: "/greet", shown: null});
    queue.splice(0).forEach(function (m) { emit(m.text); });
  });
  socket.on("disconnect", function () {
    confirmed = false;
    setStatus("wait", "Reconnecting…");
  });
  socket.on("connect_error", function () {
    confirmed = false;
    setStatus("bad", "Assistant unreachable");
    setProblem("The assistant can't be reached right now. We keep trying; you can also call us at " +
               C.meta("clinic-phone", "the clinic") + ".");
    typing.hidden = true;
  });
  socket.on("bot_uttered", function (msg) {
    clearTimeout(replyTimer);
    typing.hidden = true;
    if (!msg) return;
    if (msg.text) add("bot", msg.text);
    var buttons = msg.quick_replies || msg.buttons || [];
    if (buttons.length || msg.text) { showReplies(buttons); keepReplies(buttons); }
  });

  function emit(text) {
    socket.emit("user_uttered", {message: text, session_id: sessionId, metadata: token ? {token: token} : {}});
    typing.hidden = false;
    clearTimeout(replyTimer);
    replyTimer = setTimeout(function () {
      typing.hidden = true;
      add("system", "The assistant is taking longer than usual. Please try again in a moment.");
    }, REPLY_TIMEOUT);
  }

  function say(text, shown) {
    text = String(text || "").trim();
    if (!text) return;
    add("user", shown || text);
    showReplies([]);
    keepReplies([]);
    if (confirmed && socket.connected) emit(text);
    else queue.push({text: text});
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    say(input.value);
    input.value = "";
    input.focus();
  });
  document.getElementById("chat-reset").addEventListener("click", function () {
    localStorage.removeItem(SESSION_KEY);
    localStorage.removeItem(LOG_KEY);
    localStorage.removeItem(LOG_KEY + ".replies");
    location.reload();
  });
})();
