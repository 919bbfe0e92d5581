// Reverb live dashboard: polls api/stats once a second and draws the
// numbers on canvases by hand (no libraries: the page is served from the
// binary and must work without network access).
"use strict";

const KEEP = 120; // points per line chart: two minutes at one per second
const COLORS = { a: "#4fb3ff", b: "#ffb547", c: "#ff6b6b", d: "#7ee081", grid: "#2a333d", text: "#7d8b99" };
const token = new URLSearchParams(location.search).get("token");
const apps = new Map(); // id -> {el, hist}
const nodeHist = { sent: [], failed: [], queue: [], last: null };
let updates = 0;

function push(arr, v) { arr.push(v); if (arr.length > KEEP) arr.shift(); }

function fmtNum(n) {
  if (n >= 1e9) return (n / 1e9).toFixed(1) + "G";
  if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (n >= 1e4) return (n / 1e3).toFixed(1) + "k";
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}
function fmtBytes(n) {
  if (n >= 1 << 30) return (n / (1 << 30)).toFixed(1) + " GiB";
  if (n >= 1 << 20) return (n / (1 << 20)).toFixed(1) + " MiB";
  if (n >= 1 << 10) return (n / (1 << 10)).toFixed(1) + " KiB";
  return n + " B";
}
function fmtSec(s) {
  if (!s) return "–";
  if (s < 1e-3) return (s * 1e6).toFixed(0) + " µs";
  if (s < 1) return (s * 1e3).toFixed(s < 0.01 ? 2 : 1) + " ms";
  return s.toFixed(2) + " s";
}

// setup sizes a canvas for the device pixel ratio and returns its context
// and size in CSS pixels.
function setup(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  ctx.font = "11px system-ui, sans-serif";
  return { ctx, w, h };
}

// niceMax rounds up to 1, 2, 4 or 8 times a power of ten, so quarters of
// it (the grid lines) are round numbers.
function niceMax(v) {
  if (v <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 4, 8, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

// lineChart draws series [{values, color}] against the last KEEP seconds.
function lineChart(canvas, series) {
  const { ctx, w, h } = setup(canvas);
  const L = 44, R = 8, T = 8, B = 18;
  let top = 0;
  for (const s of series) for (const v of s.values) top = Math.max(top, v);
  top = niceMax(top * 1.1);
  ctx.strokeStyle = COLORS.grid; ctx.fillStyle = COLORS.text; ctx.lineWidth = 1;
  ctx.textAlign = "right"; ctx.textBaseline = "middle";
  for (let i = 0; i <= 4; i++) {
    const y = T + (h - T - B) * (1 - i / 4);
    ctx.beginPath(); ctx.moveTo(L, y); ctx.lineTo(w - R, y); ctx.stroke();
    ctx.fillText(fmtNum(top * i / 4), L - 4, y);
  }
  ctx.textAlign = "center"; ctx.textBaseline = "alphabetic";
  for (const sec of [120, 90, 60, 30, 0]) {
    const x = L + (w - L - R) * (1 - sec / KEEP);
    ctx.fillText(sec ? "-" + sec + "s" : "now", Math.min(Math.max(x, L + 10), w - R - 12), h - 4);
  }
  for (const s of series) {
    const n = s.values.length;
    if (n === 0) continue;
    ctx.strokeStyle = s.color; ctx.lineWidth = 2; ctx.beginPath();
    s.values.forEach((v, i) => {
      const x = L + (w - L - R) * (1 - (n - 1 - i) / KEEP);
      const y = T + (h - T - B) * (1 - v / top);
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
    ctx.globalAlpha = 0.12; ctx.fillStyle = s.color;
    ctx.lineTo(L + (w - L - R), h - B);
    ctx.lineTo(L + (w - L - R) * (1 - (n - 1) / KEEP), h - B);
    ctx.closePath(); ctx.fill(); ctx.globalAlpha = 1;
  }
}

// histogram draws latency buckets as bars, with p50/p90/p99 markers.
function histogram(canvas, bounds, lat) {
  const { ctx, w, h } = setup(canvas);
  const L = 36, R = 8, T = 14, B = 30;
  const counts = lat.counts || [];
  const n = counts.length;
  const top = niceMax(Math.max(1, ...counts));
  const bw = (w - L - R) / Math.max(n, 1);
  ctx.strokeStyle = COLORS.grid; ctx.fillStyle = COLORS.text;
  ctx.textAlign = "right"; ctx.textBaseline = "middle";
  for (let i = 0; i <= 2; i++) {
    const y = T + (h - T - B) * (1 - i / 2);
    ctx.beginPath(); ctx.moveTo(L, y); ctx.lineTo(w - R, y); ctx.stroke();
    ctx.fillText(fmtNum(top * i / 2), L - 4, y);
  }
  counts.forEach((c, i) => {
    const bh = (h - T - B) * c / top;
    ctx.fillStyle = COLORS.a;
    ctx.fillRect(L + i * bw + 1, h - B - bh, Math.max(bw - 2, 1), bh);
  });
  ctx.fillStyle = COLORS.text; ctx.textAlign = "center"; ctx.textBaseline = "alphabetic";
  // As many bucket labels as fit, about 56 px each.
  const step = Math.max(1, Math.ceil(n / Math.max(1, Math.floor((w - L - R) / 56))));
  for (let i = 0; i < n; i += step) {
    const label = i < bounds.length ? "≤" + fmtSec(bounds[i]) : ">" + fmtSec(bounds[bounds.length - 1]);
    ctx.fillText(label, L + i * bw + bw / 2, h - B + 13);
  }
  // A quantile sits in the bucket whose range holds it.
  const pos = (q) => {
    let i = bounds.findIndex((b) => q <= b);
    if (i < 0) i = bounds.length;
    const lo = i > 0 ? bounds[i - 1] : 0, hi = i < bounds.length ? bounds[i] : lo * 2;
    return L + bw * (i + Math.min(1, Math.max(0, (q - lo) / (hi - lo || 1))));
  };
  const marks = [["p50", lat.p50, COLORS.d], ["p90", lat.p90, COLORS.b], ["p99", lat.p99, COLORS.c]];
  marks.forEach(([name, q, color], k) => {
    if (!q) return;
    const x = pos(q);
    ctx.strokeStyle = color; ctx.lineWidth = 1.5; ctx.setLineDash([4, 3]);
    ctx.beginPath(); ctx.moveTo(x, T); ctx.lineTo(x, h - B); ctx.stroke(); ctx.setLineDash([]);
    ctx.fillStyle = color; ctx.textAlign = "left";
    ctx.fillText(name + " " + fmtSec(q), Math.min(x + 3, w - R - 70), T + 2 + k * 12);
  });
  if (lat.count === 0) {
    ctx.fillStyle = COLORS.text; ctx.textAlign = "center";
    ctx.fillText("no deliveries in the last minute", w / 2, h / 2);
  }
}

// bars draws labelled horizontal bars (connections per node).
function bars(canvas, rows) {
  const { ctx, w, h } = setup(canvas);
  const L = 150, R = 50;
  const top = Math.max(1, ...rows.map((r) => r.value));
  const bh = Math.min(22, (h - 4) / Math.max(rows.length, 1));
  ctx.textBaseline = "middle";
  rows.forEach((r, i) => {
    const y = 2 + i * bh;
    ctx.fillStyle = COLORS.text; ctx.textAlign = "right";
    ctx.fillText(r.label, L - 6, y + bh / 2);
    ctx.fillStyle = r.self ? COLORS.a : COLORS.b;
    const bw = (w - L - R) * r.value / top;
    ctx.fillRect(L, y + 3, bw, bh - 6);
    ctx.fillStyle = COLORS.text; ctx.textAlign = "left";
    ctx.fillText(fmtNum(r.value), L + bw + 4, y + bh / 2);
  });
}

function set(root, metric, text) {
  const el = root.querySelector('[data-metric="' + metric + '"]');
  if (el && el.textContent !== text) el.textContent = text;
}

function appPanel(id) {
  let a = apps.get(id);
  if (a) return a;
  const el = document.getElementById("app-template").content.firstElementChild.cloneNode(true);
  el.dataset.app = id;
  el.querySelector(".app-id").textContent = id;
  document.getElementById("apps").appendChild(el);
  a = { el, conns: [], chans: [], inRate: [], outRate: [] };
  apps.set(id, a);
  return a;
}

function render(st) {
  document.getElementById("node").textContent = st.node;
  document.getElementById("version").textContent = st.version ? "v" + st.version : "";
  const mode = document.getElementById("mode");
  mode.textContent = st.clustered ? "cluster · " + st.nodes.length + " nodes" : "single node";

  const c = st.counters, body = document.body;
  set(body, "webhooks_sent", fmtNum(c.webhooks_sent));
  set(body, "webhooks_failed", fmtNum(c.webhooks_failed));
  set(body, "webhook_queue", fmtNum(c.webhook_queue));
  set(body, "webhooks_dropped", fmtNum(c.webhooks_dropped));
  set(body, "slow_consumer_closes", fmtNum(c.slow_consumer_closes));
  set(body, "bytes_held", fmtBytes(c.bytes_held));
  set(body, "refused_subscriptions", fmtNum(c.refused_subscriptions));
  const prev = nodeHist.last;
  const dt = prev ? Math.max((st.time_ms - prev.time) / 1000, 0.001) : 1;
  push(nodeHist.sent, prev ? Math.max(0, c.webhooks_sent - prev.sent) / dt : 0);
  push(nodeHist.failed, prev ? Math.max(0, c.webhooks_failed - prev.failed) / dt : 0);
  push(nodeHist.queue, c.webhook_queue);
  nodeHist.last = { time: st.time_ms, sent: c.webhooks_sent, failed: c.webhooks_failed };
  lineChart(document.getElementById("chart-webhooks"), [
    { values: nodeHist.sent, color: COLORS.a },
    { values: nodeHist.failed, color: COLORS.c },
    { values: nodeHist.queue, color: COLORS.b },
  ]);

  const np = document.getElementById("nodes-panel");
  np.hidden = !st.clustered;
  if (st.clustered) {
    const rows = [], tb = np.querySelector("tbody");
    tb.textContent = "";
    for (const n of st.nodes) {
      let total = 0;
      for (const [app, v] of Object.entries(n.connections)) {
        total += v;
        const tr = document.createElement("tr");
        tr.dataset.node = n.id; tr.dataset.app = app;
        const a = (n.apps || {})[app];
        const cols = [
          ["node", n.id + (n.self ? " (this node)" : "")], ["app", app], ["connections", String(v)],
          ["channels", a ? String(a.channels) : "–"],
          ["in", a ? fmtNum(a.received_per_second) : "–"], ["out", a ? fmtNum(a.sent_per_second) : "–"],
          ["p50", a ? fmtSec(a.p50) : "–"], ["p99", a ? fmtSec(a.p99) : "–"],
          ["deliveries", a ? fmtNum(a.deliveries) : "–"],
        ];
        for (const [col, t] of cols) {
          const td = document.createElement("td"); td.dataset.col = col; td.textContent = t; tr.appendChild(td);
        }
        tb.appendChild(tr);
      }
      rows.push({ label: n.id + (n.self ? " ★" : ""), value: total, self: n.self });
    }
    bars(document.getElementById("chart-nodes"), rows);
    const cl = st.cluster;
    set(np, "cluster_connected", cl.connected ? "up" : "down");
    set(np, "cluster_queue", fmtNum(cl.publish_queue));
    set(np, "cluster_dropped", fmtNum(cl.dropped));
    set(np, "cluster_reconnects", fmtNum(cl.reconnects));
    set(np, "cluster_p99", fmtSec(cl.latency.p99));
  }

  for (const app of st.apps) {
    const a = appPanel(app.id), el = a.el;
    set(el, "connections", String(app.connections));
    set(el, "channels", String(app.channels));
    set(el, "subscriptions", String(app.subscriptions));
    set(el, "received_per_second", fmtNum(app.received_per_second));
    set(el, "sent_per_second", fmtNum(app.sent_per_second));
    set(el, "p50", fmtSec(app.latency.p50));
    set(el, "p90", fmtSec(app.latency.p90));
    set(el, "p99", fmtSec(app.latency.p99));
    push(a.conns, app.connections); push(a.chans, app.channels);
    push(a.inRate, app.received_per_second); push(a.outRate, app.sent_per_second);
    lineChart(el.querySelector(".chart-conns"), [{ values: a.conns, color: COLORS.a }, { values: a.chans, color: COLORS.b }]);
    lineChart(el.querySelector(".chart-msgs"), [{ values: a.inRate, color: COLORS.a }, { values: a.outRate, color: COLORS.b }]);
    histogram(el.querySelector(".chart-latency"), st.latency_bounds, app.latency);
    el.querySelector(".latency-count").textContent = fmtNum(app.latency.count) + " deliveries";
  }
}

async function tick() {
  const status = document.getElementById("status");
  try {
    const res = await fetch("api/stats", { headers: token ? { Authorization: "Bearer " + token } : {}, cache: "no-store" });
    if (!res.ok) throw new Error("HTTP " + res.status);
    render(await res.json());
    updates++;
    document.body.dataset.updates = String(updates);
    status.textContent = "live · " + new Date().toLocaleTimeString();
    status.className = "badge ok";
  } catch (e) {
    status.textContent = "no data: " + e.message;
    status.className = "badge bad";
  }
}

tick();
setInterval(tick, 1000);
