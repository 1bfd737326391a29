// The batchgate console: every queue from the server's snapshots (one a
// second over server-sent events), rates from the change between two
// snapshots, a uPlot chart per queue of its last five minutes, and the
// newest jobs. A queue's page and a job's page are in queue.js.
"use strict";

const KEEP = 300; // seconds of history per queue
const TRIGGERS = ["size", "bytes", "delay", "flush", "drain", "target", "cost", "pace"];

// What queue.js shares: the history of every queue, the last snapshot,
// whether changes are allowed, and the helpers.
const bg = {
  history: new Map(), // queue -> { t: [], series: {name: []}, last, plot }
  snapshot: null,
  writable: false, // a control token is configured
  onSnapshot: [], // called with each snapshot
  onRoute: [], // called with the route's parts on each change
};

window.bg = bg; // for the browser check

function notice(text, ok) {
  const n = document.getElementById("notice");
  n.textContent = text;
  n.className = ok ? "ok" : "";
}
bg.notice = notice;

function authHeaders() {
  const token = document.getElementById("token").value.trim();
  return token ? { Authorization: "Bearer " + token } : {};
}
bg.authHeaders = authHeaders;

// A change goes through the control plane's token; the server says why
// it refuses one, and the page shows that.
function post(path, what, body) {
  const headers = authHeaders();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  return fetch(path, { method: "POST", headers, body: body === undefined ? undefined : JSON.stringify(body) })
    .then((r) => r.json().then((answer) => ({ ok: r.ok, answer })))
    .then(({ ok, answer }) => {
      notice(ok ? `${what} done` : `refused: ${answer.error}`, ok);
      return ok ? answer : null;
    })
    .catch((e) => {
      notice("refused: " + e);
      return null;
    });
}
bg.post = post;

function act(queue, action) {
  return post(`/ui/api/queues/${encodeURIComponent(queue)}/${action}`, `${queue}: ${action}`);
}
bg.act = act;

function buttons(queue, list) {
  const box = document.createElement("span");
  for (const action of list) {
    const b = document.createElement("button");
    b.textContent = action;
    b.dataset.action = action;
    b.onclick = () => act(queue, action);
    box.appendChild(b);
  }
  return box;
}
bg.buttons = buttons;

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}
bg.cell = cell;

function fixed(x, digits) {
  return Number.isFinite(x) ? x.toFixed(digits) : "–";
}
bg.fixed = fixed;

function pair(p, digits) {
  return p ? `${fixed(p.p50, digits)} / ${fixed(p.p99, digits)}` : "–";
}
bg.pair = pair;

function stateName(s) {
  return String(s || "").replace(/^QUEUE_STATE_/, "").toLowerCase();
}

function queueLink(name) {
  const a = document.createElement("a");
  a.href = "#/queue/" + encodeURIComponent(name);
  a.textContent = name;
  const td = document.createElement("td");
  td.appendChild(a);
  return td;
}

function chartFor(name) {
  const div = document.createElement("div");
  div.className = "chart";
  div.dataset.queue = name;
  const title = document.createElement("h3");
  title.textContent = name;
  div.appendChild(title);
  document.getElementById("charts").appendChild(div);
  const opts = {
    width: 400,
    height: 160,
    series: [
      {},
      { label: "items/s", stroke: "#1565c0" },
      { label: "batch p50", stroke: "#2e7d32", scale: "size" },
      { label: "depth", stroke: "#b26a00", scale: "size" },
    ],
    axes: [{}, { label: "items/s" }, { side: 1, scale: "size", grid: { show: false } }],
  };
  return new uPlot(opts, [[], [], [], []], div);
}

// Keeps a queue's numbers of this snapshot: rates from the change since
// the last one, the rest as sent.
function remember(h, q, now) {
  const s = q.stats || {};
  const items = (s.items_ok || 0) + (s.items_error || 0);
  const triggers = s.batches_by_trigger || {};
  // Items that came in: those that ended since, plus the change in depth.
  const ended = items + (s.items_timeout || 0) + (s.items_cancelled || 0) + (s.items_rejected || 0) + (s.items_shed || 0);
  const point = {
    items,
    arrived: ended + (s.depth || 0),
    batches: s.batches || 0,
    shed: s.items_shed || 0,
    failed: (s.items_error || 0) + (s.items_timeout || 0),
    triggers,
  };
  const rates = {};
  if (h.last && now > h.last.t) {
    const dt = now - h.last.t;
    rates.items = (items - h.last.items) / dt;
    rates.arrived = Math.max(0, (point.arrived - h.last.arrived) / dt);
    rates.batches = (point.batches - h.last.batches) / dt;
    rates.shed = (point.shed - h.last.shed) / dt;
    for (const t of TRIGGERS) rates["trigger_" + t] = ((triggers[t] || 0) - (h.last.triggers[t] || 0)) / dt;
  }
  h.last = { t: now, ...point };
  h.rates = rates;
  if (!Number.isFinite(rates.items)) return;
  const learned = s.learned || {};
  const values = {
    ...rates,
    batch_p50: s.batch_size ? s.batch_size.p50 : 0,
    batch_mean: rates.batches > 0 ? rates.items / rates.batches : null,
    depth: s.depth || 0,
    wait_p50: s.wait_ms ? s.wait_ms.p50 : 0,
    wait_p99: s.wait_ms ? s.wait_ms.p99 : 0,
    handler_p50: s.handler_ms ? s.handler_ms.p50 : 0,
    handler_p99: s.handler_ms ? s.handler_ms.p99 : 0,
    item_p99: s.item_ms ? s.item_ms.p99 : 0,
    cost_p50: s.batch_cost ? s.batch_cost.p50 : 0,
    padding_p50: s.padding_ratio ? s.padding_ratio.p50 : null,
    batch_cap: learned.batch_cap || null,
  };
  h.t.push(now);
  for (const [k, v] of Object.entries(values)) {
    if (!h.series[k]) h.series[k] = h.t.slice(0, -1).map(() => null);
    h.series[k].push(v);
  }
  for (const k of Object.keys(h.series)) {
    if (h.series[k].length < h.t.length) h.series[k].push(null);
  }
  while (h.t.length > KEEP) {
    h.t.shift();
    for (const k of Object.keys(h.series)) h.series[k].shift();
  }
}

function update(snapshot) {
  bg.snapshot = snapshot;
  const now = snapshot.unix_ms / 1000;
  const body = document.querySelector("#queues tbody");
  body.textContent = "";
  for (const q of snapshot.queues || []) {
    const s = q.stats || {};
    const p = q.policy || {};
    let h = bg.history.get(q.name);
    if (!h) {
      h = { t: [], series: {}, last: null, rates: {}, plot: chartFor(q.name) };
      bg.history.set(q.name, h);
    }
    remember(h, q, now);
    const r = h.rates;
    const byCode = [
      ["error", s.items_error],
      ["timeout", s.items_timeout],
      ["rejected", s.items_rejected],
      ["shed", s.items_shed],
      ["cancelled", s.items_cancelled],
    ].filter(([, n]) => n > 0);
    const errors = byCode.reduce((a, [, n]) => a + n, 0);
    const state = stateName(q.state);
    const row = document.createElement("tr");
    row.dataset.queue = q.name;
    const mean = r.batches > 0 ? r.items / r.batches : NaN;
    row.append(
      queueLink(q.name),
      cell(state, "state-" + state),
      cell(p.mode || "size"),
      cell(String(s.depth || 0)),
      cell(String(s.in_flight_batches || 0)),
      cell(fixed(r.arrived, 0)),
      cell(fixed(r.items, 0), "rate"),
      cell(fixed(r.batches, 1)),
      cell(`${fixed(mean, 1)} / ${s.batch_size ? fixed(s.batch_size.p99, 0) : "–"}`),
      cell(pair(s.wait_ms, 2)),
      cell(pair(s.handler_ms, 2)),
      cell(byCode.length ? byCode.map(([k, n]) => `${n} ${k}`).join(" · ") : "0", errors > 0 ? "errors" : ""),
    );
    if (bg.writable) {
      const td = cell("", "actions");
      td.appendChild(buttons(q.name, ["pause", "resume", "flush"]));
      row.appendChild(td);
    }
    body.appendChild(row);
    if (h.t.length > 0) h.plot.setData([h.t, h.series.items, h.series.batch_p50, h.series.depth]);
  }
  const status = document.getElementById("status");
  status.textContent = "live · " + new Date(snapshot.unix_ms).toLocaleTimeString();
  status.className = "status";
  for (const f of bg.onSnapshot) f(snapshot);
}

function jobState(s) {
  return String(s || "").replace(/^JOB_STATE_/, "").toLowerCase();
}
bg.jobState = jobState;

function jobDone(c) {
  return (c.succeeded || 0) + (c.failed || 0) + (c.cancelled || 0) + (c.expired || 0);
}
bg.jobDone = jobDone;

const jobRates = new Map(); // job -> { t, done, rate }

// The newest jobs with a progress bar and a rate each, every two seconds.
function showJobs(body) {
  for (const s of document.querySelectorAll(".jobs-section")) s.hidden = !body.enabled;
  if (!body.enabled) return false;
  const rows = document.querySelector("#jobs tbody");
  rows.textContent = "";
  const now = Date.now() / 1000;
  for (const job of body.jobs) {
    const c = job.counts || {};
    const total = c.total || 0;
    const done = jobDone(c);
    const pct = total > 0 ? Math.floor((100 * done) / total) : 100;
    const before = jobRates.get(job.id);
    let rate = before ? before.rate : NaN;
    if (before && now > before.t) rate = (done - before.done) / (now - before.t);
    jobRates.set(job.id, { t: now, done, rate });
    const row = document.createElement("tr");
    row.dataset.job = job.id;
    const link = document.createElement("td");
    const a = document.createElement("a");
    a.href = "#/job/" + encodeURIComponent(job.id);
    a.textContent = job.id;
    link.appendChild(a);
    const bar = document.createElement("td");
    const progress = document.createElement("progress");
    progress.max = 100;
    progress.value = pct;
    bar.appendChild(progress);
    bar.append(" " + pct + "%");
    bar.className = "progress";
    bar.dataset.percent = String(pct);
    row.append(
      link,
      cell(job.queue),
      cell(jobState(job.state)),
      bar,
      cell(`${done} / ${total}`),
      cell(fixed(rate, 0)),
      cell(String(c.failed || 0), c.failed ? "errors" : ""),
      cell(new Date(job.created_unix_ms).toLocaleTimeString()),
    );
    rows.appendChild(row);
  }
  return true;
}

function pollJobs() {
  fetch("/ui/api/jobs")
    .then((r) => (r.ok ? r.json() : { enabled: true, jobs: [] }))
    .then((body) => {
      if (showJobs(body)) setTimeout(pollJobs, 2000);
    })
    .catch(() => setTimeout(pollJobs, 2000));
}

function connect() {
  const events = new EventSource("/ui/api/events");
  events.onmessage = (e) => update(JSON.parse(e.data));
  events.onerror = () => {
    const status = document.getElementById("status");
    status.textContent = "disconnected, retrying…";
    status.className = "status down";
  };
}

// `#/` the overview, `#/queue/NAME` a queue, `#/job/ID` a job.
function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const view = parts[0] === "queue" && parts[1] ? "queue-view" : parts[0] === "job" && parts[1] ? "job-view" : "overview";
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== view;
  for (const f of bg.onRoute) f(parts);
}
window.addEventListener("hashchange", route);

fetch("/ui/api/config")
  .then((r) => r.json())
  .then((c) => {
    bg.writable = !!c.writable;
    document.getElementById("token-box").hidden = !bg.writable;
    document.querySelector("#queues th.actions").hidden = !bg.writable;
  })
  .catch(() => {})
  .finally(() => {
    route();
    fetch("/ui/api/snapshot")
      .then((r) => r.json())
      .then(update)
      .catch(() => {})
      .finally(connect);
  });
pollJobs();
