"""The dashboard page: one HTML document with inline CSS and JavaScript, no build step.

It polls ``/api/state`` (tree, metrics, jobs) every 500 ms and at once after a
supervisor event, and follows ``/api/events`` (server-sent events) for the stream.
"""

from __future__ import annotations

__all__ = ["PAGE"]

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>dspex-actors dashboard</title>
<style>
body{font:14px system-ui,sans-serif;margin:0;background:#f6f7f9;color:#222}
header{background:#24292f;color:#fff;padding:8px 16px;display:flex;gap:16px;align-items:center}
main{display:grid;grid-template-columns:1fr 1fr;gap:12px;padding:12px}
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px 12px;overflow:auto}
h2{font-size:15px;margin:4px 0 8px}
ul.tree{list-style:none;padding-left:16px;margin:0} ul.tree li{margin:2px 0}
.alive{color:#1a7f37}.dead,.restarting{color:#cf222e}.stopped{color:#888}
.crash{color:#cf222e;font-size:12px} .info{color:#666;font-size:12px}
table{border-collapse:collapse;width:100%} td,th{border-bottom:1px solid #eee;padding:2px 6px;text-align:left}
#events{font:12px monospace;max-height:320px;overflow:auto} #events div{white-space:nowrap}
button.kill{font-size:11px;margin-left:6px;color:#cf222e}
</style></head>
<body>
<header><b>dspex-actors</b><span id="system"></span><span id="sysstate"></span>
<span id="conn">connecting</span></header>
<main>
<section id="tree-view"><h2>Supervision tree</h2><div id="tree"></div></section>
<section><h2>LM endpoints</h2><table id="lms"><thead><tr><th>lm</th><th>req</th><th>req/s</th>
<th>p50 ms</th><th>p95 ms</th><th>errors</th><th>tokens in/out</th><th>breaker</th></tr></thead>
<tbody></tbody></table>
<h2>Programs in flight</h2><ul id="programs"></ul>
<h2>Services</h2><ul id="services"></ul></section>
<section><h2>Compile jobs</h2><div id="jobs"></div><h2>Evaluate runs</h2><div id="evals"></div></section>
<section><h2>Events</h2><input id="filter" placeholder="filter by topic, e.g. lm/request">
<div id="events"></div></section>
</main>
<script>
const ALLOW_CONTROL = __ALLOW_CONTROL__;
const token = new URLSearchParams(location.search).get("token");
const q = token ? "?token=" + encodeURIComponent(token) : "";
const esc = s => String(s ?? "").replace(/[&<>"]/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}[c]));
function node(n) {
  const kill = ALLOW_CONTROL && n.path.length > 1
    ? `<button class="kill" data-path='${esc(JSON.stringify(n.path))}'>kill</button>` : "";
  const crash = n.last_crash ? ` <span class="crash">last crash: ${esc(n.last_crash)}</span>` : "";
  return `<li data-node="${esc(n.path.join("/"))}"><b>${esc(n.id)}</b> ${esc(n.class)}
    <span class="${esc(n.state)}">${esc(n.state)}</span>
    restarts=<span class="restarts" data-restarts="${esc(n.path.join("/"))}">${n.restarts}</span>
    <span class="info">${esc(n.info)}</span>${crash}${kill}
    ${n.children.length ? `<ul class="tree">${n.children.map(node).join("")}</ul>` : ""}</li>`;
}
function chart(trials) {
  if (!trials.length) return "";
  const w = 300, h = 80, step = trials.length > 1 ? w / (trials.length - 1) : 0;
  const pts = trials.map((t, i) => `${(i * step).toFixed(1)},${(h - (t.score || 0) * h / 100).toFixed(1)}`);
  const dots = pts.map((p, i) => { const [x, y] = p.split(",");
    return `<circle class="candidate" cx="${x}" cy="${y}" r="3"><title>${trials[i].score}</title></circle>`; });
  return `<svg width="${w + 10}" height="${h + 10}" viewBox="-5 -5 ${w + 10} ${h + 10}">
    <polyline fill="none" stroke="#0969da" points="${pts.join(" ")}"/>${dots.join("")}</svg>`;
}
function render(s) {
  document.getElementById("system").textContent = s.system;
  document.getElementById("sysstate").textContent = s.state;
  document.getElementById("tree").innerHTML = `<ul class="tree">${node(s.tree)}</ul>`;
  document.querySelector("#lms tbody").innerHTML = Object.entries(s.lms).map(([k, m]) =>
    `<tr data-lm="${esc(k)}"><td>${esc(k)}</td><td>${m.requests}</td><td>${m.requests_per_s}</td>
     <td>${m.p50_ms ?? ""}</td><td>${m.p95_ms ?? ""}</td><td>${esc(JSON.stringify(m.errors))}</td>
     <td>${m.input_tokens}/${m.output_tokens}</td><td>${esc(m.breaker)}</td></tr>`).join("");
  document.getElementById("programs").innerHTML = s.programs.map(p => `<li>${esc(p.id)}: ${esc(p.info)}</li>`).join("");
  document.getElementById("services").innerHTML = s.services.map(p => `<li>${esc(p.id)} ${esc(p.state)}</li>`).join("");
  document.getElementById("jobs").innerHTML = s.jobs.map(j => `<div class="job" data-job="${esc(j.job)}">
    <b>${esc(j.job)}</b> ${esc(j.teleprompter)} ${esc(j.state)} ${j.done ?? ""}/${j.total ?? ""}
    best=<span class="best">${j.best_score ?? ""}</span><br>${chart(j.trials)}
    <table class="trials">${j.trials.map((t, i) => `<tr><td>#${i + 1}</td><td>${esc(t.label)}</td>
    <td class="score">${t.score}</td></tr>`).join("")}</table></div>`).join("");
  document.getElementById("evals").innerHTML = s.evaluations.map(e => `<div class="eval">${esc(e.run)}
    ${esc(e.program)}: ${e.done}/${e.total}, score ${e.score}%, errors ${e.errors}</div>`).join("");
}
let pending = false;
async function refresh() {
  if (pending) return; pending = true;
  try { const r = await fetch("/api/state" + q); if (r.ok) render(await r.json()); }
  finally { pending = false; }
}
const events = document.getElementById("events"), filter = document.getElementById("filter");
function showEvent(e) {
  const d = document.createElement("div");
  d.dataset.topic = e.topic;
  d.textContent = `${new Date(e.time * 1000).toISOString().slice(11, 23)} ${e.topic} ${JSON.stringify(e.data)}`;
  d.hidden = !!filter.value && !e.topic.includes(filter.value);
  events.prepend(d);
  while (events.childNodes.length > 300) events.removeChild(events.lastChild);
}
filter.addEventListener("input", () => { for (const d of events.children)
  d.hidden = !!filter.value && !d.dataset.topic.includes(filter.value); });
const source = new EventSource("/api/events" + q);
source.onopen = () => { document.getElementById("conn").textContent = "live"; };
source.onerror = () => { document.getElementById("conn").textContent = "reconnecting"; };
source.onmessage = m => { const e = JSON.parse(m.data); showEvent(e);
  if (e.topic.startsWith("supervisor/") || e.topic.startsWith("compile/")) refresh(); };
document.addEventListener("click", async ev => {
  const b = ev.target.closest("button.kill"); if (!b) return;
  await fetch("/api/kill" + q, {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({path: JSON.parse(b.dataset.path)})});
  refresh();
});
refresh(); setInterval(refresh, 500);
</script></body></html>
"""
