// The batchgate console: every queue from the server's snapshots (one a
// second over server-sent events), rates from the change between two
// snapshots, and a uPlot chart per queue of its last five minutes.
"use strict";

const KEEP = 300; // seconds of history per chart
const history = new Map(); // queue -> { t: [], items: [], batch: [], depth: [], plot, last }
let writable = false; // a control token is configured: pause, resume, flush

function notice(text, ok) {
  const n = document.getElementById("notice");
  n.textContent = text;
  n.className = ok ? "ok" : "";
}

// A change goes through the control plane's token; the server says why
// it refuses one, and the page shows that.
function act(queue, action) {
  const token = document.getElementById("token").value.trim();
  fetch(`/ui/api/queues/${encodeURIComponent(queue)}/${action}`, {
    method: "POST",
    headers: token ? { Authorization: "Bearer " + token } : {},
  })
    .then((r) => r.json().then((body) => ({ ok: r.ok, body })))
    .then(({ ok, body }) => notice(ok ? `${queue}: ${action} done` : `refused: ${body.error}`, ok))
    .catch((e) => notice("refused: " + e));
}

function actions(queue) {
  const td = document.createElement("td");
  td.className = "actions";
  for (const action of ["pause", "resume", "flush"]) {
    const b = document.createElement("button");
    b.textContent = action;
    b.dataset.action = action;
    b.onclick = () => act(queue, action);
    td.appendChild(b);
  }
  return td;
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function fixed(x, digits) {
  return Number.isFinite(x) ? x.toFixed(digits) : "–";
}

function stateName(s) {
  return String(s || "").replace(/^QUEUE_STATE_/, "").toLowerCase();
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

function update(snapshot) {
  const now = snapshot.unix_ms / 1000;
  const body = document.querySelector("#queues tbody");
  body.textContent = "";
  for (const q of snapshot.queues || []) {
    const s = q.stats || {};
    const p = q.policy || {};
    let h = history.get(q.name);
    if (!h) {
      h = { t: [], items: [], batch: [], depth: [], plot: chartFor(q.name), last: null };
      history.set(q.name, h);
    }
    const items = (s.items_ok || 0) + (s.items_error || 0);
    let itemRate = NaN;
    let batchRate = NaN;
    if (h.last && now > h.last.t) {
      itemRate = (items - h.last.items) / (now - h.last.t);
      batchRate = ((s.batches || 0) - h.last.batches) / (now - h.last.t);
    }
    h.last = { t: now, items, batches: s.batches || 0 };
    const errors = (s.items_error || 0) + (s.items_timeout || 0) + (s.items_rejected || 0) + (s.items_shed || 0);
    const state = stateName(q.state);
    const row = document.createElement("tr");
    row.dataset.queue = q.name;
    row.append(
      cell(q.name),
      cell(state, "state-" + state),
      cell(p.mode || "size"),
      cell(String(s.depth || 0)),
      cell(String(s.in_flight_batches || 0)),
      cell(fixed(itemRate, 0), "rate"),
      cell(fixed(batchRate, 1)),
      cell(s.batch_size ? `${fixed(s.batch_size.p50, 0)} / ${fixed(s.batch_size.p99, 0)}` : "–"),
      cell(s.handler_ms ? fixed(s.handler_ms.p99, 2) : "–"),
      cell(s.item_ms ? fixed(s.item_ms.p99, 2) : "–"),
      cell(String(errors), errors > 0 ? "errors" : ""),
    );
    if (writable) row.appendChild(actions(q.name));
    body.appendChild(row);
    if (Number.isFinite(itemRate)) {
      h.t.push(now);
      h.items.push(itemRate);
      h.batch.push(s.batch_size ? s.batch_size.p50 : 0);
      h.depth.push(s.depth || 0);
      while (h.t.length > KEEP) {
        h.t.shift(); h.items.shift(); h.batch.shift(); h.depth.shift();
      }
      h.plot.setData([h.t, h.items, h.batch, h.depth]);
    }
  }
  const status = document.getElementById("status");
  status.textContent = "live · " + new Date(snapshot.unix_ms).toLocaleTimeString();
  status.className = "status";
}

function jobState(s) {
  return String(s || "").replace(/^JOB_STATE_/, "").toLowerCase();
}

// The newest jobs with a progress bar each, every two seconds.
function showJobs(body) {
  const section = document.getElementById("jobs-section");
  if (!body.enabled) {
    section.hidden = true;
    return false;
  }
  section.hidden = false;
  const rows = document.querySelector("#jobs tbody");
  rows.textContent = "";
  for (const job of body.jobs) {
    const c = job.counts || {};
    const total = c.total || 0;
    const done = (c.succeeded || 0) + (c.failed || 0) + (c.cancelled || 0) + (c.expired || 0);
    const pct = total > 0 ? Math.floor((100 * done) / total) : 100;
    const row = document.createElement("tr");
    row.dataset.job = job.id;
    const bar = document.createElement("td");
    const progress = document.createElement("progress");
    progress.max = 100;
    progress.value = pct;
    bar.appendChild(progress);
    bar.append(" " + pct + "%");
    bar.className = "progress";
    bar.dataset.percent = String(pct);
    row.append(
      cell(job.id),
      cell(job.queue),
      cell(jobState(job.state)),
      bar,
      cell(`${done} / ${total}`),
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

fetch("/ui/api/config")
  .then((r) => r.json())
  .then((c) => {
    writable = !!c.writable;
    document.getElementById("token-box").hidden = !writable;
    document.querySelector("#queues th.actions").hidden = !writable;
  })
  .catch(() => {})
  .finally(() => fetch("/ui/api/snapshot")
  .then((r) => r.json())
  .then(update)
  .catch(() => {})
  .finally(connect));
pollJobs();
