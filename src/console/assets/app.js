/* switchboard operators' console. Served by the engine at /console/; talks
 * only to the engine's admin API (/api/v1) with the key given at sign-in,
 * kept in this tab's sessionStorage and sent as a bearer token, never in a
 * URL. Everything from the API is rendered as text, never as markup. */
(function () {
  "use strict";
  var KEY = "switchboard-console-key";
  var view = document.getElementById("view");
  var state = { integrations: [], stream: null, streamGen: 0, inbox: null, open: null, pending: {} };

  // ---- the API -----------------------------------------------------------
  function key() { try { return sessionStorage.getItem(KEY) || ""; } catch (e) { return ""; } }

  function api(method, path, body) {
    var opts = { method: method, headers: { Authorization: "Bearer " + key() } };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    return fetch("/api/v1" + path, opts).then(function (r) {
      return r.text().then(function (t) {
        var data = null;
        try { data = t ? JSON.parse(t) : null; } catch (e) { data = null; }
        if (r.status === 401) { signOut("Your key is no longer accepted; sign in again."); }
        if (!r.ok) {
          var why = data && data.error ? data.error : "the engine answered " + r.status;
          var err = new Error(why);
          err.status = r.status;
          throw err;
        }
        return data;
      });
    });
  }

  // ---- small helpers -----------------------------------------------------
  function el(tag, attrs, children) {
    var n = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") n.textContent = attrs[k];
      else if (k === "class") n.className = attrs[k];
      else if (k.slice(0, 2) === "on") n.addEventListener(k.slice(2), attrs[k]);
      else if (attrs[k] !== null && attrs[k] !== undefined && attrs[k] !== false) n.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) n.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return n;
  }
  function clear(n) { while (n.firstChild) n.removeChild(n.firstChild); }
  function enc(s) { return encodeURIComponent(s); }
  function when(iso) { return iso ? new Date(iso).toLocaleString() : ""; }
  function left(ms) {
    if (ms <= 0) return "closed";
    var m = Math.floor(ms / 60000), d = Math.floor(m / 1440), h = Math.floor((m % 1440) / 60);
    if (d > 0) return d + " d " + h + " h left";
    if (h > 0) return h + " h " + (m % 60) + " min left";
    return (m % 60) + " min left";
  }
  function pct(x) { return (x * 100).toFixed(1) + "%"; }
  function safeUrl(u) { return /^https?:\/\//i.test(u || "") ? u : null; }
  function label(id, text) { return el("label", { for: id, text: text }); }
  function select(id, options, value, onchange) {
    var s = el("select", { id: id, onchange: onchange });
    options.forEach(function (o) {
      var opt = el("option", { value: o[0], text: o[1] });
      if (o[0] === value) opt.selected = true;
      s.appendChild(opt);
    });
    return s;
  }
  function errorBox() { return el("p", { class: "error", role: "alert" }); }
  function authorOf(m) {
    if (m.direction === "in") return "Customer";
    return { ai: "AI", agent: "Person", inbox: "Person (platform inbox)" }[m.author] || "AI";
  }
  function integrationOptions(all) {
    return [["", all]].concat(state.integrations.map(function (i) { return [i.id, i.id + " (" + i.channel + ")"]; }));
  }

  // ---- sign-in and routing -----------------------------------------------
  function signOut(message) {
    try { sessionStorage.removeItem(KEY); } catch (e) {}
    stopStream();
    document.getElementById("nav").hidden = true;
    document.getElementById("signin").hidden = false;
    document.getElementById("signin-error").textContent = message || "";
    clear(view);
  }

  function signedIn() {
    return api("GET", "/integrations").then(function (d) {
      state.integrations = d.integrations || [];
      document.getElementById("signin").hidden = true;
      document.getElementById("nav").hidden = false;
      startStream();
      route();
    });
  }

  document.getElementById("signin-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var input = document.getElementById("key");
    try { sessionStorage.setItem(KEY, input.value.trim()); } catch (err) {}
    input.value = "";
    signedIn().catch(function (err) {
      signOut(err.status === 401 ? "That key is not accepted." : "Cannot sign in: " + err.message);
    });
  });
  document.getElementById("signout").addEventListener("click", function () { signOut(""); });

  function route() {
    if (!key()) return;
    var hash = location.hash || "#/inbox";
    document.querySelectorAll("nav a").forEach(function (a) {
      if (hash.indexOf(a.getAttribute("href")) === 0) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    });
    state.open = null;
    if (hash.indexOf("#/c/") === 0) {
      var id;
      try { id = decodeURIComponent(hash.slice(4)); } catch (e) { id = null; }
      if (id) return showConversation(id);
    }
    if (hash === "#/analytics") return showAnalytics();
    if (hash === "#/integrations") return showIntegrations();
    return showInbox();
  }
  window.addEventListener("hashchange", function () { route(); document.getElementById("main").focus(); });

  // ---- live changes: server-sent events read with fetch (EventSource
  // cannot send the key in a header) ---------------------------------------
  function stopStream() {
    state.streamGen++;
    if (state.stream) { try { state.stream.abort(); } catch (e) {} }
    state.stream = null;
  }

  function startStream() {
    stopStream();
    var gen = state.streamGen;
    var ctl = new AbortController();
    state.stream = ctl;
    setLive("connecting");
    fetch("/api/v1/stream", { headers: { Authorization: "Bearer " + key() }, signal: ctl.signal })
      .then(function (r) {
        if (r.status === 401) { signOut("Your key is no longer accepted; sign in again."); return; }
        if (!r.ok || !r.body) throw new Error("stream " + r.status);
        setLive("live");
        var reader = r.body.getReader(), dec = new TextDecoder(), buf = "";
        function pump() {
          return reader.read().then(function (x) {
            if (x.done) throw new Error("stream ended");
            buf += dec.decode(x.value, { stream: true });
            var at;
            while ((at = buf.indexOf("\n\n")) >= 0) {
              onEvent(buf.slice(0, at));
              buf = buf.slice(at + 2);
            }
            return pump();
          });
        }
        return pump();
      })
      .catch(function () {
        if (gen !== state.streamGen || !key()) return;
        setLive("reconnecting");
        // Whatever changed meanwhile is read again on reconnect.
        setTimeout(function () { if (gen === state.streamGen) { startStream(); refreshAll(); } }, 3000);
      });
  }

  function setLive(what) {
    var n = document.getElementById("live");
    if (n) n.textContent = what === "live" ? "Live" : what === "reconnecting" ? "Reconnecting..." : "Connecting...";
  }

  function onEvent(block) {
    var name = "message", data = "";
    block.split("\n").forEach(function (line) {
      if (line.indexOf("event:") === 0) name = line.slice(6).trim();
      else if (line.indexOf("data:") === 0) data += line.slice(5).trim();
    });
    if (name === "resync") return refreshAll();
    if (name !== "conversation") return;
    var id;
    try { id = JSON.parse(data).id; } catch (e) { return; }
    // Several changes of one conversation in a burst are read once.
    if (state.pending[id]) return;
    state.pending[id] = setTimeout(function () { delete state.pending[id]; changed(id); }, 250);
  }

  function refreshAll() {
    if (state.open) return reloadConversation();
    if (state.inbox) return loadInbox(false);
  }

  function changed(id) {
    if (state.open && state.open.id === id) reloadConversation();
    if (state.inbox) {
      api("GET", "/conversations/" + enc(id)).then(function (c) { upsertRow(c); }).catch(function () {});
    }
  }

  // ---- inbox -------------------------------------------------------------
  function showInbox() {
    var f = state.inbox ? state.inbox.filters : { integration: "", channel: "", mode: "" };
    state.inbox = { filters: f, rows: [], next: null };
    clear(view);
    var refilter = function () {
      f.integration = document.getElementById("f-integration").value;
      f.channel = document.getElementById("f-channel").value;
      f.mode = document.getElementById("f-mode").value;
      loadInbox(false);
    };
    view.appendChild(el("h1", { text: "Inbox" }));
    view.appendChild(el("p", { class: "live", id: "live", text: "Connecting..." }));
    view.appendChild(el("div", { class: "filters" }, [
      el("div", {}, [label("f-integration", "Integration"), select("f-integration", integrationOptions("All integrations"), f.integration, refilter)]),
      el("div", {}, [label("f-channel", "Channel"), select("f-channel", [["", "All channels"], ["messenger", "Messenger"], ["instagram", "Instagram"], ["whatsapp", "WhatsApp"], ["gmail", "Gmail"], ["web", "Website chat"]], f.channel, refilter)]),
      el("div", {}, [label("f-mode", "Handled by"), select("f-mode", [["", "AI or person"], ["ai", "AI"], ["human", "Person"]], f.mode, refilter)])
    ]));
    view.appendChild(el("ul", { class: "rows", id: "rows", "aria-label": "Conversations" }));
    view.appendChild(el("p", { class: "muted", id: "inbox-note" }));
    view.appendChild(el("button", { type: "button", class: "secondary", id: "more", hidden: true, text: "Load more", onclick: function () { loadInbox(true); } }));
    view.appendChild(errorBox());
    setLive(state.stream ? "live" : "connecting");
    loadInbox(false);
  }

  function inboxQuery(after) {
    var f = state.inbox.filters, q = ["order=recent", "limit=50"];
    if (f.integration) q.push("integration=" + enc(f.integration));
    if (f.channel) q.push("channel=" + enc(f.channel));
    if (f.mode) q.push("mode=" + enc(f.mode));
    if (after) q.push("after=" + enc(after));
    return "/conversations?" + q.join("&");
  }

  function loadInbox(more) {
    var inbox = state.inbox;
    return api("GET", inboxQuery(more ? inbox.next : null)).then(function (d) {
      if (state.inbox !== inbox) return;
      inbox.rows = more ? inbox.rows.concat(d.conversations) : d.conversations;
      inbox.next = d.next;
      renderRows();
      var note = document.getElementById("inbox-note");
      note.textContent = inbox.rows.length ? (d.partial ? "Only the first 10,000 conversations were looked at: narrow the filters to see the rest." : "") : "No conversations yet.";
      document.getElementById("more").hidden = !inbox.next;
    }).catch(function (e) { showError(e); });
  }

  function matches(c) {
    var f = state.inbox.filters;
    return (!f.integration || c.integration === f.integration) && (!f.channel || c.channel === f.channel) && (!f.mode || c.mode === f.mode);
  }

  function upsertRow(c) {
    var inbox = state.inbox;
    if (!inbox || !document.getElementById("rows")) return;
    inbox.rows = inbox.rows.filter(function (r) { return r.id !== c.id; });
    if (matches(c)) inbox.rows.unshift(c);
    inbox.rows.sort(function (a, b) { return new Date(b.last_activity) - new Date(a.last_activity); });
    renderRows();
    document.getElementById("inbox-note").textContent = inbox.rows.length ? "" : "No conversations yet.";
  }

  function renderRows() {
    var ul = document.getElementById("rows");
    if (!ul) return;
    clear(ul);
    state.inbox.rows.forEach(function (c) {
      ul.appendChild(el("li", { "data-id": c.id }, [el("a", { href: "#/c/" + enc(c.id) }, [
        el("span", { class: "who", text: c.customer_name || c.customer }),
        el("span", { class: "muted", text: when(c.last_activity) }),
        el("span", {}, [
          el("span", { class: "badge", text: c.channel }),
          el("span", { class: "badge" + (c.mode === "human" ? " human" : ""), text: c.mode === "human" ? "Person" : "AI" }),
          el("span", { class: "muted", text: c.integration })
        ]),
        el("span", { class: "muted", text: c.message_count + (c.message_count === 1 ? " message" : " messages") })
      ])]));
    });
  }

  function showError(e) {
    var box = view.querySelector(".error");
    if (box) box.textContent = e.message;
  }

  // ---- one conversation --------------------------------------------------
  function showConversation(id) {
    state.inbox = null;
    state.open = { id: id };
    clear(view);
    view.appendChild(el("p", {}, [el("a", { href: "#/inbox", text: "Back to the inbox" })]));
    view.appendChild(el("div", { id: "conversation" }, [el("p", { class: "muted", text: "Loading..." })]));
    reloadConversation();
  }

  function reloadConversation() {
    var open = state.open;
    return api("GET", "/conversations/" + enc(open.id)).then(function (c) {
      if (state.open !== open) return;
      renderConversation(c);
    }).catch(function (e) {
      var box = document.getElementById("conversation");
      if (box && state.open === open) { clear(box); box.appendChild(el("p", { class: "error", role: "alert", text: e.message })); }
    });
  }

  function renderConversation(c) {
    var box = document.getElementById("conversation");
    // Keep what the operator is typing across live reloads.
    var draft = document.getElementById("send-text"), link = document.getElementById("send-url");
    var kept = { text: draft ? draft.value : "", url: link ? link.value : "", focus: document.activeElement && document.activeElement.id };
    clear(box);
    var now = Date.now();
    var windows = el("div", { class: "card" }, [el("h2", { text: "Windows" })]);
    if (c.window_expires_at) {
      var closes = new Date(c.window_expires_at).getTime();
      windows.appendChild(el("p", { id: "window-24h", text: "24-hour window: " + left(closes - now) }));
      windows.appendChild(el("p", { id: "window-7d", text: "Human window (7 days): " + left(closes + 6 * 86400000 - now) }));
    } else {
      windows.appendChild(el("p", { text: "The customer has not written yet: no window is open." }));
    }
    var human = c.mode === "human";
    var status = human
      ? "A person has this conversation" + (c.taken_over_by ? " (" + c.taken_over_by + ")" : "") + (c.auto_resume_at ? "; the AI answers again at " + when(c.auto_resume_at) : "") + "."
      : "The AI answers this conversation.";
    var control = el("div", { class: "card" }, [el("h2", { text: "Who answers" }), el("p", { id: "mode", text: status })]);
    var actionError = errorBox();
    actionError.id = "action-error";
    if (human) {
      control.appendChild(el("button", { type: "button", id: "resume", text: "Resume", onclick: function (e) { act(e.target, "/resume", {}); } }));
    } else {
      control.appendChild(label("resume-after", "AI resumes by itself after"));
      control.appendChild(select("resume-after", [["", "the integration's default"], ["30", "30 minutes"], ["60", "1 hour"], ["240", "4 hours"], ["1440", "1 day"], ["10080", "7 days"]], "", null));
      control.appendChild(el("button", { type: "button", id: "takeover", text: "Take over", onclick: function (e) {
        var m = document.getElementById("resume-after").value;
        act(e.target, "/takeover", m ? { auto_resume_minutes: Number(m), by: "console" } : { by: "console" });
      } }));
    }
    var send = el("form", { id: "send", "aria-label": "Send as a person" }, [
      el("h2", { text: "Send as a person" }),
      label("send-text", "Message"), el("textarea", { id: "send-text" }),
      label("send-url", "File link (optional, https://...)"), el("input", { id: "send-url", type: "url", inputmode: "url" }),
      label("send-type", "File type"), select("send-type", [["image", "Image"], ["video", "Video"], ["audio", "Audio"], ["file", "Document"]], "image", null),
      el("button", { type: "submit", text: "Send" })
    ]);
    send.addEventListener("submit", function (e) {
      e.preventDefault();
      var text = document.getElementById("send-text").value.trim(), url = document.getElementById("send-url").value.trim();
      var body = {};
      if (text) body.text = text;
      if (url) body.attachment = { type: document.getElementById("send-type").value, url: url };
      if (!text && !url) { actionError.textContent = "Write a message or give a file link."; return; }
      act(send.querySelector("button"), "/messages", body, function () {
        document.getElementById("send-text").value = "";
        document.getElementById("send-url").value = "";
      });
    });
    var log = el("ol", { class: "log", id: "messages", "aria-label": "Messages" });
    (c.messages || []).forEach(function (m) {
      var meta = authorOf(m) + " · " + when(m.time) + " · " + m.status + (m.error ? " · " + m.error : "");
      var item = el("li", { class: "msg " + m.direction + (m.author ? " " + m.author : ""), "data-status": m.status, "data-author": m.direction === "in" ? "customer" : (m.author || "ai") }, [
        el("div", { class: "text", text: m.text || "" })
      ]);
      (m.attachments || []).forEach(function (a) {
        var href = safeUrl(a.url);
        var name = a.caption || a.type || "attachment";
        if (href) item.appendChild(el("div", {}, [el("a", { href: href, target: "_blank", rel: "noopener noreferrer", text: "Attachment: " + name })]));
        // Files kept by the engine (email attachments) come through the API.
        else if (a.id && c.channel === "gmail") item.appendChild(el("div", {}, [el("button", { type: "button", class: "link", text: "Download " + name, onclick: function () { download(c.id, a.id, name); } })]));
        else item.appendChild(el("div", { class: "muted", text: "Attachment: " + name }));
      });
      item.appendChild(el("div", { class: "meta", text: meta }));
      log.appendChild(item);
    });
    box.appendChild(el("h1", { text: (c.customer_name || c.customer) }));
    box.appendChild(el("p", { class: "muted" }, [el("span", { class: "badge", text: c.channel }), c.integration + " · " + c.message_count + (c.message_count === 1 ? " message" : " messages")]));
    box.appendChild(el("div", { class: "grid2" }, [
      el("section", { "aria-label": "Messages" }, [log]),
      el("div", {}, [windows, control, send, actionError])
    ]));
    document.getElementById("send-text").value = kept.text;
    document.getElementById("send-url").value = kept.url;
    if (kept.focus && document.getElementById(kept.focus)) document.getElementById(kept.focus).focus();
  }

  function act(button, suffix, body, done) {
    var open = state.open, box = document.getElementById("action-error");
    button.disabled = true;
    box.textContent = "";
    return api("POST", "/conversations/" + enc(open.id) + suffix, body).then(function () {
      if (done) done();
      return reloadConversation();
    }).catch(function (e) {
      var why = { 409: "Not possible now: ", 422: "Not accepted: ", 502: "The platform refused it: " }[e.status] || "";
      box.textContent = why + e.message;
      button.disabled = false;
    });
  }

  function download(id, att, name) {
    fetch("/api/v1/conversations/" + enc(id) + "/attachments/" + enc(att), { headers: { Authorization: "Bearer " + key() } })
      .then(function (r) { if (!r.ok) throw new Error("download failed: " + r.status); return r.blob(); })
      .then(function (b) {
        var a = el("a", { href: URL.createObjectURL(b), download: name });
        document.body.appendChild(a); a.click(); a.remove();
      }).catch(function (e) { var box = document.getElementById("action-error"); if (box) box.textContent = e.message; });
  }

  // ---- analytics ---------------------------------------------------------
  function showAnalytics() {
    state.inbox = null;
    clear(view);
    var load = function () {
      var days = document.getElementById("a-days").value, integ = document.getElementById("a-integration").value;
      var q = "/analytics?days=" + enc(days) + (integ ? "&integration=" + enc(integ) : "");
      api("GET", q).then(renderAnalytics).catch(showError);
    };
    view.appendChild(el("h1", { text: "Analytics" }));
    view.appendChild(el("div", { class: "filters" }, [
      el("div", {}, [label("a-days", "Period"), select("a-days", [["7", "7 days"], ["30", "30 days"], ["90", "90 days"]], "7", load)]),
      el("div", {}, [label("a-integration", "Integration"), select("a-integration", integrationOptions("All integrations"), "", load)])
    ]));
    view.appendChild(el("div", { id: "analytics" }));
    view.appendChild(errorBox());
    load();
  }

  function renderAnalytics(a) {
    var box = document.getElementById("analytics");
    if (!box) return;
    clear(box);
    var stat = function (name, value, id) { return el("div", { class: "stat" }, [el("div", { class: "muted", text: name }), el("div", { class: "n", id: id, text: String(value) })]); };
    box.appendChild(el("div", { class: "stats" }, [
      stat("Inbound", a.inbound, "s-inbound"), stat("Outbound", a.outbound, "s-outbound"),
      stat("Delivery rate", pct(a.delivery_rate || 0), "s-delivery"), stat("Read rate", pct(a.read_rate || 0), "s-read"),
      stat("Active conversations", a.conversations_active, "s-active"), stat("Takeovers now", a.takeovers_active, "s-takeovers")
    ]));
    box.appendChild(el("h2", { text: "Messages per day" }));
    box.appendChild(chart(a.daily || []));
    var table = el("table", { class: "sr" }, [el("caption", { text: "Messages per day" }),
      el("tr", {}, [el("th", { text: "Day" }), el("th", { text: "Inbound" }), el("th", { text: "Outbound" })])]);
    (a.daily || []).forEach(function (d) { table.appendChild(el("tr", {}, [el("td", { text: d.date }), el("td", { text: String(d.inbound) }), el("td", { text: String(d.outbound) })])); });
    box.appendChild(table);
  }

  function chart(daily) {
    var ns = "http://www.w3.org/2000/svg", W = 700, H = 200, pad = 24;
    var max = Math.max(1, Math.max.apply(null, daily.map(function (d) { return Math.max(d.inbound, d.outbound); })));
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 " + W + " " + (H + pad));
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", "Inbound and outbound messages per day, the busiest day " + max);
    var slot = (W - pad) / Math.max(1, daily.length), bw = Math.max(1, slot * 0.38);
    daily.forEach(function (d, i) {
      [["inbound", "bar-in", 0], ["outbound", "bar-out", 1]].forEach(function (k) {
        var v = d[k[0]], h = Math.round((v / max) * (H - 10));
        var r = document.createElementNS(ns, "rect");
        r.setAttribute("x", String(pad + i * slot + k[2] * bw));
        r.setAttribute("y", String(H - h));
        r.setAttribute("width", String(bw));
        r.setAttribute("height", String(h));
        r.setAttribute("class", k[1]);
        r.setAttribute("data-date", d.date);
        r.setAttribute("data-" + k[0], String(v));
        var t = document.createElementNS(ns, "title");
        t.textContent = d.date + ": " + v + " " + k[0];
        r.appendChild(t);
        svg.appendChild(r);
      });
      if (daily.length <= 31 && (daily.length <= 10 || i % 5 === 0)) {
        var tx = document.createElementNS(ns, "text");
        tx.setAttribute("x", String(pad + i * slot));
        tx.setAttribute("y", String(H + 16));
        tx.setAttribute("font-size", "11");
        tx.textContent = d.date.slice(5);
        svg.appendChild(tx);
      }
    });
    return el("div", { class: "chart" }, [svg, el("p", { class: "legend" }, [el("span", { class: "li", text: "Inbound" }), el("span", { class: "lo", text: "Outbound" })])]);
  }

  // ---- integrations ------------------------------------------------------
  function showIntegrations() {
    state.inbox = null;
    clear(view);
    view.appendChild(el("h1", { text: "Integrations" }));
    var table = el("table", { class: "wide" }, [el("thead", {}, [el("tr", {}, ["Integration", "Channel", "Tenant", "Token", ""].map(function (h) { return el("th", { text: h }); }))])]);
    var body = el("tbody");
    table.appendChild(body);
    view.appendChild(table);
    view.appendChild(errorBox());
    api("GET", "/integrations").then(function (d) {
      state.integrations = d.integrations || [];
      state.integrations.forEach(function (i) {
        var health = i.token_health || {}, st = i.token || health.status || "ok";
        var why = health.reason ? " (" + health.reason + ")" : "";
        var expires = health.expires_at_ms ? "; expires " + new Date(health.expires_at_ms).toLocaleString() : "";
        var cell = el("td");
        if (["messenger", "instagram", "whatsapp"].indexOf(i.channel) >= 0) {
          cell.appendChild(el("button", { type: "button", class: "secondary", text: "Reconnect " + i.id, onclick: function (e) { reconnect(e.target, i, cell); } }));
        }
        body.appendChild(el("tr", { "data-id": i.id }, [
          el("td", { text: i.id }), el("td", { text: i.channel }), el("td", { text: i.tenant }),
          el("td", {}, [el("span", { class: "badge " + st, text: st }), el("span", { class: "muted", text: why + expires })]),
          cell
        ]));
      });
    }).catch(showError);
  }

  function reconnect(button, i, cell) {
    button.disabled = true;
    api("POST", "/tenants/" + enc(i.tenant) + "/connect", { assistant: i.assistant, channels: [i.channel] }).then(function (d) {
      var href = safeUrl(d.url);
      cell.appendChild(el("p", {}, [href ? el("a", { href: href, target: "_blank", rel: "noopener noreferrer", text: "Open the connect link (valid " + Math.round(d.expires_in_seconds / 60) + " min)" }) : "No link was given."]));
    }).catch(function (e) {
      cell.appendChild(el("p", { class: "error", role: "alert", text: e.message }));
      button.disabled = false;
    });
  }

  // ---- start -------------------------------------------------------------
  if (key()) signedIn().catch(function (e) { signOut(e.status === 401 ? "" : "Cannot reach the engine: " + e.message); });
  else signOut("");
})();
