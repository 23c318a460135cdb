/* switchboard web chat widget. Embed with
 *   <script src="https://ENGINE/web/widget.js" data-integration="ID" async></script>
 * Optional: data-user-id and data-user-hash (HMAC-SHA256 of the user id with
 * the integration's identity_secret, made by the site's server), and
 * data-engine="https://ENGINE" when this file is served from elsewhere.
 * Renders into an open shadow root; no framework, no external requests but
 * the engine's socket. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !script.dataset.integration) return;
  var integration = script.dataset.integration;
  // The engine: the script's own origin, or data-engine when the script is
  // served from elsewhere (a Shopify theme's assets).
  var base = new URL(script.dataset.engine || script.src, location.href);
  var wsUrl = (base.protocol === "https:" ? "wss://" : "ws://") + base.host +
    "/web/" + encodeURIComponent(integration) + "/ws";
  var key = "switchboard:" + integration + ":";
  var store = {
    get: function (k) { try { return localStorage.getItem(key + k); } catch (e) { return null; } },
    set: function (k, v) { try { localStorage.setItem(key + k, v); } catch (e) {} }
  };
  // Messages sent and not yet acknowledged: sent again after a reconnect
  // with the same client id (the engine answers each once). Kept per
  // signed-in user (a shared computer's next user never sends them), and
  // read again before each change (another tab may have added or taken
  // some since).
  var pendingKey = "pending:" + (script.dataset.userId ? "u:" + script.dataset.userId : "v");
  // An earlier widget kept every user's under one key: whose they are is
  // not known, so none of them is sent as someone else's.
  try { localStorage.removeItem(key + "pending"); } catch (e) {}
  function loadPending() {
    try { var l = JSON.parse(store.get(pendingKey) || "[]"); return Array.isArray(l) ? l : []; }
    catch (e) { return []; }
  }
  var pending = loadPending();
  // The newest reply this page shows: a new page load asks for the whole
  // history, a reconnect for what came after it.
  var lastSeq = 0;
  var seen = {};
  // Refusals for now ("busy", too many) in a row, and the wait after the
  // last: while it runs, new messages wait too, so that they go in order.
  var refusals = 0, holding = null;
  var ws = null, backoff = 500, timer = null, open = false, typingTimer = null;
  // A socket can look open and carry nothing (a network switch, a NAT or a
  // proxy that forgot it): after a ping or a message, some frame must come
  // within PROBE_MS, else the socket is dropped and a new one opened.
  var PROBE_MS = 10000, PING_MS = 25000, probing = null;

  var host = document.createElement("div");
  host.setAttribute("data-switchboard-chat", integration);
  var root = host.attachShadow({ mode: "open" });
  root.innerHTML =
    '<style>' +
    ':host{all:initial}*{box-sizing:border-box;font-family:system-ui,sans-serif;font-size:14px}' +
    '.launch{position:fixed;bottom:20px;right:20px;width:56px;height:56px;border-radius:50%;border:0;' +
    'background:var(--c,#1a73e8);color:#fff;cursor:pointer;box-shadow:0 2px 8px #0004;z-index:2147483000}' +
    '.panel{position:fixed;bottom:88px;right:20px;width:340px;max-width:calc(100vw - 40px);height:460px;' +
    'max-height:calc(100vh - 120px);display:none;flex-direction:column;background:#fff;border-radius:12px;' +
    'box-shadow:0 4px 24px #0005;overflow:hidden;z-index:2147483000}' +
    '.left .launch,.left .panel{right:auto;left:20px}.panel.open{display:flex}' +
    'header{background:var(--c,#1a73e8);color:#fff;padding:12px;font-weight:600;display:flex;justify-content:space-between}' +
    'header button{background:none;border:0;color:#fff;cursor:pointer;font-size:18px}' +
    '.log{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:6px}' +
    '.m{max-width:80%;padding:8px 10px;border-radius:10px;white-space:pre-wrap;word-wrap:break-word}' +
    '.visitor{align-self:flex-end;background:var(--c,#1a73e8);color:#fff}.visitor.wait{opacity:.6}' +
    '.ai,.agent{align-self:flex-start;background:#f1f3f4;color:#202124}.who{font-size:11px;color:#5f6368}' +
    '.typing{font-style:italic;color:#5f6368;min-height:18px;padding:0 12px}' +
    'form{display:flex;border-top:1px solid #ddd}input{flex:1;border:0;padding:12px;outline-offset:-2px}' +
    'form button{border:0;background:none;color:var(--c,#1a73e8);font-weight:600;padding:0 14px;cursor:pointer}' +
    '.choices{display:flex;flex-wrap:wrap;gap:4px}.choices button{border:1px solid var(--c,#1a73e8);' +
    'color:var(--c,#1a73e8);background:#fff;border-radius:14px;padding:4px 10px;cursor:pointer}' +
    '.status{font-size:11px;color:#5f6368;padding:0 12px}' +
    '</style>' +
    '<div class="wrap"><button class="launch" type="button" aria-label="Open chat" aria-expanded="false"><svg width="26" height="26" viewBox="0 0 24 24" aria-hidden="true"><path fill="#fff" d="M4 3h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V5a2 2 0 0 1 2-2z"/></svg></button>' +
    '<div class="panel" role="dialog" aria-label="Chat"><header><span class="title">Chat</span>' +
    '<button type="button" class="close" aria-label="Close chat">&times;</button></header>' +
    '<div class="log" role="log" aria-live="polite"></div><div class="typing" aria-live="polite"></div>' +
    '<div class="status" aria-live="polite"></div>' +
    '<form><input type="text" aria-label="Message" placeholder="Type a message" maxlength="2000" autocomplete="off">' +
    '<button type="submit">Send</button></form></div></div>';
  var $ = function (s) { return root.querySelector(s); };
  var wrap = $(".wrap"), panel = $(".panel"), log = $(".log"), input = $("input");
  var launch = $(".launch"), typingEl = $(".typing"), statusEl = $(".status");

  function toggle(show) {
    open = show;
    panel.classList.toggle("open", show);
    launch.setAttribute("aria-expanded", String(show));
    if (show) { input.focus(); connect(); markRead(); }
  }
  launch.addEventListener("click", function () { toggle(!open); });
  $(".close").addEventListener("click", function () { toggle(false); launch.focus(); });
  root.addEventListener("keydown", function (e) { if (e.key === "Escape" && open) { toggle(false); launch.focus(); } });

  function bubble(author, text, id, extra) {
    var el = id ? log.querySelector('[data-id="' + id + '"]') : null;
    if (!el) {
      el = document.createElement("div");
      if (id) el.setAttribute("data-id", id);
      log.appendChild(el);
    }
    el.className = "m " + author + (extra || "");
    el.textContent = text;
    log.scrollTop = log.scrollHeight;
    return el;
  }
  function show(frame) {
    if (frame.seq && seen[frame.seq]) return;
    if (frame.seq) seen[frame.seq] = true;
    var text = frame.text || "";
    if (frame.attachment && frame.attachment.url) text += (text ? "\n" : "") + frame.attachment.url;
    if (frame.author === "visitor") {
      bubble("visitor", text, frame.client_id || ("s" + frame.seq));
      return;
    }
    typingEl.textContent = "";
    if (frame.author === "agent") {
      var who = document.createElement("div");
      who.className = "who";
      who.textContent = frame.name || "A person from the team";
      log.appendChild(who);
    }
    bubble(frame.author || "ai", text, "s" + frame.seq);
    if (frame.choices && frame.choices.length) {
      var box = document.createElement("div");
      box.className = "choices";
      frame.choices.forEach(function (c) {
        var b = document.createElement("button");
        b.type = "button"; b.textContent = c;
        b.addEventListener("click", function () { box.remove(); submit(c); });
        box.appendChild(b);
      });
      log.appendChild(box);
    }
    if (frame.seq > lastSeq) lastSeq = frame.seq;
    if (open) markRead();
  }
  function markRead() {
    if (ws && ws.readyState === 1 && lastSeq) ws.send(JSON.stringify({ type: "read", seq: lastSeq }));
  }
  function changePending(f) {
    pending = f(loadPending());
    store.set(pendingKey, JSON.stringify(pending));
  }
  function dropPending(id) {
    changePending(function (l) { return l.filter(function (p) { return p.id !== id; }); });
  }
  function probe() {
    var s = ws;
    if (!s || s.readyState !== 1 || probing) return;
    try { s.send('{"type":"ping"}'); } catch (e) {}
    probing = setTimeout(function () {
      probing = null;
      if (ws !== s) return;
      ws = null;
      try { s.close(); } catch (e) {}
      retry();
    }, PROBE_MS);
  }
  // While the chat is open or a message waits: a socket that went quiet
  // is found within a ping and its probe.
  setInterval(function () { if (open || pending.length) probe(); }, PING_MS);
  function transmit(p) {
    if (ws && ws.readyState === 1) ws.send(JSON.stringify({ type: "message", client_id: p.id, text: p.text }));
  }
  function submit(text) {
    text = text.trim();
    if (!text) return;
    var p = { id: "c" + Date.now().toString(36) + Math.random().toString(36).slice(2, 10), text: text };
    changePending(function (l) { l.push(p); return l; });
    bubble("visitor", text, p.id, " wait");
    if (holding) return;
    transmit(p);
    probe();
  }
  $("form").addEventListener("submit", function (e) { e.preventDefault(); submit(input.value); input.value = ""; });

  function connect() {
    if (ws && ws.readyState <= 1) return;
    clearTimeout(timer);
    clearTimeout(probing); probing = null;
    var s, welcomed = false, refused = false;
    try { s = new WebSocket(wsUrl); } catch (e) { retry(); return; }
    ws = s;
    // Each socket's handlers act only while it is the current one: an old
    // socket closing late neither replaces nor reopens the current one.
    s.onopen = function () {
      if (ws !== s) return;
      var hello = { type: "hello", last_seq: lastSeq };
      if (script.dataset.userId) { hello.user_id = script.dataset.userId; hello.user_hash = script.dataset.userHash; }
      else if (store.get("visitor")) hello.visitor = store.get("visitor");
      s.send(JSON.stringify(hello));
    };
    s.onmessage = function (e) {
      if (ws !== s) return;
      clearTimeout(probing); probing = null;
      var f; try { f = JSON.parse(e.data); } catch (x) { return; }
      if (f.type === "welcome") {
        welcomed = true;
        backoff = 500; statusEl.textContent = "";
        clearTimeout(holding); holding = null;
        if (f.visitor) store.set("visitor", f.visitor);
        if (f.color) wrap.style.setProperty("--c", f.color);
        if (f.position === "left") wrap.classList.add("left");
        if (f.title) { $(".title").textContent = f.title; panel.setAttribute("aria-label", f.title); }
        if (f.greeting && !log.childElementCount) bubble("ai", f.greeting, "greeting");
        (f.history || []).forEach(show);
        pending = loadPending();
        pending.forEach(function (p) {
          if (!log.querySelector('[data-id="' + p.id + '"]')) bubble("visitor", p.text, p.id, " wait");
          transmit(p);
        });
      } else if (f.type === "message") {
        show(f);
      } else if (f.type === "ack") {
        refusals = 0;
        dropPending(f.client_id);
        var el = log.querySelector('[data-id="' + f.client_id + '"]');
        if (el) el.classList.remove("wait");
      } else if (f.type === "typing") {
        typingEl.textContent = f.on ? "typing..." : "";
        // Shown until the reply, or 30 s at most.
        clearTimeout(typingTimer);
        typingTimer = setTimeout(function () { typingEl.textContent = ""; }, 30000);
      } else if (f.type === "error") {
        // Sent again later, waiting longer each time (with jitter: widgets
        // do not all come back at the same moment).
        // Every message waiting goes again, in order, when it ends.
        if (f.client_id && f.retry) {
          if (holding) return;
          refusals += 1;
          var wait = Math.min(2000 * Math.pow(2, refusals - 1), 30000);
          holding = setTimeout(function () {
            holding = null;
            loadPending().forEach(transmit);
          }, wait / 2 + Math.random() * wait / 2);
        } else if (f.client_id) {
          dropPending(f.client_id);
          statusEl.textContent = f.reason || "Not sent";
        } else {
          // Refused before the welcome (a user hash the engine does not
          // take, perhaps not yet: a new key reaches every instance in
          // time): tried again, but only twice a minute.
          if (!welcomed) refused = true;
          statusEl.textContent = f.reason || "The chat is not available";
        }
      }
    };
    s.onclose = function () {
      if (ws !== s) return;
      ws = null;
      if (refused) backoff = 30000;
      if (open || pending.length) retry();
    };
  }
  function retry() {
    statusEl.textContent = "Reconnecting...";
    clearTimeout(timer);
    // With jitter: widgets do not all come back at the same moment.
    timer = setTimeout(connect, backoff / 2 + Math.random() * backoff / 2);
    backoff = Math.min(backoff * 2, 30000);
  }
  // After a laptop wakes or the network comes back: reconnect at once.
  // A socket that looks open is probed: it may have died meanwhile.
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && open) { backoff = 500; connect(); probe(); }
  });
  window.addEventListener("online", function () { backoff = 500; connect(); });
  // A socket from before the network went away is likely dead: closed, so
  // what is typed meanwhile waits and goes once the network is back.
  window.addEventListener("offline", function () {
    var s = ws;
    ws = null;
    if (s) s.close();
    if (open || pending.length) retry();
  });
  function mount() { document.body.appendChild(host); if (pending.length || store.get("visitor")) connect(); }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
})();
