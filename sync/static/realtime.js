/*
 * realtime.js: the browser client of the sync service (no build step; needs the vendored
 * Socket.IO client, /static/vendor/socket.io.min.js, loaded first as the global `io`).
 *
 *   const sync = realtimeSync({url, token}, {onAppointmentCreated, onAppointmentUpdated,
 *       onAppointmentDeleted, onAvailabilityChanged, onReminderSent, onWaitlistChanged, onWaitlistOffer,
 *       onResyncRequired, onAdvance, onConnectionChange, onError});
 *   const sub = subscribeAppointments(userId, role, {onAppointmentCreated, ...});  // sub.unsubscribe()
 *   const av = subscribeAvailability(dentistId, {onAvailabilityChanged});
 *
 * Reconnects by itself and resumes from the last event id it saw (`since`), so nothing is lost
 * or repeated across a dropped connection or a restart of the service; when the service can no
 * longer replay (`resync_required`), onResyncRequired tells the page to reload its data.
 * Documentation: docs/web.md.
 */
(function (global) {
  "use strict";

  var EVENTS = {
    appointment_created: "onAppointmentCreated",
    appointment_updated: "onAppointmentUpdated",
    appointment_deleted: "onAppointmentDeleted",
    availability_changed: "onAvailabilityChanged",
    reminder_sent: "onReminderSent",
    waitlist_changed: "onWaitlistChanged",
    waitlist_offer: "onWaitlistOffer"
  };
  var shared = null;        // the connection subscribeAppointments / subscribeAvailability share
  var defaults = {};        // set by configure()

  function call(callbacks, name) {
    var fn = callbacks && callbacks[name];
    if (typeof fn !== "function") return;
    try {
      fn.apply(null, Array.prototype.slice.call(arguments, 2));
    } catch (err) {
      if (global.console) global.console.error("realtime.js: " + name + " callback failed", err);
    }
  }

  /** One connection with automatic resume. Returns a handle (see docs/web.md). */
  function realtimeSync(options, callbacks) {
    options = Object.assign({}, defaults, options || {});
    callbacks = callbacks || {};
    var ioFn = options.io || global.io;
    if (typeof ioFn !== "function") throw new Error("realtime.js needs the Socket.IO client (global io)");
    var state = "connecting";
    var subscriptions = [];      // {request, ack promise resolvers} replayed after every reconnect
    var listeners = [];          // extra callback sets (subscribeAppointments & co.)
    var retryTimer = null;
    var closed = false;
    var handle = {
      lastEventId: typeof options.since === "number" ? options.since : null,
      get state() { return state; },
      get connected() { return state === "live"; }
    };

    function setState(next, detail) {
      if (state === next) return;
      state = next;
      call(callbacks, "onConnectionChange", next, detail);
      listeners.forEach(function (l) { call(l.callbacks, "onConnectionChange", next, detail); });
    }

    var socket = ioFn(options.url || undefined, {
      path: options.path || "/socket.io",
      transports: options.transports || ["websocket", "polling"],
      reconnection: true,
      reconnectionDelay: options.reconnectionDelay || 500,
      reconnectionDelayMax: options.reconnectionDelayMax || 5000,
      timeout: options.timeout || 10000,
      // a function: read again at every (re)connect, so the server resumes after our last id
      auth: function (cb) {
        var auth = {token: typeof options.token === "function" ? options.token() : options.token};
        if (handle.lastEventId !== null) auth.since = handle.lastEventId;
        cb(auth);
      }
    });
    handle.socket = socket;

    socket.on("connect", function () {
      setState("live");
      subscriptions.forEach(function (s) { send(s); });
      call(callbacks, "onConnect");
    });
    socket.on("disconnect", function (reason) {
      if (state === "refused") return;  // signed out: the reason is already told
      setState(closed ? "closed" : "reconnecting", reason);
    });
    socket.on("connect_error", function (err) {
      var message = (err && err.message) || String(err);
      call(callbacks, "onError", {error: "connect_error", message: message});
      if (socket.active) {           // a network problem: Socket.IO retries by itself
        setState("reconnecting", message);
        return;
      }
      // refused by the server: a bad token (or an ended sign-in) stays refused; anything else is retried
      if (/token|sign-in|sign in/i.test(message)) {
        setState("refused", message);
      } else {
        setState("reconnecting", message);
        clearTimeout(retryTimer);
        retryTimer = setTimeout(function () { if (!closed) socket.connect(); }, options.retryDelay || 1000);
      }
    });
    Object.keys(EVENTS).forEach(function (type) {
      socket.on(type, function (event) {
        if (event && typeof event.id === "number") {
          if (handle.lastEventId !== null && event.id <= handle.lastEventId) return;  // already seen
          handle.lastEventId = event.id;
        }
        call(callbacks, EVENTS[type], event);
        call(callbacks, "onEvent", type, event);
        listeners.forEach(function (l) {
          if (!l.filter || l.filter(type, event)) call(l.callbacks, EVENTS[type], event);
        });
      });
    });
    // the staff session this connection was opened with ended (signed out, disabled, expired):
    // the service closes the connection; it stays closed until the person signs in again
    socket.on("signed_out", function (info) {
      closed = true;
      setState("refused", (info && info.message) || "your sign-in has ended; sign in again");
    });
    socket.on("resync_required", function (info) {
      if (info && typeof info.lastId === "number") handle.lastEventId = info.lastId;
      call(callbacks, "onResyncRequired", info);
      listeners.forEach(function (l) { call(l.callbacks, "onResyncRequired", info); });
    });

    function send(sub) {
      socket.timeout(options.ackTimeout || 5000).emit("subscribe", sub.request, function (err, ack) {
        var result = err ? {ok: false, error: "timeout", message: "no answer from the server"} : ack;
        sub.settle(result);
        if (!result || !result.ok) call(callbacks, "onError", result);
      });
    }

    /** Ask for another channel (kept across reconnects); resolves with the server's ack. */
    handle.subscribe = function (request) {
      var sub = {request: request};
      var promise = new Promise(function (resolve) { sub.settle = function (ack) { sub.settle = function () {}; resolve(ack); }; });
      subscriptions.push(sub);
      if (socket.connected) send(sub);
      sub.promise = promise;
      return sub;
    };
    handle.unsubscribe = function (sub) {
      subscriptions = subscriptions.filter(function (s) { return s !== sub; });
      if (socket.connected) socket.emit("unsubscribe", sub.request);
    };
    /**
     * After reading a snapshot over REST (`last_event_id` of GET /api/appointments): resume from
     * there, not from before it. Never moves backwards.
     */
    /** The page's snapshot is as of `eventId`: events up to it are already in it, so they are
     * skipped from now on. Anything read before that snapshot (a card loaded earlier) may lack an
     * event that is now skipped: onAdvance tells every listener to read its data again. */
    handle.advance = function (eventId) {
      if (typeof eventId === "number" && (handle.lastEventId === null || eventId > handle.lastEventId)) {
        var before = handle.lastEventId;
        handle.lastEventId = eventId;
        call(callbacks, "onAdvance", eventId, before);
        listeners.forEach(function (l) { call(l.callbacks, "onAdvance", eventId, before); });
      }
    };
    handle.addListener = function (listenerCallbacks, filter) {
      var l = {callbacks: listenerCallbacks || {}, filter: filter};
      listeners.push(l);
      return function () { listeners = listeners.filter(function (x) { return x !== l; }); };
    };
    handle.close = function () {
      closed = true;
      clearTimeout(retryTimer);
      socket.disconnect();
      setState("closed");
    };
    return handle;
  }

  function sharedConnection() {
    if (!shared) shared = realtimeSync(defaults, {});
    return shared;
  }

  function involves(event, key, id) {
    var a = (event && event.appointment) || {};
    var p = (event && event.previous) || {};
    return a[key] === id || p[key] === id;
  }

  /**
   * The appointments of one user: role "admin" (all), "dentist" (that dentist's diary) or
   * "patient" (that patient's visits), with the reminders sent for them (onReminderSent).
   * Returns {ready: Promise<ack>, unsubscribe()}.
   */
  function subscribeAppointments(userId, role, callbacks) {
    var conn = sharedConnection();
    var request, filter;
    if (role === "admin") {
      request = {topic: "appointments", global: true};
      filter = function (type) { return type !== "availability_changed"; };
    } else if (role === "dentist" || role === "patient") {
      var key = role + "_id";
      request = {topic: "appointments"};
      request[key] = Number(userId);
      // a reminder names only its visit (appointment_id): the service sends it to that visit's
      // dentist and patient (and admins) alone, so on their own connection every one is theirs
      filter = function (type, event) {
        if (type === "reminder_sent") return true;
        return type !== "availability_changed" && involves(event, key, Number(userId));
      };
    } else {
      throw new Error("subscribeAppointments: role must be admin, dentist or patient");
    }
    var sub = conn.subscribe(request);
    var remove = conn.addListener(callbacks, filter);
    return {ready: sub.promise, connection: conn,
            unsubscribe: function () { remove(); conn.unsubscribe(sub); }};
  }

  /** Changes to one dentist's free time (dentistId null: the whole clinic's). */
  function subscribeAvailability(dentistId, callbacks) {
    var conn = sharedConnection();
    var request = dentistId == null ? {topic: "availability", global: true}
                                    : {topic: "availability", dentist_id: Number(dentistId)};
    var sub = conn.subscribe(request);
    var remove = conn.addListener(callbacks, function (type, event) {
      return type === "availability_changed" &&
        (dentistId == null || event.dentist_id == null || event.dentist_id === Number(dentistId));
    });
    return {ready: sub.promise, connection: conn,
            unsubscribe: function () { remove(); conn.unsubscribe(sub); }};
  }

  /** Options every later call shares: {url, token, ...} (token may be a function). */
  function configure(options) {
    defaults = Object.assign({}, defaults, options || {});
    return defaults;
  }

  var api = {realtimeSync: realtimeSync, subscribeAppointments: subscribeAppointments,
             subscribeAvailability: subscribeAvailability, configure: configure};
  global.Realtime = api;
  global.realtimeSync = realtimeSync;
  global.subscribeAppointments = subscribeAppointments;
  global.subscribeAvailability = subscribeAvailability;
})(typeof window !== "undefined" ? window : this);
