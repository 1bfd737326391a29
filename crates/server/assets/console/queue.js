// A queue's page (#/queue/NAME): its charts from the history app.js
// keeps, its batch keys, endpoints and policy with a form that sends a
// change as UpdateQueue; and a job's page (#/job/ID): counts, first
// errors, cancel and the results as a download.
"use strict";

const COLORS = ["#1565c0", "#2e7d32", "#b26a00", "#6a1b9a", "#c62828", "#00838f", "#5d4037", "#455a64"];
const page = { queue: null, charts: [], endpoints: new Map(), job: null, jobTimer: null };
let fields = []; // the policy's fields: name, pb, kind, help

fetch("/ui/api/fields")
  .then((r) => r.json())
  .then((list) => {
    fields = list;
    const select = document.getElementById("policy-field");
    for (const f of fields) {
      const o = document.createElement("option");
      o.value = f.pb;
      o.textContent = f.pb;
      select.appendChild(o);
    }
    select.onchange();
  })
  .catch(() => {});

document.getElementById("policy-field").onchange = () => {
  const f = fields.find((x) => x.pb === document.getElementById("policy-field").value);
  document.getElementById("policy-help").textContent = f ? f.help : "";
};

// A form value as QueuePolicy JSON carries it.
function policyValue(kind, text) {
  const list = () => text.split(",").map((s) => s.trim()).filter((s) => s !== "");
  const whole = (s) => {
    if (!/^\d+$/.test(s)) throw new Error(`${JSON.stringify(s)} is not a whole number`);
    return Number(s);
  };
  switch (kind) {
    case "flag":
      if (text !== "true" && text !== "false") throw new Error("true or false");
      return text === "true";
    case "mode": case "text": case "name":
      return text;
    case "sizes":
      return { sizes: list().map(whole) };
    case "bounds":
      return { bounds: list().map(whole) };
    case "weights": {
      const weights = {};
      for (const pair of list()) {
        const i = pair.lastIndexOf("=");
        if (i < 1) throw new Error(`${JSON.stringify(pair)} is not KEY=WEIGHT`);
        weights[pair.slice(0, i).trim()] = whole(pair.slice(i + 1).trim());
      }
      return { weights };
    }
    default:
      return whole(text.trim());
  }
}

document.getElementById("policy-form").onsubmit = (e) => {
  e.preventDefault();
  const pb = document.getElementById("policy-field").value;
  const f = fields.find((x) => x.pb === pb);
  let value;
  try {
    value = policyValue(f ? f.kind : "text", document.getElementById("policy-value").value);
  } catch (err) {
    bg.notice(`refused: ${pb}: ${err.message}`);
    return;
  }
  bg.post(`/ui/api/queues/${encodeURIComponent(page.queue)}/policy`, `${page.queue}: ${pb}`, { [pb]: value });
};

// An action that asks first, in the page.
function confirmed(box, question, yes, run) {
  box.textContent = "";
  const q = document.createElement("span");
  q.className = "confirm";
  q.textContent = question + " ";
  const ok = document.createElement("button");
  ok.textContent = yes;
  ok.dataset.action = "confirm";
  ok.onclick = () => {
    box.textContent = "";
    run();
  };
  const no = document.createElement("button");
  no.textContent = "no";
  no.onclick = () => (box.textContent = "");
  q.append(ok, no);
  box.appendChild(q);
}

function chart(title, series, opts) {
  const div = document.createElement("div");
  div.className = "chart";
  div.dataset.chart = title;
  const h = document.createElement("h3");
  h.textContent = title;
  div.appendChild(h);
  document.getElementById("queue-charts").appendChild(div);
  const plot = new uPlot(
    { width: 420, height: 180, series: [opts && opts.x ? opts.x : {}, ...series], ...(opts && opts.uplot) },
    [[], ...series.map(() => [])],
    div,
  );
  return plot;
}

function line(label, i, scale) {
  return { label, stroke: COLORS[i % COLORS.length], ...(scale ? { scale } : {}) };
}

function openQueue(name) {
  closeQueue();
  page.queue = name;
  document.getElementById("queue-title").textContent = "Queue " + name;
  const actions = document.getElementById("queue-actions");
  actions.textContent = "";
  if (bg.writable) {
    actions.appendChild(bg.buttons(name, ["pause", "resume", "flush"]));
    const drain = document.createElement("button");
    drain.textContent = "drain…";
    drain.dataset.action = "drain";
    const ask = document.createElement("span");
    drain.onclick = () =>
      confirmed(ask, `Drain ${name}? It refuses new items and sends what it holds.`, "yes, drain", () => bg.act(name, "drain"));
    actions.append(drain, ask);
  }
  const bars = uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({ size: [0.7, 60] }) : undefined;
  page.charts = [
    {
      plot: chart("Batch sizes (recent batches)", [{ label: "batches", stroke: COLORS[0], fill: "#1565c055", paths: bars }], {
        x: { label: "size ≤" },
        uplot: { scales: { x: { time: false } }, axes: [{ values: (u, ticks) => ticks.map((t) => (Number.isInteger(t) ? String(2 ** t) : "")) }, {}] },
      }),
      data: (q) => {
        const hist = (q.stats && q.stats.batch_size_histogram) || [];
        return [hist.map((b) => Math.log2(b.le)), hist.map((b) => b.batches)];
      },
    },
    {
      plot: chart("What closes batches (batches/s)", TRIGGERS.map((t, i) => line(t, i))),
      data: (q, h) => [h.t, ...TRIGGERS.map((t) => h.series["trigger_" + t] || [])],
    },
    {
      plot: chart("Queue wait vs handler time (ms)", [
        line("wait p50", 0), line("wait p99", 1), line("handler p50", 2), line("handler p99", 3), line("item p99", 4),
      ]),
      data: (q, h) => [h.t, h.series.wait_p50, h.series.wait_p99, h.series.handler_p50, h.series.handler_p99, h.series.item_p99],
    },
    {
      plot: chart("Batch size and cap; shed items/s", [line("batch mean", 0), line("learned cap", 1), line("shed/s", 4, "shed")], {
        uplot: { axes: [{}, {}, { side: 1, scale: "shed", grid: { show: false } }] },
      }),
      data: (q, h) => [h.t, h.series.batch_mean, h.series.batch_cap, h.series.shed],
    },
    {
      plot: chart("Target mode's fit: handler ms by batch size", [line("learned", 0), line("batch cap", 4)], {
        x: { label: "batch size" },
        uplot: { scales: { x: { time: false } } },
      }),
      hideEmpty: true,
      data: (q) => {
        const l = q.stats && q.stats.learned;
        const p = q.policy || {};
        if (!l || !l.samples) return [[], [], []];
        const top = Math.max(p.max_batch_size || 1, l.batch_cap || 1);
        const xs = [...new Set(Array.from({ length: 33 }, (_, i) => Math.max(1, Math.round((i * top) / 32))))];
        const ms = (n) => (l.base_us + (l.per_item_ns * n) / 1000) / 1000;
        return [xs, xs.map(ms), xs.map((n) => (n <= l.batch_cap ? ms(n) : null))];
      },
    },
    {
      plot: chart("Cost and padding (recent p50)", [line("batch cost", 0), line("padding ratio", 2, "ratio")], {
        uplot: { axes: [{}, {}, { side: 1, scale: "ratio", grid: { show: false } }] },
      }),
      data: (q, h) => [h.t, h.series.cost_p50, h.series.padding_p50],
    },
  ];
  if (bg.snapshot) showQueue(bg.snapshot);
}

function closeQueue() {
  for (const c of page.charts) c.plot.destroy();
  document.getElementById("queue-charts").textContent = "";
  page.charts = [];
  page.queue = null;
  page.endpoints.clear();
}

function summary(q) {
  const s = q.stats || {};
  const l = s.learned;
  const parts = [
    `state ${String(q.state || "").replace(/^QUEUE_STATE_/, "").toLowerCase()}`,
    `handler ${(q.handler && q.handler.kind) || "?"}`,
    `depth ${s.depth || 0}`,
    `in flight ${s.in_flight_batches || 0}`,
    `batches ${s.batches || 0}`,
    `items ok ${s.items_ok || 0}`,
    `errors ${s.items_error || 0}`,
    `timeouts ${s.items_timeout || 0}`,
    `rejected ${s.items_rejected || 0}`,
    `shed ${s.items_shed || 0}`,
  ];
  if (l) {
    parts.push(
      `fit: a batch of n takes ${bg.fixed(l.base_us / 1000, 2)} ms + n × ${bg.fixed(l.per_item_ns / 1000, 1)} µs (${l.samples} batches)`,
      `arrivals ${l.arrivals_per_sec}/s`,
      `batch cap ${l.batch_cap}`,
    );
    if (l.parallelism) parts.push(`paced by parallelism ${l.parallelism}${l.parallelism_learned ? " (learned)" : ""}, backend idle ${bg.fixed(100 * l.backend_idle, 0)}%`);
  }
  return parts.join(" · ");
}

function showQueue(snapshot) {
  if (!page.queue) return;
  const q = (snapshot.queues || []).find((x) => x.name === page.queue);
  const h = bg.history.get(page.queue);
  if (!q || !h) {
    document.getElementById("queue-summary").textContent = "no such queue (now)";
    return;
  }
  document.getElementById("queue-summary").textContent = summary(q);
  for (const c of page.charts) {
    const data = c.data(q, h);
    // A chart with nothing to show (no fit outside target mode) hides.
    c.plot.root.parentElement.hidden = data[0].length === 0 && c.hideEmpty;
    c.plot.setData(data);
  }
  // Batch keys' shares.
  const keys = document.querySelector("#queue-keys tbody");
  keys.textContent = "";
  const shares = (q.stats && q.stats.key_shares) || [];
  document.getElementById("queue-keys-section").hidden = shares.length === 0;
  const total = shares.reduce((a, k) => a + k.items, 0);
  for (const k of shares) {
    const row = document.createElement("tr");
    const bar = document.createElement("td");
    const p = document.createElement("progress");
    p.max = total;
    p.value = k.items;
    bar.append(p, ` ${bg.fixed((100 * k.items) / total, 1)}%`);
    row.append(bg.cell(k.key), bg.cell(String(k.items)), bar);
    keys.appendChild(row);
  }
  // Endpoints.
  const eps = q.endpoints || [];
  document.getElementById("queue-endpoints-section").hidden = eps.length === 0;
  const body = document.querySelector("#queue-endpoints tbody");
  body.textContent = "";
  const now = snapshot.unix_ms / 1000;
  for (const e of eps) {
    const before = page.endpoints.get(e.address);
    const failures = before && now > before.t ? (e.batches_failed - before.failed) / (now - before.t) : NaN;
    page.endpoints.set(e.address, { t: now, failed: e.batches_failed });
    const ejected = e.ejected_for_ms > 0;
    const row = document.createElement("tr");
    row.dataset.endpoint = e.address;
    row.append(
      bg.cell(e.address),
      bg.cell(ejected ? `ejected ${bg.fixed(e.ejected_for_ms / 1000, 1)} s` : "ok", ejected ? "errors" : ""),
      bg.cell(`${e.in_flight} / ${e.max_in_flight}`),
      bg.cell(bg.fixed(e.rtt_ms, 2)),
      bg.cell(String(e.batches_ok || 0)),
      bg.cell(String(e.batches_failed || 0), e.batches_failed ? "errors" : ""),
      bg.cell(bg.fixed(failures, 1)),
      bg.cell(String(e.ejections || 0)),
      bg.cell(e.lease_remaining_ms ? `${bg.fixed(e.lease_remaining_ms / 1000, 0)} s` : e.configured ? "configured" : "none"),
      bg.cell(e.parallelism ? String(e.parallelism) : "–"),
    );
    body.appendChild(row);
  }
  // The policy, every field.
  const policy = document.querySelector("#queue-policy tbody");
  policy.textContent = "";
  for (const f of fields) {
    const v = (q.policy || {})[f.pb];
    let text = v === undefined || v === null ? "" : typeof v === "object" ? JSON.stringify(Object.values(v)[0]) : String(v);
    const row = document.createElement("tr");
    row.dataset.field = f.pb;
    row.append(bg.cell(f.pb), bg.cell(text, "value"), bg.cell(f.help, "help"));
    policy.appendChild(row);
  }
}

function showJob() {
  const id = page.job;
  fetch(`/ui/api/jobs/${encodeURIComponent(id)}`)
    .then((r) => r.json().then((body) => ({ ok: r.ok, body })))
    .then(({ ok, body }) => {
      if (page.job !== id) return;
      if (!ok) {
        document.getElementById("job-title").textContent = `Job ${id}: ${body.error}`;
        return;
      }
      const job = body.job;
      const c = job.counts || {};
      document.getElementById("job-title").textContent = `Job ${id} (${job.queue}): ${bg.jobState(job.state)}`;
      const counts = document.querySelector("#job-counts tbody");
      counts.textContent = "";
      const done = bg.jobDone(c);
      for (const [k, v] of [["total", c.total || 0], ["done", done], ["succeeded", c.succeeded || 0], ["failed", c.failed || 0], ["cancelled", c.cancelled || 0], ["expired", c.expired || 0]]) {
        const row = document.createElement("tr");
        row.dataset.count = k;
        row.append(bg.cell(k), bg.cell(String(v)));
        counts.appendChild(row);
      }
      const errors = document.querySelector("#job-errors tbody");
      errors.textContent = "";
      for (const e of body.errors) {
        const row = document.createElement("tr");
        row.append(bg.cell(e.custom_id), bg.cell(e.error ? e.error.code : ""), bg.cell(e.error ? e.error.message : ""));
        errors.appendChild(row);
      }
    })
    .catch(() => {})
    .finally(() => {
      if (page.job === id) page.jobTimer = setTimeout(showJob, 2000);
    });
}

function download(id) {
  fetch(`/ui/api/jobs/${encodeURIComponent(id)}/results`, { headers: bg.authHeaders() })
    .then((r) => (r.ok ? r.blob() : r.json().then((b) => Promise.reject(new Error(b.error)))))
    .then((blob) => {
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = `${id}.jsonl`;
      document.body.appendChild(a);
      a.click();
      a.remove();
      bg.notice(`${id}: results downloaded`, true);
    })
    .catch((e) => bg.notice(`refused: ${e.message}`));
}

function openJob(id) {
  clearTimeout(page.jobTimer);
  page.job = id;
  const actions = document.getElementById("job-actions");
  actions.textContent = "";
  const get = document.createElement("button");
  get.textContent = "download results";
  get.dataset.action = "download";
  get.onclick = () => download(id);
  actions.appendChild(get);
  if (bg.writable) {
    const cancel = document.createElement("button");
    cancel.textContent = "cancel job…";
    cancel.dataset.action = "cancel";
    const ask = document.createElement("span");
    cancel.onclick = () =>
      confirmed(ask, `Cancel job ${id}? Its items not yet run will not run.`, "yes, cancel it", () =>
        bg.post(`/ui/api/jobs/${encodeURIComponent(id)}/cancel`, `${id}: cancel`),
      );
    actions.append(cancel, ask);
  }
  showJob();
}

bg.onSnapshot.push(showQueue);
bg.onRoute.push((parts) => {
  if (parts[0] === "queue" && parts[1]) {
    if (page.queue !== parts[1]) openQueue(parts[1]);
  } else {
    closeQueue();
  }
  if (parts[0] === "job" && parts[1]) {
    if (page.job !== parts[1]) openJob(parts[1]);
  } else {
    page.job = null;
    clearTimeout(page.jobTimer);
  }
});
