// kelpie's local page: polls the agent's JSON and redraws; no external code, no build step.
"use strict";
const $ = (id) => document.getElementById(id);
const PALETTE = ["#5b3cc4", "#1f8a4c", "#d9480f", "#1c7ed6", "#c2255c", "#2b8a3e", "#e67700", "#0b7285",
  "#862e9c", "#5c940d", "#a61e4d", "#364fc7"];
const state = { metrics: [], metric: null, by: "", stat: "", chart: null, prev: null, hover: null };

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store" });
  if (!r.ok) throw new Error(url + ": HTTP " + r.status);
  return r.json();
}
// 1234567 -> "1.23M"; small numbers keep up to 3 significant decimals.
function fmt(v) {
  if (v === null || v === undefined || !isFinite(v)) return "–";
  const a = Math.abs(v);
  const units = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e4, "k"]];
  for (const [m, s] of units) if (a >= m) return trim(v / m) + s;
  return trim(v);
}
function trim(v) {
  const a = Math.abs(v);
  const d = a >= 100 ? 1 : a >= 1 ? 2 : a >= 0.01 ? 3 : 5;
  return String(parseFloat(v.toFixed(d)));
}
function fmtBytes(v) {
  if (!isFinite(v)) return "–";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(v) >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return trim(v) + " " + u[i];
}
function withUnit(v, unit, kind) {
  if (unit === "B") return fmtBytes(v);
  if (unit === "B/s") return fmtBytes(v) + "/s";
  if (unit === "fraction") return trim(v * 100) + " %";
  if (unit) return fmt(v) + " " + unit;
  return fmt(v) + (kind === "rate" ? " /s" : "");
}
function duration(s) {
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min";
  if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
}
function clock(ts, seconds) {
  const d = new Date(ts * 1000);
  const p = (n) => String(n).padStart(2, "0");
  return p(d.getHours()) + ":" + p(d.getMinutes()) + (seconds ? ":" + p(d.getSeconds()) : "");
}
function ago(ts) {
  const s = Math.max(0, Math.round(Date.now() / 1000 - ts));
  return s < 5 ? "just now" : duration(s) + " ago";
}
function sumObj(o) { return Object.values(o || {}).reduce((a, b) => a + (b || 0), 0); }

// ---- header and rates -------------------------------------------------------------------------------
async function refreshStatus() {
  let doc;
  try { doc = await getJSON("/status"); } catch (e) { return problem("The agent does not answer: " + e.message); }
  problem(null);
  document.title = "kelpie on " + doc.hostname;
  $("host").textContent = "on " + doc.hostname;
  $("mode").textContent = doc.mode;
  $("intake").textContent = doc.dd_url || "none (local mode)";
  $("uptime").textContent = duration(doc.uptime_seconds);
  $("version").textContent = doc.version;
  const h = $("health");
  h.textContent = doc.healthy ? "healthy" : "flushes are late";
  h.className = "badge " + (doc.healthy ? "good" : "bad");
  const f = doc.forwarder || {};
  const del = $("delivery");
  if (doc.mode === "local") {
    del.textContent = "local: nothing sent"; del.className = "badge";
  } else if (f.not_delivering_since) {
    const since = clock(f.not_delivering_since, true);
    del.textContent = "not delivering since " + since; del.className = "badge bad";
    del.title = f.last_error || "";
    problem(`Not delivering to ${doc.dd_url} since ${since} (${ago(f.not_delivering_since)}): ` +
      `${f.last_error || "unknown error"}. ${f.queued_transactions || 0} payloads ` +
      `(${fmtBytes((f.queued_bytes || 0) + (f.queued_on_disk_bytes || 0))}) held.`);
  } else {
    del.textContent = "delivering"; del.className = "badge good"; del.title = "";
  }
  const d = doc.dogstatsd || {};
  const now = { t: Date.now() / 1000, packets: sumObj(d.packets), samples: d.metric_samples || 0, sent: f.bytes_sent || 0 };
  if (state.prev) {
    const dt = Math.max(0.001, now.t - state.prev.t);
    $("rate-packets").textContent = fmt((now.packets - state.prev.packets) / dt) + "/s";
    $("rate-samples").textContent = fmt((now.samples - state.prev.samples) / dt) + "/s";
    $("rate-sent").textContent = doc.mode === "local" ? "local mode" : fmtBytes((now.sent - state.prev.sent) / dt) + "/s";
  }
  state.prev = now;
  $("contexts").textContent = fmt(d.contexts || 0);
  $("parse-errors").textContent = fmt(d.parse_errors || 0);
  // Every section's drops: dogstatsd, encode, forwarder.
  const sections = [d.dropped, (doc.encode || {}).dropped, (f.transactions || {}).dropped];
  const dropped = sections.reduce((n, s) => n + sumObj(s), 0);
  const dr = $("dropped");
  dr.textContent = fmt(dropped);
  dr.className = "value" + (dropped > 0 ? " bad" : "");
  dr.title = JSON.stringify(Object.assign({}, ...sections));
  $("queued").textContent = fmtBytes((f.queued_bytes || 0) + (f.queued_on_disk_bytes || 0));
  const col = $("collectors");
  col.innerHTML = Object.entries(doc.collectors || {}).map(([name, c]) =>
    `<li><b>${esc(name)}</b>: <span class="${c.status === "ok" ? "good" : c.status === "error" ? "bad" : ""}">${esc(c.status)}</span>` +
    (c.containers !== undefined && c.containers !== null ? `, ${c.containers} containers` : "") +
    (c.detail ? ", " + esc(c.detail) : "") + (c.error ? ` <span class="bad">(${esc(c.error)})</span>` : "") + "</li>").join("");
}
function problem(text) {
  const p = $("problem");
  p.hidden = !text;
  if (text) p.textContent = text;
}

// ---- metrics explorer -------------------------------------------------------------------------------
async function refreshMetrics() {
  try {
    const doc = await getJSON("/api/metrics");
    state.metrics = doc.metrics;
    state.historyEnabled = doc.history_enabled;
  } catch (e) { return; }
  renderList();
  if (state.metric) fillGroupBy();
}
function renderList() {
  const q = $("search").value.trim().toLowerCase();
  const words = q.split(/\s+/).filter(Boolean);
  const shown = state.metrics.filter((m) => words.every((w) => m.metric.toLowerCase().includes(w)));
  $("metric-count").textContent = state.historyEnabled === false
    ? "The history is off (forwarding mode); set KELPIE_HISTORY_MEMORY to keep it."
    : `${shown.length} of ${state.metrics.length} metrics`;
  const list = $("metric-list");
  const html = shown.slice(0, 500).map((m) =>
    `<li data-metric="${esc(m.metric)}" class="${m.metric === state.metric ? "active" : ""}" title="${esc(m.metric)} (${m.kind})">` +
    `<span class="name">${esc(m.metric)}</span><span class="n">${m.contexts} ctx</span></li>`).join("");
  if (list.innerHTML !== html) list.innerHTML = html;
}
// Opens `name`'s chart; `keepGroup` keeps the grouping (switching between a histogram's aggregates).
function selectMetric(name, keepGroup) {
  if (state.metric !== name && !keepGroup) { state.by = ""; state.stat = ""; }
  state.metric = name;
  location.hash = "metric=" + encodeURIComponent(name) + (state.by ? "&by=" + encodeURIComponent(state.by) : "");
  renderList();
  fillGroupBy();
  refreshChart();
}
function fillGroupBy() {
  const m = state.metrics.find((x) => x.metric === state.metric);
  const sel = $("group-by");
  const keys = m ? m.tag_keys : [];
  const html = `<option value="">(everything)</option>` + keys.map((k) =>
    `<option value="${esc(k.key)}">${esc(k.key)} (${k.values})</option>`).join("");
  if (sel.innerHTML !== html) sel.innerHTML = html;
  sel.value = state.by;
  // A histogram is flushed as several names (<base>.max .median .avg .count .95percentile): offer its siblings.
  const hm = /^(.*)\.(max|min|median|avg|sum|count|\d+percentile)$/.exec(state.metric || "");
  const siblings = hm ? state.metrics.filter((x) => x.metric.startsWith(hm[1] + ".") &&
    /^(max|min|median|avg|sum|count|\d+percentile)$/.test(x.metric.slice(hm[1].length + 1))) : [];
  $("agg-label").hidden = siblings.length < 2;
  if (siblings.length >= 2) {
    const html = siblings.map((x) => `<option value="${esc(x.metric)}">${esc(x.metric.slice(hm[1].length + 1))}</option>`).join("");
    if ($("agg").innerHTML !== html) $("agg").innerHTML = html;
    $("agg").value = state.metric;
  }
  const isDist = m && m.kind === "distribution";
  $("stat-label").hidden = !isDist;
  if (isDist && !$("stat").options.length) {
    $("stat").innerHTML = [["", "p50 · p95 · p99"], ["p50", "p50"], ["p95", "p95"], ["p99", "p99"], ["avg", "avg"],
      ["max", "max"], ["count", "count"]].map(([v, t]) => `<option value="${v}">${t}</option>`).join("");
  }
  if (isDist) $("stat").value = state.stat;
}

// ---- chart ------------------------------------------------------------------------------------------
async function refreshChart() {
  if (!state.metric) return;
  const metric = state.metric;
  const url = "/api/chart?metric=" + encodeURIComponent(metric) + "&by=" + encodeURIComponent(state.by) +
    "&stat=" + encodeURIComponent(state.stat);
  let c;
  try { c = await getJSON(url); } catch (e) { return; }
  if (metric !== state.metric) return;
  state.chart = c;
  $("chart-title").textContent = metric;
  const lines = c.series;
  let cur = null, label = "";
  if (lines.length === 1) {
    cur = last(lines[0]); label = lines[0].group === "*" ? "now" : lines[0].group;
  } else if (lines.length > 1) {
    const p95 = lines.find((l) => l.group === "p95");
    const l0 = p95 || lines[0];
    cur = last(l0); label = p95 ? "p95 now" : "now, " + l0.group + " (highest)";
  }
  $("current-value").textContent = cur === null ? "no data" : withUnit(cur, c.unit, c.kind);
  $("current-label").textContent = cur === null ? "" : label;
  const note = [c.kind + (c.kind === "rate" ? " (per second)" : ""), c.contexts + " contexts",
    lines.length > 1 ? c.aggregation + " per group" : ""];
  if (c.groups_total > lines.length) note.push(`top ${lines.length} of ${c.groups_total} groups`);
  $("chart-note").textContent = note.filter(Boolean).join(" · ");
  $("legend").innerHTML = lines.map((l, i) =>
    `<span><i style="background:${PALETTE[i % PALETTE.length]}"></i>${esc(l.group)} <b>${esc(withUnit(last(l), c.unit, c.kind))}</b></span>`).join("");
  draw();
}
function last(line) { const p = line.points; return p.length ? p[p.length - 1][1] : null; }
function niceStep(range, ticks) {
  const raw = range / Math.max(1, ticks);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const n = raw / mag;
  return (n < 1.5 ? 1 : n < 3 ? 2 : n < 7 ? 5 : 10) * mag;
}
function draw() {
  const canvas = $("chart");
  const c = state.chart;
  const dpr = window.devicePixelRatio || 1;
  const W = canvas.clientWidth, H = canvas.clientHeight;
  if (canvas.width !== Math.round(W * dpr) || canvas.height !== Math.round(H * dpr)) {
    canvas.width = Math.round(W * dpr); canvas.height = Math.round(H * dpr);
  }
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, W, H);
  g.font = "12px system-ui, sans-serif";
  if (!c || !c.series.length) {
    g.fillStyle = "#6b7385";
    g.fillText(c ? "No points in the last hour." : "Search a metric and click it to chart its last hour.", 12, 24);
    return;
  }
  // The last hour, or since the first point when that is more recent (at least 5 minutes wide).
  const now = Date.now() / 1000;
  let first = Infinity, lo = Infinity, hi = -Infinity, lastT = -Infinity;
  for (const l of c.series) for (const [t, v] of l.points) {
    if (t < first) first = t;
    if (t > lastT) lastT = t;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const x1 = Math.max(now, lastT + 1);
  const x0 = Math.min(x1 - 300, Math.max(x1 - 3600, first));
  if (lo > 0) lo = 0;
  if (hi === lo) hi = lo + 1;
  const step = niceStep(hi - lo, 5);
  lo = Math.floor(lo / step) * step; hi = Math.ceil(hi / step) * step;
  const L = 70, R = 12, T = 10, B = 26;
  const X = (t) => L + (t - x0) / (x1 - x0) * (W - L - R);
  const Y = (v) => T + (hi - v) / (hi - lo) * (H - T - B);
  g.strokeStyle = "#e3e6ec"; g.fillStyle = "#6b7385"; g.lineWidth = 1;
  g.textAlign = "right"; g.textBaseline = "middle";
  for (let v = lo; v <= hi + step / 2; v += step) {
    const y = Math.round(Y(v)) + 0.5;
    g.beginPath(); g.moveTo(L, y); g.lineTo(W - R, y); g.stroke();
    g.fillText(withUnit(v, c.unit, c.kind), L - 6, y);
  }
  g.textAlign = "center"; g.textBaseline = "top";
  const span = x1 - x0;
  const tstep = [60, 120, 300, 600, 900].find((s) => span / s <= 8) || 1200;
  for (let t = Math.ceil(x0 / tstep) * tstep; t <= x1; t += tstep) {
    const x = Math.round(X(t)) + 0.5;
    g.beginPath(); g.moveTo(x, T); g.lineTo(x, H - B); g.stroke();
    g.fillText(clock(t), x, H - B + 6);
  }
  g.lineWidth = c.series.length > 20 ? 1 : 1.75;
  g.lineJoin = "round";
  c.series.forEach((l, i) => {
    g.strokeStyle = PALETTE[i % PALETTE.length];
    g.beginPath();
    l.points.forEach(([t, v], j) => (j ? g.lineTo(X(t), Y(v)) : g.moveTo(X(t), Y(v))));
    g.stroke();
    if (l.points.length === 1) {
      const [t, v] = l.points[0];
      g.fillStyle = g.strokeStyle; g.beginPath(); g.arc(X(t), Y(v), 3, 0, 7); g.fill();
    }
  });
  state.geom = { X, Y, x0, x1, L, R, W };
  if (state.hover !== null) drawHover(g, H, T, B);
}
function drawHover(g, H, T, B) {
  const c = state.chart, geo = state.geom, tip = $("tooltip");
  const t = geo.x0 + (state.hover - geo.L) / (geo.W - geo.L - geo.R) * (geo.x1 - geo.x0);
  let best = null;
  for (const l of c.series) for (const p of l.points) if (best === null || Math.abs(p[0] - t) < Math.abs(best - t)) best = p[0];
  if (best === null) { tip.hidden = true; return; }
  const x = Math.round(geo.X(best)) + 0.5;
  g.strokeStyle = "#1d2433"; g.lineWidth = 1; g.beginPath(); g.moveTo(x, T); g.lineTo(x, H - B); g.stroke();
  const rows = [];
  c.series.forEach((l, i) => {
    const p = l.points.find((q) => q[0] === best);
    if (p) rows.push([p[1], `<i style="color:${PALETTE[i % PALETTE.length]}">■</i> ${esc(l.group)}: <b>${esc(withUnit(p[1], c.unit, c.kind))}</b>`]);
  });
  rows.sort((a, b) => b[0] - a[0]);
  tip.innerHTML = `<div>${clock(best, true)}</div>` + rows.slice(0, 12).map((r) => r[1]).join("<br>") +
    (rows.length > 12 ? `<br>… ${rows.length - 12} more` : "");
  tip.hidden = false;
  tip.style.left = Math.min(x + 12, geo.W - tip.offsetWidth - 4) + "px";
  tip.style.top = "12px";
}

// ---- events, checks, containers ---------------------------------------------------------------------
async function refreshFeeds() {
  try {
    const [ev, sc] = await Promise.all([getJSON("/api/events?limit=50"), getJSON("/api/service_checks?limit=50")]);
    const events = ev.events.slice().sort((a, b) => (b.deploy - a.deploy) || (b.timestamp - a.timestamp));
    $("events").innerHTML = events.length ? events.map((e) =>
      `<li class="event">${e.deploy ? '<span class="pill deploy">deploy</span>' : ""}<span class="pill ${esc(e.alert_type)}">${esc(e.alert_type)}</span>` +
      `<span class="title">${esc(e.title)}</span> <span class="t" title="${new Date(e.timestamp * 1000).toISOString()}">${ago(e.timestamp)}</span>` +
      (e.text ? `<div class="text">${esc(e.text)}</div>` : "") +
      (e.tags.length ? `<div class="tags">${esc(e.tags.join(" "))}</div>` : "") + "</li>").join("")
      : '<li class="muted">No events yet.</li>';
    $("checks").innerHTML = sc.service_checks.length ? sc.service_checks.map((c) =>
      `<li class="check"><span class="pill ${c.status_text}">${c.status_text}</span><span class="title">${esc(c.check)}</span> ` +
      `<span class="t">${ago(c.timestamp)}</span>` + (c.message ? `<div class="text">${esc(c.message)}</div>` : "") +
      (c.tags.length ? `<div class="tags">${esc(c.tags.join(" "))}</div>` : "") + "</li>").join("")
      : '<li class="muted">No service checks yet.</li>';
  } catch (e) { /* the status refresh reports an unreachable agent */ }
}
async function refreshContainers() {
  if (!state.metrics.some((m) => m.metric === "docker.cpu.usage")) return;
  try {
    const [cpu, mem] = await Promise.all([getJSON("/api/chart?metric=docker.cpu.usage&by=container_name"),
      getJSON("/api/chart?metric=docker.mem.rss&by=container_name")]);
    const memOf = new Map(mem.series.map((l) => [l.group, last(l)]));
    $("containers").tBodies[0].innerHTML = cpu.series.map((l) =>
      `<tr><td>${esc(l.group.replace(/^container_name:/, ""))}</td><td>${trim(last(l))} %</td><td>${fmtBytes(memOf.get(l.group))}</td></tr>`).join("");
  } catch (e) { /* next time */ }
}

// ---- wiring -----------------------------------------------------------------------------------------
$("search").addEventListener("input", renderList);
$("search").addEventListener("keydown", (e) => {
  if (e.key === "Enter") { const li = $("metric-list").querySelector("li"); if (li) selectMetric(li.dataset.metric); }
});
$("metric-list").addEventListener("click", (e) => {
  const li = e.target.closest("li[data-metric]");
  if (li) selectMetric(li.dataset.metric);
});
$("group-by").addEventListener("change", (e) => { state.by = e.target.value; selectMetric(state.metric); });
$("stat").addEventListener("change", (e) => { state.stat = e.target.value; refreshChart(); });
$("agg").addEventListener("change", (e) => selectMetric(e.target.value, true));
$("chart").addEventListener("mousemove", (e) => { state.hover = e.offsetX; draw(); });
$("chart").addEventListener("mouseleave", () => { state.hover = null; $("tooltip").hidden = true; draw(); });
window.addEventListener("resize", draw);
const fromHash = new URLSearchParams(location.hash.slice(1));
if (fromHash.get("metric")) { state.metric = fromHash.get("metric"); state.by = fromHash.get("by") || ""; }

function every(ms, f) { f(); setInterval(f, ms); }
every(2000, refreshStatus);
setTimeout(refreshStatus, 700); // rates need two readings: the first ones come sooner
every(10000, () => refreshMetrics().then(refreshContainers));
every(5000, refreshFeeds);
every(10000, refreshChart);
draw();
