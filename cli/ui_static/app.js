// repost ui: everything recorded is hostile input. It reaches the page only through
// textContent and createElement (never innerHTML), and links are built here from ids,
// never taken from a recording. The Content-Security-Policy backs this up.
"use strict";

const PAGE = 50;
const state = {
  rows: [],          // list --json objects, in the order shown
  byId: new Map(),
  current: null,     // the flow id shown in the detail pane
  picked: new Set(), // ticked for compare / export
  filters: new URLSearchParams(),
  loading: false,
  done: false,
  events: null,      // the EventSource for pushed flows
  generation: 0,     // bumps on each new filter: late pages of an old one are dropped
  prefetched: null,  // {generation, cursor, promise}: the page after the last row, asked for ahead
};

const $ = (id) => document.getElementById(id);

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

async function api(path, options) {
  const response = await fetch(path, options);
  let body = null;
  const type = response.headers.get("content-type") || "";
  if (type.startsWith("application/json")) body = await response.json();
  if (!response.ok && !(options && options.allowStatus && options.allowStatus.includes(response.status))) {
    throw new Error((body && body.error) || `${response.status} ${response.statusText}`);
  }
  return { status: response.status, body };
}

async function post(path, document, allowStatus) {
  return api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Repost-UI": "1" },
    body: JSON.stringify(document),
    allowStatus,
  });
}

// -- formatting ----------------------------------------------------------------------

function size(n) {
  if (n === null || n === undefined) return "-";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function duration(ms) {
  if (ms === null || ms === undefined) return "-";
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

function shortTime(iso) {
  return (iso || "").replace("T", " ").replace(/\.\d+Z?$/, "").replace(/Z$/, "");
}

function safetyBadge(safety) {
  return el("span", { class: `badge safety-${safety}`, text: safety });
}

function statusClass(status) {
  return status === null || status === undefined ? "status-err" : `status-${String(status)[0]}`;
}

// -- the list ------------------------------------------------------------------------

function rowFor(flow) {
  const tick = el("input", { type: "checkbox", title: "pick for compare / export" });
  tick.checked = state.picked.has(flow.id);
  tick.addEventListener("click", (e) => { e.stopPropagation(); pick(flow.id, tick.checked); });
  const mark = flow.replay_of ? el("span", { class: "mark", title: `a replay of flow ${flow.replay_of}`, text: ` ↺ ${flow.replay_of}` }) : null;
  const tr = el("tr", { class: "flow", "data-id": flow.id },
    el("td", null, tick),
    el("td", { class: "num", text: flow.id }),
    el("td", { text: shortTime(flow.started_at) }),
    el("td", { text: flow.method }),
    el("td", { class: `num ${statusClass(flow.status)}`, text: flow.status ?? "-", title: flow.error || undefined }),
    el("td", { text: flow.host }),
    el("td", { class: "path", title: flow.url }, flow.path, mark),
    el("td", { class: "num", text: size(flow.response_size) }),
    el("td", { class: "num", text: duration(flow.duration_ms) }),
    el("td", null, safetyBadge(flow.safety)),
    el("td", { text: (flow.tags || []).join(", ") }),
  );
  tr.addEventListener("click", () => openFlow(flow.id));
  return tr;
}

function pick(id, on) {
  if (on) state.picked.add(id); else state.picked.delete(id);
  $("compare-picked").disabled = state.picked.size !== 2;
}

function listQuery(extra) {
  const q = new URLSearchParams(state.filters);
  for (const [k, v] of Object.entries(extra || {})) q.set(k, v);
  return q.toString();
}

function cursorAfter(row) {
  return row ? `${row.started_at},${row.id}` : "";
}

function fetchPage(cursor) {
  const extra = { limit: PAGE };
  if (cursor) extra.before = cursor;
  return api(`/api/flows?${listQuery(extra)}`).then((r) => r.body);
}

// The next page is fetched as soon as one is shown, so scrolling to the end only draws it.
function prefetch() {
  const cursor = cursorAfter(state.rows[state.rows.length - 1]);
  const promise = fetchPage(cursor);
  promise.catch(() => {}); // a failure shows when the page is asked for
  state.prefetched = { generation: state.generation, cursor, promise };
}

async function loadPage() {
  if (state.loading || state.done) return;
  state.loading = true;
  const generation = state.generation;
  const cursor = cursorAfter(state.rows[state.rows.length - 1]);
  const ready = state.prefetched;
  state.prefetched = null;
  try {
    const body = await (ready && ready.generation === generation && ready.cursor === cursor ? ready.promise : fetchPage(cursor));
    if (generation !== state.generation) return;
    if (!document.body.dataset.listReady) performance.mark("repost:first-page-data");
    const tbody = $("rows");
    const fragment = document.createDocumentFragment();
    for (const flow of body) {
      if (state.byId.has(flow.id)) continue;
      state.rows.push(flow);
      state.byId.set(flow.id, flow);
      fragment.append(rowFor(flow));
    }
    tbody.append(fragment);
    if (body.length < PAGE) {
      state.done = true;
      const n = state.rows.length;
      $("list-end").textContent = n ? `${n} flow${n === 1 ? "" : "s"}` : "no flows match";
    } else {
      prefetch();
    }
    if (!document.body.dataset.listReady) performance.mark("repost:first-page");
    document.body.dataset.listReady = String(state.rows.length);
  } catch (e) {
    showError(e.message);
  } finally {
    if (generation === state.generation) state.loading = false;
  }
  // The page may not fill the pane yet: keep loading while the end is in view.
  if (!state.done && endInView()) loadPage();
}

function endInView() {
  const pane = $("list-pane");
  return pane.scrollTop + pane.clientHeight >= pane.scrollHeight - 200;
}

function applyFilters() {
  const form = new FormData($("filters"));
  const q = new URLSearchParams();
  for (const [k, v] of form.entries()) if (String(v).trim()) q.set(k, String(v).trim());
  state.filters = q;
  state.generation += 1;
  state.rows = [];
  state.byId = new Map();
  state.done = false;
  state.loading = false;
  state.prefetched = null;
  $("rows").replaceChildren();
  $("list-end").textContent = "";
  showError("");
  listen();
  loadPage();
}

// New flows, pushed by the server as they are recorded (store/follow.py, as list --follow).
function listen() {
  if (state.events) state.events.close();
  const source = new EventSource(`/api/events?${listQuery()}`);
  state.events = source;
  source.addEventListener("open", () => $("live").classList.add("on"));
  source.addEventListener("error", () => $("live").classList.remove("on"));
  source.addEventListener("flows", (message) => {
    const flows = JSON.parse(message.data); // oldest first
    const tbody = $("rows");
    for (const flow of flows) {
      if (state.byId.has(flow.id)) continue;
      state.rows.unshift(flow);
      state.byId.set(flow.id, flow);
      const tr = rowFor(flow);
      tr.classList.add("fresh");
      tbody.prepend(tr);
      if (flow.replay_of && state.current === flow.replay_of) openFlow(flow.replay_of, { keepScroll: true });
    }
    document.body.dataset.pushed = String((Number(document.body.dataset.pushed) || 0) + flows.length);
  });
}

function markCurrent(id) {
  for (const tr of document.querySelectorAll("#rows tr.current")) tr.classList.remove("current");
  const tr = document.querySelector(`#rows tr[data-id="${Number(id)}"]`);
  if (tr) {
    tr.classList.add("current");
    tr.scrollIntoView({ block: "nearest" });
  }
}

function move(step) {
  if (!state.rows.length) return;
  let index = state.rows.findIndex((f) => f.id === state.current);
  index = index < 0 ? 0 : Math.min(state.rows.length - 1, Math.max(0, index + step));
  openFlow(state.rows[index].id);
  if (index >= state.rows.length - 5) loadPage();
}

// -- one flow ------------------------------------------------------------------------

function headersTable(headers) {
  return el("table", { class: "headers" }, ...headers.map(([name, value]) => el("tr", null, el("td", { text: name }), el("td", { text: value }))));
}

function headerValue(headers, name) {
  const found = (headers || []).find(([k]) => k.toLowerCase() === name);
  return found ? found[1] : "";
}

function jsonNode(value, key, depth) {
  const label = key === undefined ? null : el("span", { class: "j-key", text: `${JSON.stringify(key)}: ` });
  if (value !== null && typeof value === "object") {
    const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
    const open = Array.isArray(value) ? "[" : "{";
    const close = Array.isArray(value) ? "]" : "}";
    const details = el("details", null, el("summary", null, label, `${open} ${entries.length} ${Array.isArray(value) ? "items" : "keys"} ${close}`));
    details.open = depth < 3;
    for (const [k, v] of entries) details.append(jsonNode(v, Array.isArray(value) ? undefined : k, depth + 1));
    return details;
  }
  const kind = typeof value === "string" ? "j-str" : typeof value === "number" ? "j-num" : "j-lit";
  return el("div", { class: "leaf" }, label, el("span", { class: kind, text: JSON.stringify(value) }));
}

function renderBody(flow, side, part) {
  const box = el("div", { class: "body" });
  const ctype = headerValue(part.headers, "content-type").toLowerCase();
  const media = ctype.split(";")[0].trim();
  const bodyUrl = `/api/flows/${Number(flow.id)}/body/${side}`;
  if (part.note) box.append(el("p", { class: "note", text: part.note }));
  if (part.body === null && part.body_base64 === null) {
    box.append(el("p", { class: "note", text: part.size ? `(${size(part.size)}, not stored)` : "(no body)" }));
    return box;
  }
  if (part.body_base64 !== null) {
    const raster = ["image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp", "image/x-icon", "image/vnd.microsoft.icon"];
    if (raster.includes(media)) box.append(el("img", { class: "body", src: bodyUrl, alt: `${side} body (${media})` }));
    box.append(el("p", { class: "note" }, `binary body, ${size(part.size)} `, el("a", { href: `${bodyUrl}?download=1`, download: `flow-${flow.id}-${side}.bin`, text: "download" })));
    return box;
  }
  const text = part.body;
  if (media.endsWith("json") || media.endsWith("+json")) {
    try {
      box.append(el("div", { class: "tree" }, jsonNode(JSON.parse(text), undefined, 0)));
      return box;
    } catch (e) { /* not JSON after all: shown as text */ }
  }
  if (media === "application/x-www-form-urlencoded") {
    const fields = [...new URLSearchParams(text).entries()];
    box.append(el("table", { class: "headers" }, ...fields.map(([k, v]) => el("tr", null, el("td", { text: k }), el("td", { text: v })))));
    return box;
  }
  // HTML, SVG, XML, script, anything else: its source, as text.
  box.append(el("pre", { text }));
  if (part.body_cut) box.append(el("p", { class: "note", text: "cut off" }));
  return box;
}

function flowLink(id, words) {
  return el("button", { type: "button", class: "linkish", text: words || `flow ${id}`, onclick: () => openFlow(id) });
}

function timeline(flow, assembled) {
  const events = flow.events;
  const last = Math.max(1, ...events.map((e) => e.t_ms || 0));
  const axis = el("div", { class: "axis", title: `0 – ${Math.round(last)} ms` });
  for (const e of events) {
    const tick = el("span", { class: "tick", title: `${Math.round(e.t_ms || 0)} ms ${e.event || "message"}` });
    tick.style.left = `${((e.t_ms || 0) / last) * 100}%`; // CSSOM, allowed by style-src 'self'
    axis.append(tick);
  }
  const rows = events.map((e) => el("tr", null,
    el("td", { class: "t", text: `+${Math.round(e.t_ms || 0)} ms` }),
    el("td", { class: "name", text: e.event || "message" }),
    el("td", { class: "data", text: e.data })));
  const left = el("div", null, el("h3", { text: `stream: ${events.length} events over ${Math.round(last)} ms` }), axis,
    el("table", { class: "events" }, ...rows), flow.events_cut ? el("p", { class: "note", text: "more events, cut off" }) : null);
  const right = el("div", null, el("h3", { text: "assembled" }), el("pre", { class: "assembled", text: assembled ?? "(no text of a known API)" }));
  return el("section", { class: "timeline", id: "timeline" }, left, right);
}

async function openFlow(id, options) {
  id = Number(id);
  state.current = id;
  markCurrent(id);
  if (!(options && options.noHash)) history.replaceState(null, "", `#flow/${id}`);
  let flow, assembled = null;
  try {
    flow = (await api(`/api/flows/${id}`)).body;
    if (flow.events && flow.events.length) assembled = (await api(`/api/flows/${id}/stream`)).body.text;
  } catch (e) {
    showError(e.message);
    return;
  }
  if (state.current !== id) return;
  const pane = $("detail-pane");
  const req = flow.request;
  const parts = [
    el("h2", null, `flow ${flow.id} `, safetyBadge(flow.safety), ` ${shortTime(flow.started_at)} · ${duration(flow.duration_ms)}`),
  ];
  const links = el("p", null);
  if (flow.replay_of) links.append("replay of ", flowLink(flow.replay_of), " ");
  if (flow.replays.length) {
    links.append("replays: ");
    flow.replays.forEach((r, i) => links.append(i ? ", " : "", flowLink(r.id, `flow ${r.id} (${r.status ?? "no response"})`)));
  }
  if (links.childNodes.length) parts.push(links);
  if (flow.error) parts.push(el("p", { class: "warn", text: `error: ${flow.error}` }));
  if (flow.tags.length) parts.push(el("p", { class: "note", text: `tags: ${flow.tags.join(", ")}` }));
  const snippet = el("pre", { id: "snippet", hidden: true });
  const actions = el("div", { class: "actions" },
    el("button", { type: "button", id: "replay-open", text: "Replay…", onclick: () => openReplay(flow.id) }),
    el("button", { type: "button", text: "Compare with…", onclick: () => showCompare(flow.id, flow.replays.length ? flow.replays[flow.replays.length - 1].id : (flow.replay_of || "")) }),
    ...["curl", "httpie", "python"].map((kind) => el("button", { type: "button", text: `Copy as ${kind}`, onclick: () => copyAs(flow.id, kind, snippet) })),
  );
  parts.push(actions, snippet);
  parts.push(el("h3", { text: "request" }), el("div", { class: "line", text: `${req.method} ${req.url} ${req.http_version || ""}` }), headersTable(req.headers), renderBody(flow, "request", req));
  if (flow.response) {
    const res = flow.response;
    parts.push(el("h3", { text: "response" }), el("div", { class: `line ${statusClass(res.status)}`, text: `${res.http_version || ""} ${res.status} ${res.reason || ""}` }), headersTable(res.headers));
    if (flow.events && flow.events.length) parts.push(timeline(flow, assembled));
    else parts.push(renderBody(flow, "response", res));
  } else {
    parts.push(el("h3", { text: "response" }), el("p", { class: "note", text: "no response" }));
  }
  pane.replaceChildren(...parts);
  pane.dataset.flow = String(flow.id);
  if (!(options && options.keepScroll)) pane.scrollTop = 0;
}

async function copyAs(id, kind, box) {
  try {
    const { body } = await api(`/api/flows/${Number(id)}/as/${kind}`);
    box.textContent = body.text + (body.notes.length ? `\n\n# ${body.notes.join("\n# ")}` : "");
    box.hidden = false;
    if (navigator.clipboard) await navigator.clipboard.writeText(body.text).catch(() => {});
  } catch (e) {
    showError(e.message);
  }
}

// -- compare -------------------------------------------------------------------------

function showCompare(a, b) {
  history.replaceState(null, "", `#compare/${a}/${b}`);
  const form = el("form", { class: "compare-form", id: "compare-form" },
    el("label", null, "A ", el("input", { name: "a", size: 6, value: a })),
    el("label", null, "B ", el("input", { name: "b", size: 6, value: b })),
    el("label", null, "ignore (one pattern a line) ", el("textarea", { name: "ignore", rows: 3, placeholder: "id\nresponse.body.items[*].price\nX-Request-Id" })),
    el("label", null, el("input", { type: "checkbox", name: "all_headers", value: "1" }), " all headers"),
    el("label", null, el("input", { type: "checkbox", name: "request", value: "1" }), " request only"),
    el("label", null, el("input", { type: "checkbox", name: "response", value: "1" }), " response only"),
    el("button", { type: "submit", text: "Compare" }));
  const result = el("div", { id: "diff-result" });
  form.addEventListener("submit", (e) => { e.preventDefault(); runCompare(form, result); });
  $("detail-pane").replaceChildren(el("h2", { text: "compare" }), form, result);
  if (String(a) && String(b)) runCompare(form, result);
}

function cell(value, side) {
  const text = value === undefined ? "(absent)" : typeof value === "string" ? value : JSON.stringify(value, null, 1);
  return el("td", { class: side, text });
}

async function runCompare(form, result) {
  const data = new FormData(form);
  const q = new URLSearchParams();
  for (const [k, v] of data.entries()) if (String(v).trim()) q.append(k, String(v));
  try {
    const { body } = await api(`/api/diff?${q}`);
    const a = data.get("a"), b = data.get("b");
    history.replaceState(null, "", `#compare/${a}/${b}`);
    if (body.equal) {
      result.replaceChildren(el("p", { class: "equal", text: `flows ${a} and ${b} are equal` }));
      return;
    }
    const head = el("tr", null, el("th", { text: "path" }), el("th", null, flowLink(a)), el("th", null, flowLink(b)));
    const rows = body.differences.map((d) => el("tr", null, el("td", { text: d.path }), cell(d.a, "a"), cell(d.b, "b")));
    result.replaceChildren(el("p", { text: `${body.differences.length} difference${body.differences.length === 1 ? "" : "s"}` }),
      el("table", { class: "diff" }, el("thead", null, head), el("tbody", null, ...rows)));
  } catch (e) {
    result.replaceChildren(el("p", { class: "warn", text: e.message }));
  }
}

// -- replay --------------------------------------------------------------------------

let replayId = null;

function replayAsk(extra) {
  const form = $("replay-form");
  const headers = form.elements.headers.value.split("\n").map((h) => h.trim()).filter(Boolean);
  return { id: replayId, to: form.elements.to.value.trim() || null, headers, ...extra };
}

function renderPlan(plan) {
  const box = $("replay-plan");
  const times = plan.history.times;
  const lines = [
    el("p", null, safetyBadge(plan.safety), ` ${plan.method} ${plan.url}`),
    el("p", { class: times ? "warn" : "note", text: times ? `already replayed ${times} time${times === 1 ? "" : "s"} (last at ${plan.history.last})` : "never replayed" }),
  ];
  if (plan.reason) lines.push(el("p", { class: "warn", text: plan.reason }));
  if (plan.left_out.length) lines.push(el("p", { class: "note", text: `not sent, redacted at capture: ${plan.left_out.join(", ")} (supply with a header below)` }));
  if (plan.left_out_query.length) lines.push(el("p", { class: "note", text: `query parameters not sent (redacted at capture): ${plan.left_out_query.join(", ")}` }));
  if (plan.redacted_body) lines.push(el("p", { class: "note", text: "secrets in its body were redacted at capture and are sent redacted" }));
  if (plan.problem) lines.push(el("p", { class: "warn", text: `cannot be sent: ${plan.problem}` }));
  box.replaceChildren(...lines);
  box.dataset.safety = plan.safety;
  $("replay-confirm").hidden = !plan.needs_confirmation;
  $("replay-confirm-id").textContent = String(plan.id);
  $("replay-send").disabled = Boolean(plan.problem);
}

async function checkReplay() {
  try {
    const { body } = await post("/api/replay/plan", replayAsk());
    renderPlan(body);
  } catch (e) {
    $("replay-plan").replaceChildren(el("p", { class: "warn", text: e.message }));
  }
}

async function openReplay(id) {
  replayId = Number(id);
  const form = $("replay-form");
  form.reset();
  $("replay-title").textContent = `replay flow ${replayId}`;
  $("replay-plan").replaceChildren(el("p", { class: "note", text: "checking…" }));
  $("replay-result").replaceChildren();
  $("replay-confirm").hidden = true;
  $("replay-dialog").showModal();
  await checkReplay();
}

async function sendReplay() {
  const typed = $("replay-confirm-input").value.trim();
  const extra = {};
  if (!$("replay-confirm").hidden) {
    if (typed !== String(replayId)) {
      $("replay-result").replaceChildren(el("p", { class: "warn", text: `type ${replayId} to confirm this unsafe replay; nothing sent` }));
      return;
    }
    extra.confirm = replayId;
  }
  $("replay-send").disabled = true;
  try {
    const { status, body } = await post("/api/replay", replayAsk(extra), [409, 422]);
    if (status !== 200) {
      if (body.plan) renderPlan(body.plan);
      $("replay-result").replaceChildren(el("p", { class: "warn", text: body.error }));
      return;
    }
    const outcome = body.error ? `failed: ${body.error}` : `${body.status} in ${Math.round(body.elapsed_ms)} ms`;
    $("replay-result").replaceChildren(el("p", { id: "replay-outcome" }, "sent → ", body.replay_id ? flowLink(body.replay_id) : "not stored", `: ${outcome}`));
    await checkReplay();
  } catch (e) {
    $("replay-result").replaceChildren(el("p", { class: "warn", text: e.message }));
  } finally {
    $("replay-send").disabled = false;
  }
}

// -- export --------------------------------------------------------------------------

function exportSelection() {
  const format = $("export-format").value;
  const q = state.picked.size ? new URLSearchParams({ ids: [...state.picked].join(",") }) : new URLSearchParams(state.filters);
  q.set("format", format);
  const a = el("a", { href: `/api/export?${q}`, download: "" });
  document.body.append(a);
  a.click();
  a.remove();
}

// -- start ---------------------------------------------------------------------------

function onKey(e) {
  const typing = e.target.closest("input, textarea, select, dialog");
  if (e.key === "Escape" && typing && !e.target.closest("dialog")) { e.target.blur(); return; }
  if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.key === "j") { e.preventDefault(); move(1); }
  else if (e.key === "k") { e.preventDefault(); move(-1); }
  else if (e.key === "/") { e.preventDefault(); $("search").focus(); }
}

function start() {
  $("filters").addEventListener("submit", (e) => { e.preventDefault(); applyFilters(); });
  $("list-pane").addEventListener("scroll", () => { if (endInView()) loadPage(); });
  $("compare-picked").addEventListener("click", () => { const [a, b] = [...state.picked].sort((x, y) => x - y); showCompare(a, b); });
  $("export").addEventListener("click", exportSelection);
  $("replay-send").addEventListener("click", sendReplay);
  $("replay-recheck").addEventListener("click", checkReplay);
  $("replay-close").addEventListener("click", () => $("replay-dialog").close());
  document.addEventListener("keydown", onKey);
  window.addEventListener("hashchange", route);
  applyFilters();
  route();
}

// #flow/12 and #compare/3/4: a view can be bookmarked or sent back to with the history.
function route() {
  const [view, a, b] = location.hash.slice(1).split("/");
  if (view === "flow" && /^\d+$/.test(a || "")) openFlow(a, { noHash: true });
  else if (view === "compare") showCompare(/^\d+$/.test(a || "") ? a : "", /^\d+$/.test(b || "") ? b : "");
}

start();
