// anosys ui: the viewer's page. Plain DOM, no framework, no build step.
//
// Captured content is hostile input. Every captured string reaches the page
// through text nodes (textContent / createTextNode); this file never assigns
// innerHTML, outerHTML or insertAdjacentHTML, never calls document.write or
// eval, and sets link targets only after checking their scheme. Markdown is
// rendered by building elements, never by parsing HTML.
"use strict";

(function () {
  const app = document.getElementById("app");
  const statusLine = document.getElementById("status");
  const liveBox = document.getElementById("live");

  // ---- DOM helpers -------------------------------------------------------

  // el("div", {class: "x"}, "text", child, ...): strings become text nodes.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "href") node.href = safeHref(value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "title" || key === "type" || key === "placeholder" || key === "value" || key.startsWith("data-") || key === "tabindex" || key === "for" || key === "id" || key === "colspan" || key === "list") node.setAttribute(key, String(value));
      else throw new Error("attribute not allowed: " + key);
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.appendChild(typeof child === "string" || typeof child === "number" ? document.createTextNode(String(child)) : child);
    }
    return node;
  }

  // Only in-page routes and http(s) URLs become links.
  function safeHref(url) {
    const text = String(url);
    if (text.startsWith("#/")) return text;
    try {
      const parsed = new URL(text, location.href);
      if (parsed.protocol === "http:" || parsed.protocol === "https:") return parsed.href;
    } catch (_) { /* not a URL */ }
    return "#/";
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  // ---- formatting --------------------------------------------------------

  const fmt = {
    time(ms) {
      const d = new Date(ms);
      const pad = (n, w = 2) => String(n).padStart(w, "0");
      return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
    },
    ms(v) {
      if (v === null || v === undefined) return "";
      if (v >= 10000) return (v / 1000).toFixed(1) + " s";
      if (v >= 1000) return (v / 1000).toFixed(2) + " s";
      return (v >= 10 ? v.toFixed(0) : v.toFixed(1)) + " ms";
    },
    usd(v) {
      if (v === null || v === undefined) return "";
      if (v === 0) return "$0";
      if (v < 0.0001) return "$" + v.toExponential(1);
      if (v < 1) return "$" + v.toFixed(v < 0.01 ? 5 : 4);
      return "$" + v.toFixed(2);
    },
    n(v) {
      return v === null || v === undefined ? "" : Number(v).toLocaleString("en-US");
    },
    json(v) {
      return JSON.stringify(v, null, 2);
    },
  };

  function kindLabel(kind) {
    return { llm_call: "LLM", function_call: "function", raw: "raw", span: "span" }[kind] || kind;
  }

  // ---- API ---------------------------------------------------------------

  async function api(path, params) {
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) {
      if (v !== undefined && v !== null && v !== "") query.set(k, v);
    }
    const qs = query.toString();
    const response = await fetch("api/" + path + (qs ? "?" + qs : ""), { credentials: "same-origin" });
    const body = await response.json().catch(() => ({ error: response.statusText }));
    if (!response.ok) throw new Error(body.error || response.statusText);
    return body;
  }

  function showError(error) {
    return el("div", { class: "error-box" }, String(error && error.message ? error.message : error));
  }

  function copyButton(label, getText) {
    return el("button", {
      class: "small",
      title: "Copy to the clipboard",
      onclick: async (event) => {
        const button = event.currentTarget;
        try {
          await navigator.clipboard.writeText(getText());
          button.textContent = "Copied";
        } catch (_) {
          button.textContent = "Copy failed";
        }
        setTimeout(() => { button.textContent = label; }, 1200);
      },
    }, label);
  }

  // ---- markdown, by building elements ------------------------------------

  function inline(text) {
    // Code spans, bold, italics and http(s) links; the rest stays text.
    const out = [];
    const pattern = /(`[^`\n]+`)|(\*\*[^*\n]+\*\*)|(\*[^*\n]+\*)|(\[[^\]\n]+\]\((https?:\/\/[^)\s]+)\))/g;
    let last = 0;
    let match;
    while ((match = pattern.exec(text)) !== null) {
      if (match.index > last) out.push(text.slice(last, match.index));
      const token = match[0];
      if (match[1]) out.push(el("code", {}, token.slice(1, -1)));
      else if (match[2]) out.push(el("strong", {}, token.slice(2, -2)));
      else if (match[3]) out.push(el("em", {}, token.slice(1, -1)));
      else {
        const label = token.slice(1, token.indexOf("]("));
        const a = el("a", { href: match[5] }, label);
        a.rel = "noopener noreferrer nofollow";
        a.target = "_blank";
        out.push(a);
      }
      last = match.index + token.length;
    }
    if (last < text.length) out.push(text.slice(last));
    return out;
  }

  function markdown(text) {
    const root = el("div", { class: "md" });
    const lines = String(text).split("\n");
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      if (line.startsWith("```")) {
        const code = [];
        i++;
        while (i < lines.length && !lines[i].startsWith("```")) code.push(lines[i++]);
        i++;
        root.appendChild(el("pre", {}, el("code", {}, code.join("\n"))));
        continue;
      }
      const heading = /^(#{1,6})\s+(.*)$/.exec(line);
      if (heading) {
        root.appendChild(el("h" + Math.min(6, heading[1].length + 2), {}, inline(heading[2])));
        i++;
        continue;
      }
      if (/^\s*([-*]|\d+\.)\s+/.test(line)) {
        const ordered = /^\s*\d+\./.test(line);
        const list = el(ordered ? "ol" : "ul");
        while (i < lines.length && /^\s*([-*]|\d+\.)\s+/.test(lines[i])) {
          list.appendChild(el("li", {}, inline(lines[i].replace(/^\s*([-*]|\d+\.)\s+/, ""))));
          i++;
        }
        root.appendChild(list);
        continue;
      }
      if (line.trim() === "") { i++; continue; }
      const para = [];
      while (i < lines.length && lines[i].trim() !== "" && !lines[i].startsWith("```") && !/^#{1,6}\s/.test(lines[i]) && !/^\s*([-*]|\d+\.)\s+/.test(lines[i])) {
        para.push(lines[i++]);
      }
      const p = el("p");
      para.forEach((l, n) => {
        if (n > 0) p.appendChild(el("br"));
        append(p, inline(l));
      });
      root.appendChild(p);
    }
    return root;
  }

  // ---- the conversation of an LLM call -----------------------------------

  function asText(value) {
    return typeof value === "string" ? value : fmt.json(value);
  }

  function prettyArguments(args) {
    if (typeof args === "string") {
      try { return fmt.json(JSON.parse(args)); } catch (_) { return args; }
    }
    return fmt.json(args);
  }

  function renderPart(part) {
    if (!part || typeof part !== "object") return el("div", { class: "part" }, asText(part));
    switch (part.type) {
      case "text":
      case "reasoning":
        return el("div", { class: "part " + part.type }, part.type === "reasoning" ? el("div", { class: "label" }, "reasoning") : null, markdown(part.content ?? ""));
      case "tool_call":
        return el("div", { class: "part tool-call" },
          el("div", { class: "label" }, "tool call ", el("strong", {}, String(part.name ?? "")), part.id ? el("span", { class: "muted" }, " " + part.id) : null),
          el("pre", { class: "json" }, prettyArguments(part.arguments)));
      case "tool_call_response":
        return el("div", { class: "part tool-result" },
          el("div", { class: "label" }, "tool result", part.id ? el("span", { class: "muted" }, " " + part.id) : null),
          el("pre", {}, asText(part.response ?? part.result ?? "")));
      default:
        return el("div", { class: "part" }, el("div", { class: "label" }, String(part.type ?? "part")), el("pre", {}, fmt.json(part)));
    }
  }

  // What a message's copy button copies: its text, a tool call's
  // arguments, a tool's result.
  function partText(part) {
    if (!part || typeof part !== "object") return asText(part);
    if (part.type === "tool_call") return prettyArguments(part.arguments);
    if (part.type === "tool_call_response") return asText(part.response ?? part.result ?? "");
    return part.content !== undefined ? asText(part.content) : fmt.json(part);
  }

  function renderMessage(message) {
    const role = String(message.role ?? "message");
    const parts = Array.isArray(message.parts) ? message.parts : [{ type: "text", content: asText(message.content ?? message) }];
    return el("div", { class: "msg role-" + role.replace(/[^a-z_]/gi, "") },
      el("div", { class: "role" }, el("span", { class: "who" }, role, message.finish_reason ? el("span", { class: "muted" }, " · " + message.finish_reason) : null),
        copyButton("Copy", () => parts.map(partText).join("\n\n"))),
      parts.map(renderPart));
  }

  function conversation(record) {
    const a = record.attributes || {};
    const box = el("div", { class: "chat" });
    const system = a["gen_ai.system_instructions"];
    if (Array.isArray(system) && system.length) box.appendChild(renderMessage({ role: "system", parts: system }));
    const input = a["gen_ai.input.messages"];
    const output = a["gen_ai.output.messages"];
    if (Array.isArray(input)) input.forEach((m) => box.appendChild(renderMessage(m)));
    else if (record.input !== undefined) box.appendChild(el("div", { class: "msg" }, el("div", { class: "role" }, "input"), el("pre", {}, asText(record.input))));
    if (Array.isArray(output)) output.forEach((m) => box.appendChild(renderMessage(m)));
    else if (record.output !== undefined) box.appendChild(el("div", { class: "msg" }, el("div", { class: "role" }, "output"), el("pre", {}, asText(record.output))));
    return box.childNodes.length ? box : null;
  }

  // ---- record detail -----------------------------------------------------

  function keyValues(entries) {
    const table = el("table", { class: "kv" });
    for (const [k, v] of entries) {
      table.appendChild(el("tr", {}, el("th", {}, k), el("td", {}, typeof v === "object" && v !== null ? el("pre", {}, fmt.json(v)) : String(v))));
    }
    return table;
  }

  function section(title, ...content) {
    const body = content.filter(Boolean);
    if (!body.length) return null;
    return el("section", {}, el("h3", {}, title), body);
  }

  // An error with its chain, outermost first: the "caused by: …" lines a
  // Rust error's sources become, or the tracebacks Python chains ("The
  // above exception was the direct cause…"); the rest of the text (a
  // backtrace, the traceback) below, folded.
  function errorBox(error) {
    const lines = typeof error.stack === "string" ? error.stack.split("\n") : [];
    const chain = lines.filter((l) => l.startsWith("caused by: ")).map((l) => ["caused by", l.slice("caused by: ".length)]);
    const rest = lines.filter((l) => !l.startsWith("caused by: ")).join("\n").trim();
    const pieces = rest.split(/\n\s*(The above exception was the direct cause of the following exception:|During handling of the above exception, another exception occurred:)\s*\n/);
    // [traceback, separator, traceback, …]: each separator ties the
    // traceback before it (the cause) to the one after it.
    for (let k = pieces.length - 2; k > 0; k -= 2) {
      const cause = pieces[k - 1].trim().split("\n").filter((l) => l.trim()).pop();
      if (cause) chain.push([pieces[k].startsWith("The above") ? "caused by" : "while handling", cause.trim()]);
    }
    return el("div", { class: "error-box" },
      el("div", { class: "error-head" }, el("strong", {}, String(error.type || "error")), ": ", String(error.message || "")),
      chain.length ? el("ol", { class: "chain" }, chain.map(([how, what]) => el("li", {}, el("span", { class: "muted" }, how + " "), what))) : null,
      rest ? el("details", {}, el("summary", {}, "stack"), el("pre", {}, rest)) : null);
  }

  function recordDetail(id, stored) {
    const r = stored.record;
    const a = r.attributes || {};
    const pick = (prefix) => Object.entries(a).filter(([k]) => k.startsWith(prefix));
    let rawShown = false;
    const rawBox = el("pre", { class: "json raw hidden" }, fmt.json(r));
    const header = el("div", { class: "detail-head" },
      el("h2", {}, r.name || "(unnamed)"),
      el("div", { class: "chips" },
        el("span", { class: "chip" }, kindLabel(r.kind)),
        a["gen_ai.request.model"] || a["gen_ai.response.model"] ? el("span", { class: "chip" }, String(a["gen_ai.response.model"] || a["gen_ai.request.model"])) : null,
        r.source ? el("span", { class: "chip" }, "source " + r.source) : null,
        el("span", { class: "chip status-" + (r.status?.code || "UNSET") }, r.status?.code || "UNSET"),
        a["gen_ai.usage.cost"] !== undefined ? el("span", { class: "chip" }, fmt.usd(a["gen_ai.usage.cost"])) : null),
      el("div", { class: "actions" },
        el("a", { href: "#/trace/" + r.trace_id, class: "button small" }, "Trace"),
        el("button", { class: "small", onclick: () => { rawShown = !rawShown; rawBox.classList.toggle("hidden", !rawShown); } }, "Raw JSON"),
        copyButton("Copy JSON", () => fmt.json(r)),
        el("a", { href: "#/", class: "button small" }, "Back (Esc)")));
    const started = Date.parse(r.start_time);
    const ended = Date.parse(r.end_time);
    const timing = [["start", fmt.time(started)], ["duration", fmt.ms(ended - started)], ["trace", r.trace_id], ["span", r.span_id]];
    if (r.parent_span_id) timing.push(["parent", r.parent_span_id]);
    if (a["anosys.time_to_first_chunk_ms"] !== undefined) timing.push(["first chunk", fmt.ms(a["anosys.time_to_first_chunk_ms"])]);
    const error = r.error ? errorBox(r.error) : null;
    const caller = r.caller ? keyValues([["function", r.caller.function || ""], ["file", r.caller.file + ":" + r.caller.line]]) : null;
    const events = Array.isArray(r.events) && r.events.length ? el("pre", {}, fmt.json(r.events)) : null;
    return el("div", { class: "detail", "data-record": String(id) },
      header, rawBox,
      section("Timing", keyValues(timing)),
      section("Error", error),
      section("Conversation", r.kind === "llm_call" ? conversation(r) : null),
      r.kind !== "llm_call" ? section("Input", r.input !== undefined ? el("pre", {}, asText(r.input)) : null) : null,
      r.kind !== "llm_call" ? section("Output", r.output !== undefined ? el("pre", {}, asText(r.output)) : null) : null,
      section("Request", pick("gen_ai.request.").length ? keyValues(pick("gen_ai.request.")) : null),
      section("Usage and cost", pick("gen_ai.usage.").concat(pick("anosys.cost.")).length ? keyValues(pick("gen_ai.usage.").concat(pick("anosys.cost."))) : null),
      section("Caller", caller),
      section("User", r.user_context !== undefined ? el("pre", {}, fmt.json(r.user_context)) : null),
      section("Attributes", Object.keys(a).length ? keyValues(Object.entries(a)) : null),
      section("Events", events),
      section("Raw", r.raw !== undefined ? el("pre", { class: "json" }, fmt.json(r.raw)) : null));
  }

  async function showRecord(id) {
    clear(app).appendChild(el("p", { class: "muted" }, "Loading…"));
    try {
      const stored = await api("records/" + encodeURIComponent(id));
      clear(app).appendChild(recordDetail(id, stored));
    } catch (e) {
      clear(app).appendChild(showError(e));
    }
  }

  // ---- records list ------------------------------------------------------

  const state = {
    filters: { since: "", until: "", model: "", source: "", kind: "", status: "", trace: "", user: "", session: "", q: "" },
    rows: [],
    cursor: null,
    selected: 0,
    lastId: 0,
    stream: null,
    dashboard: { since: "24h", until: "" },
  };

  // A time range: presets, or from and to (local time) as ms since the
  // epoch in f.since / f.until.
  function timeRange(f, changed) {
    const presets = [["", "all time"], ["15m", "last 15 min"], ["1h", "last hour"], ["24h", "last 24 h"], ["7d", "last 7 days"], ["custom", "custom range…"]];
    const custom = /^\d+$/.test(f.since) || /^\d+$/.test(f.until);
    const choice = el("select", { "data-filter": "since" }, presets.map(([value, label]) => el("option", { value }, label)));
    choice.value = custom ? "custom" : f.since;
    const local = (ms) => {
      if (!/^\d+$/.test(ms)) return "";
      const d = new Date(Number(ms));
      return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
    };
    const from = el("input", { type: "datetime-local", "data-filter": "from", title: "from (local time)", value: local(f.since) });
    const to = el("input", { type: "datetime-local", "data-filter": "until", title: "until (local time)", value: local(f.until) });
    const box = el("span", { class: "custom-range" + (custom ? "" : " hidden") }, from, " – ", to);
    const fromInputs = () => {
      const ms = (input) => (input.value ? String(new Date(input.value).getTime()) : "");
      f.since = ms(from);
      f.until = ms(to);
      changed();
    };
    from.addEventListener("change", fromInputs);
    to.addEventListener("change", fromInputs);
    choice.addEventListener("change", () => {
      box.classList.toggle("hidden", choice.value !== "custom");
      if (choice.value === "custom") {
        if (!from.value) from.value = local(String(Date.now() - 3600000));
        fromInputs();
      } else {
        f.since = choice.value;
        f.until = "";
        changed();
      }
    });
    return el("span", { class: "range" }, choice, box);
  }

  function filterBar(facets, reload) {
    const f = state.filters;
    const select = (name, options) => {
      const s = el("select", { "data-filter": name, onchange: () => { f[name] = s.value; reload(); } },
        options.map(([value, label]) => {
          const o = el("option", { value }, label);
          if (value === f[name]) o.selected = true;
          return o;
        }));
      return s;
    };
    // A free-text filter (Enter applies it), suggesting what occurs.
    const text = (name, placeholder, suggestions) => {
      const list = suggestions && suggestions.length ? el("datalist", { id: "suggest-" + name }, suggestions.map((v) => el("option", { value: v }))) : null;
      const input = el("input", { type: "search", class: "narrow", "data-filter": name, placeholder, value: f[name], list: list ? "suggest-" + name : null });
      const apply = () => { if (f[name] !== input.value.trim()) { f[name] = input.value.trim(); reload(); } };
      input.addEventListener("change", apply);
      input.addEventListener("keydown", (e) => { if (e.key === "Enter") { apply(); input.blur(); } if (e.key === "Escape") input.blur(); });
      return el("span", {}, input, list);
    };
    const search = el("input", { type: "search", id: "search", placeholder: "Search prompts, replies, tool arguments, errors (/)", value: f.q });
    search.addEventListener("keydown", (e) => {
      if (e.key === "Enter") { f.q = search.value; reload(); search.blur(); }
      if (e.key === "Escape") search.blur();
    });
    return el("div", { class: "filters" },
      timeRange(f, reload),
      select("kind", [["", "every kind"], ["llm_call", "LLM calls"], ["function_call", "functions"], ["raw", "raw"], ["span", "spans"]]),
      select("status", [["", "any status"], ["ok", "OK"], ["error", "errors"], ["unset", "unset"]]),
      select("model", [["", "every model"]].concat(facets.models.map((m) => [m, m]))),
      select("source", [["", "every source"]].concat(facets.sources.map((s) => [s, s]))),
      text("user", "user", facets.users),
      text("session", "session", facets.sessions),
      text("trace", "trace id"),
      search);
  }

  function row(summary) {
    const tr = el("tr", { "data-id": String(summary.id), tabindex: "-1", onclick: () => { state.selected = Math.max(0, state.rows.indexOf(summary)); location.hash = "#/record/" + summary.id; } },
      el("td", { class: "time" }, fmt.time(summary.start_ms)),
      el("td", {}, kindLabel(summary.kind)),
      el("td", { class: "name" }, summary.name),
      el("td", {}, summary.model || summary.source || ""),
      el("td", { class: "num" }, fmt.n(summary.input_tokens)),
      el("td", { class: "num" }, fmt.n(summary.output_tokens)),
      el("td", { class: "num" }, fmt.usd(summary.cost_usd)),
      el("td", { class: "num" }, fmt.ms(summary.duration_ms)),
      el("td", { class: "num" }, fmt.ms(summary.time_to_first_chunk_ms)),
      el("td", { class: "status-" + summary.status }, summary.status),
      el("td", {}, el("a", { href: "#/trace/" + summary.trace_id, class: "trace-link", title: summary.trace_id, onclick: (e) => e.stopPropagation() }, summary.trace_id.slice(0, 8))));
    return tr;
  }

  function highlight(tbody) {
    const rows = tbody.querySelectorAll("tr");
    rows.forEach((r, i) => r.classList.toggle("selected", i === state.selected));
    const current = rows[state.selected];
    if (current) current.scrollIntoView({ block: "nearest" });
  }

  function matchesFilters(summary) {
    const f = state.filters;
    if (f.kind && summary.kind !== f.kind) return false;
    if (f.status && summary.status !== f.status.toUpperCase()) return false;
    if (f.model && summary.model !== f.model) return false;
    if (f.source && summary.source !== f.source) return false;
    if (f.trace && !summary.trace_id.startsWith(f.trace.toLowerCase())) return false;
    // What the summary does not tell: a later reload shows it.
    return !f.q && !f.since && !f.until && !f.user && !f.session;
  }

  async function showRecords() {
    clear(app);
    let facets = { models: [], sources: [], users: [], sessions: [] };
    try { facets = await api("facets"); } catch (_) { /* shown by the list */ }
    const tbody = el("tbody");
    const more = el("button", { class: "more hidden", onclick: () => load(false) }, "Load more");
    const summaryLine = el("p", { class: "muted" });
    const table = el("table", { class: "records" },
      el("thead", {}, el("tr", {}, ["time", "kind", "name", "model / source", "in", "out", "cost", "duration", "first chunk", "status", "trace"].map((h) => el("th", {}, h)))),
      tbody);
    const reload = () => load(true);
    app.appendChild(filterBar(facets, reload));
    app.appendChild(summaryLine);
    app.appendChild(table);
    app.appendChild(more);

    // Only the newest load shows its answer (filters changed while an
    // older one was on its way).
    let loads = 0;
    async function load(fresh) {
      const mine = ++loads;
      if (fresh) { state.rows = []; state.cursor = null; state.selected = 0; clear(tbody); }
      try {
        const page = await api("records", { ...state.filters, limit: 100, cursor: fresh ? "" : state.cursor });
        if (mine !== loads) return;
        page.records.forEach((s) => { tbody.appendChild(row(s)); state.rows.push(s); });
        state.cursor = page.next_cursor;
        more.classList.toggle("hidden", !state.cursor);
        summaryLine.textContent = state.rows.length ? `${state.rows.length} records shown` : "No records match.";
        highlight(tbody);
      } catch (e) {
        if (mine !== loads) return;
        summaryLine.textContent = "";
        clear(tbody).appendChild(el("tr", {}, el("td", { colspan: "11" }, showError(e))));
      }
    }
    state.onLive = (summary) => {
      if (!matchesFilters(summary)) return;
      state.rows.unshift(summary);
      tbody.insertBefore(row(summary), tbody.firstChild);
      state.selected += 1;
      highlight(tbody);
      summaryLine.textContent = `${state.rows.length} records shown`;
    };
    state.tbody = tbody;
    await load(true);
  }

  // ---- trace -------------------------------------------------------------

  function showTraceTree(data, filterText) {
    const spans = data.records;
    const byId = new Map(spans.map((s) => [s.span_id, s]));
    const children = new Map();
    const roots = [];
    for (const s of spans) {
      if (s.parent_span_id && byId.has(s.parent_span_id)) {
        if (!children.has(s.parent_span_id)) children.set(s.parent_span_id, []);
        children.get(s.parent_span_id).push(s);
      } else roots.push(s);
    }
    const t0 = Math.min(...spans.map((s) => s.start_ms));
    const t1 = Math.max(...spans.map((s) => s.start_ms + s.duration_ms));
    const span = Math.max(1, t1 - t0);
    const list = el("div", { class: "tree" });
    const needle = (filterText || "").toLowerCase();
    const visit = (s, depth) => {
      const hit = !needle || (s.name + " " + (s.model || "") + " " + (s.source || "")).toLowerCase().includes(needle);
      const bar = el("div", { class: "bar status-" + s.status });
      bar.style.left = ((s.start_ms - t0) / span * 100).toFixed(3) + "%";
      bar.style.width = Math.max(0.3, s.duration_ms / span * 100).toFixed(3) + "%";
      const label = el("div", { class: "label" }, el("a", { href: "#/record/" + s.id }, s.name), " ", el("span", { class: "muted" }, [kindLabel(s.kind), s.model, fmt.ms(s.duration_ms)].filter(Boolean).join(" · ")));
      label.style.paddingLeft = (depth * 16) + "px";
      const line = el("div", { class: "span-row" + (hit ? "" : " dim"), "data-span": s.span_id }, label, el("div", { class: "lane" }, bar));
      list.appendChild(line);
      (children.get(s.span_id) || []).forEach((c) => visit(c, depth + 1));
    };
    roots.forEach((r) => visit(r, 0));
    return list;
  }

  async function showTrace(traceId) {
    clear(app).appendChild(el("p", { class: "muted" }, "Loading…"));
    try {
      const data = await api("traces/" + encodeURIComponent(traceId));
      const holder = el("div");
      const find = el("input", { type: "search", placeholder: "Search within the trace", oninput: () => { clear(holder).appendChild(showTraceTree(data, find.value)); } });
      holder.appendChild(showTraceTree(data, ""));
      const total = data.records.reduce((acc, s) => acc + (s.cost_usd || 0), 0);
      clear(app).appendChild(el("div", { class: "trace" },
        el("div", { class: "detail-head" }, el("h2", {}, "Trace " + data.trace_id),
          el("div", { class: "chips" }, el("span", { class: "chip" }, data.records.length + " records"), total ? el("span", { class: "chip" }, fmt.usd(total)) : null, data.truncated ? el("span", { class: "chip" }, "truncated") : null),
          el("div", { class: "actions" }, el("a", { href: "#/", class: "button small" }, "Back (Esc)"))),
        find, holder));
    } catch (e) {
      clear(app).appendChild(showError(e));
    }
  }

  // ---- dashboard ---------------------------------------------------------

  function chart(title, series, xs, ys, format) {
    const box = el("div", { class: "chart" }, el("h3", {}, title));
    const holder = el("div");
    box.appendChild(holder);
    const opts = {
      width: 520,
      height: 200,
      series: [{}].concat(series.map((s) => ({ label: s.label, stroke: s.color, width: 2, spanGaps: true, points: { show: true, size: 4 }, value: (u, v) => (v === null || v === undefined ? "" : format(v)) }))),
      axes: [{}, { values: (u, vals) => vals.map(format), size: 70 }],
      scales: { x: { time: true } },
    };
    // eslint-disable-next-line no-undef
    if (typeof uPlot === "function") box.plot = new uPlot(opts, [xs].concat(ys), holder);
    return box;
  }

  async function showDashboard() {
    clear(app);
    const f = state.dashboard;
    const body = el("div", { class: "dashboard" });
    app.appendChild(el("div", { class: "filters" }, timeRange(f, () => draw())));
    app.appendChild(body);
    let draws = 0;
    async function draw() {
      const mine = ++draws;
      clear(body).appendChild(el("p", { class: "muted" }, "Loading…"));
      try {
        const data = await api("stats", { since: f.since, until: f.until, buckets: 60 });
        if (mine !== draws) return; // the range changed meanwhile
        clear(body);
        const s = data.series;
        const xs = s.map((b) => b.start_ms / 1000);
        const p = (b, key, q) => (b[key] ? b[key][q] : null);
        body.appendChild(el("div", { class: "charts" },
          chart("Calls and errors", [{ label: "calls", color: "#3b82f6" }, { label: "errors", color: "#dc2626" }], xs, [s.map((b) => b.calls), s.map((b) => b.errors)], (v) => fmt.n(v)),
          chart("Tokens", [{ label: "in", color: "#0d9488" }, { label: "out", color: "#a855f7" }], xs, [s.map((b) => b.input_tokens), s.map((b) => b.output_tokens)], (v) => fmt.n(Math.round(v))),
          chart("Cost (USD)", [{ label: "cost", color: "#ca8a04" }], xs, [s.map((b) => b.cost_usd)], (v) => fmt.usd(v)),
          chart("Latency", [{ label: "p50", color: "#16a34a" }, { label: "p95", color: "#f59e0b" }, { label: "p99", color: "#dc2626" }], xs, ["p50", "p95", "p99"].map((q) => s.map((b) => p(b, "latency_ms", q))), (v) => fmt.ms(v)),
          chart("Time to first chunk", [{ label: "p50", color: "#16a34a" }, { label: "p95", color: "#f59e0b" }, { label: "p99", color: "#dc2626" }], xs, ["p50", "p95", "p99"].map((q) => s.map((b) => p(b, "time_to_first_chunk_ms", q))), (v) => fmt.ms(v))));
        const t = data.totals;
        if (t) {
          const group = (title, rows) => section(title, rows.length ? el("table", { class: "records" },
            el("thead", {}, el("tr", {}, ["", "calls", "errors", "in", "out", "cost", "p50", "p95", "p99"].map((h) => el("th", {}, h)))),
            el("tbody", {}, rows.map((g) => el("tr", {}, el("td", {}, g.key), el("td", { class: "num" }, fmt.n(g.calls)), el("td", { class: "num" }, fmt.n(g.errors)),
              el("td", { class: "num" }, fmt.n(g.input_tokens)), el("td", { class: "num" }, fmt.n(g.output_tokens)), el("td", { class: "num" }, fmt.usd(g.cost_usd)),
              el("td", { class: "num" }, fmt.ms(g.latency_ms?.p50)), el("td", { class: "num" }, fmt.ms(g.latency_ms?.p95)), el("td", { class: "num" }, fmt.ms(g.latency_ms?.p99)))))) : el("p", { class: "muted" }, "None."));
          body.appendChild(el("p", {}, `${fmt.n(t.records)} records, ${fmt.usd(t.cost_usd)} in total.`));
          body.appendChild(group("Per model", t.models));
          body.appendChild(group("Per source", t.sources));
        }
      } catch (e) {
        if (mine !== draws) return;
        clear(body).appendChild(showError(e));
      }
    }
    await draw();
  }

  // ---- live tail ---------------------------------------------------------

  function setLive(on) {
    if (state.stream) { state.stream.close(); state.stream = null; }
    if (!on) { statusLine.textContent = ""; return; }
    const source = new EventSource("api/stream");
    source.addEventListener("record", (event) => {
      let summary;
      try { summary = JSON.parse(event.data); } catch (_) { return; }
      statusLine.textContent = "live · newest " + fmt.time(summary.start_ms);
      if (state.view === "records" && state.onLive) state.onLive(summary);
    });
    source.onerror = () => { statusLine.textContent = "live: reconnecting…"; };
    source.onopen = () => { statusLine.textContent = "live"; };
    state.stream = source;
  }
  liveBox.addEventListener("change", () => setLive(liveBox.checked));

  // ---- routing and keys --------------------------------------------------

  function route() {
    const hash = location.hash || "#/";
    let m;
    document.querySelectorAll("nav a").forEach((a) => a.classList.remove("active"));
    state.onLive = null;
    if ((m = /^#\/record\/([^/]+)$/.exec(hash))) { state.view = "record"; return showRecord(decodeURIComponent(m[1])); }
    if ((m = /^#\/trace\/([0-9a-fA-F]{32})$/.exec(hash))) { state.view = "trace"; return showTrace(m[1]); }
    if (hash === "#/dashboard") {
      state.view = "dashboard";
      document.querySelector('nav a[data-view="dashboard"]').classList.add("active");
      return showDashboard();
    }
    state.view = "records";
    document.querySelector('nav a[data-view="records"]').classList.add("active");
    return showRecords();
  }

  document.addEventListener("keydown", (e) => {
    const typing = e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement || e.target instanceof HTMLTextAreaElement;
    if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "Escape" && state.view !== "records") { location.hash = "#/"; e.preventDefault(); return; }
    if (state.view !== "records" || !state.tbody) return;
    if (e.key === "j" || e.key === "ArrowDown") { state.selected = Math.min(state.rows.length - 1, state.selected + 1); highlight(state.tbody); e.preventDefault(); }
    else if (e.key === "k" || e.key === "ArrowUp") { state.selected = Math.max(0, state.selected - 1); highlight(state.tbody); e.preventDefault(); }
    else if (e.key === "Enter" && state.rows[state.selected]) { location.hash = "#/record/" + state.rows[state.selected].id; e.preventDefault(); }
    else if (e.key === "/") { const s = document.getElementById("search"); if (s) { s.focus(); e.preventDefault(); } }
  });

  window.addEventListener("hashchange", route);
  route();
})();
