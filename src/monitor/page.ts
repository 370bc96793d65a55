/**
 * The monitor's one web page: HTML, CSS and a little plain JavaScript in a single string, no
 * framework and no build step. It listens to `/events`, redraws tables in place (rows keep
 * their place, so a kill button does not move under the pointer), draws the two sparklines as
 * inline SVG, and kills through `POST /api/processes/ID/kill` with the monitor's token.
 *
 * With recordings (`startMonitor({ recordings })`) it also lists them (`GET /api/recordings`,
 * with the token), puts a replay button beside each live process that has one and lists the
 * recordings of ended sessions, and replays one in the page with asciinema's player, which the
 * monitor serves itself (`/assets/…`): the page fetches the file with the token and hands the
 * player its text, so the player never fetches anything itself.
 *
 * Everything the program supplies (process names come from clients: a listener's name line)
 * reaches the document as text (`textContent`), never as markup.
 *
 * @module
 */
import { PLAYER_SCRIPT_PATH, PLAYER_STYLE_PATH } from "./player.js";

/** What a page is made for: the monitor's token and where it listens. */
export interface PageOptions {
  /** The monitor's token (for kills and recordings), embedded in a `<meta>` element. */
  readonly token: string;
  /** This response's Content-Security-Policy nonce for the inline style and script. */
  readonly nonce: string;
  /** Where the monitor listens (`127.0.0.1:9000`), shown in the title. */
  readonly where: string;
  /** Whether the monitor serves recordings: the page then loads the player and offers replays. */
  readonly recordings?: boolean;
}

const STYLE = `
:root{--bg:#f6f7f9;--panel:#fff;--ink:#1c2430;--muted:#6b7685;--line:#e3e7ec;--accent:#2f6fde;--accent-soft:rgba(47,111,222,.13);
--ok:#1f8a4c;--warn:#b7791f;--bad:#c53030;--bad-soft:rgba(197,48,48,.1);color-scheme:light dark}
@media (prefers-color-scheme:dark){:root{--bg:#11151b;--panel:#181e26;--ink:#e4e8ee;--muted:#8b95a3;--line:#27303b;--accent:#6aa0ff;
--accent-soft:rgba(106,160,255,.16);--ok:#48bb78;--warn:#ecc94b;--bad:#fc8181;--bad-soft:rgba(252,129,129,.12)}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
header{display:flex;align-items:center;gap:14px;padding:14px 28px;background:var(--panel);border-bottom:1px solid var(--line)}
h1{font-size:17px;margin:0;font-weight:650;letter-spacing:-.01em}h1 span{color:var(--muted);font-weight:450}
#where{font:12.5px ui-monospace,SFMono-Regular,Menlo,monospace;color:var(--muted)}
#status{margin-left:auto;display:flex;align-items:center;gap:7px;font-size:12.5px;color:var(--muted)}
#status::before{content:"";width:8px;height:8px;border-radius:50%;background:var(--warn)}
#status.live::before{background:var(--ok);box-shadow:0 0 0 3px rgba(72,187,120,.18)}#status.down::before{background:var(--bad)}
main{padding:22px 28px 32px;max-width:1280px;margin:0 auto}
.cards{display:grid;grid-template-columns:repeat(4,minmax(0,1fr));gap:14px;margin-bottom:22px}
.card{background:var(--panel);border:1px solid var(--line);border-radius:10px;padding:12px 14px 10px}
.label{font-size:12px;color:var(--muted);text-transform:uppercase;letter-spacing:.05em}
.value{font-size:24px;font-weight:600;font-variant-numeric:tabular-nums;margin:2px 0 4px}
.card svg{display:block;width:100%;height:46px}.spark-line{fill:none;stroke:var(--accent);stroke-width:1.6}.spark-area{fill:var(--accent-soft)}
.spark-base{stroke:var(--line);stroke-width:1;stroke-dasharray:3 3}
.sub{font-size:12.5px;color:var(--muted);line-height:1.7}.sub b{color:var(--ink);font-weight:600;font-variant-numeric:tabular-nums}
.scale{display:flex;justify-content:space-between;font-size:11px;color:var(--muted);margin-top:3px}
section{background:var(--panel);border:1px solid var(--line);border-radius:10px;margin-bottom:18px;overflow:hidden}
h2{font-size:13.5px;margin:0;padding:11px 16px;border-bottom:1px solid var(--line);font-weight:600;display:flex;gap:8px;align-items:baseline}
h2 small{color:var(--muted);font-weight:450}
.scroll{overflow-x:auto}
table{width:100%;border-collapse:collapse}
th,td{padding:7px 16px;text-align:left;white-space:nowrap}
th{font-size:11.5px;font-weight:600;color:var(--muted);text-transform:uppercase;letter-spacing:.04em;background:var(--bg)}
td{border-top:1px solid var(--line)}tbody tr:first-child td{border-top:0}tbody tr:hover{background:var(--bg)}
.num{text-align:right;font-variant-numeric:tabular-nums}.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12.5px}
.muted{color:var(--muted)}.empty{padding:14px 16px;color:var(--muted);margin:0}
.pill{display:inline-block;padding:1px 8px;border-radius:999px;font-size:11.5px;background:var(--bg);border:1px solid var(--line);color:var(--muted)}
.pill.server{color:var(--accent);border-color:var(--accent-soft);background:var(--accent-soft)}
.pill.connection{color:var(--ok)}.pill.monitor{color:var(--warn)}
.state.running{color:var(--ok)}.state.killed,.state.failed{color:var(--bad)}
button.kill{font:inherit;font-size:12px;padding:3px 11px;border-radius:6px;border:1px solid var(--line);background:var(--panel);color:var(--bad);cursor:pointer}
button.kill:hover{border-color:var(--bad);background:var(--bad-soft)}button.kill.armed{background:var(--bad);border-color:var(--bad);color:#fff}
button.kill:disabled{opacity:.55;cursor:default}
button.replay,button.close{font:inherit;font-size:12px;padding:3px 11px;border-radius:6px;border:1px solid var(--line);background:var(--panel);color:var(--accent);cursor:pointer}
button.replay:hover,button.close:hover{border-color:var(--accent);background:var(--accent-soft)}button.replay:disabled{opacity:.55;cursor:default}
button.close{margin-left:auto;color:var(--muted)}
#player{padding:14px 16px;background:var(--bg)}#player>div{max-width:960px;margin:0 auto}
#toast{position:fixed;bottom:18px;left:50%;transform:translateX(-50%);background:var(--ink);color:var(--panel);padding:8px 14px;border-radius:8px;
font-size:13px;opacity:0;transition:opacity .2s;pointer-events:none}#toast.show{opacity:.94}
footer{color:var(--muted);font-size:12px;text-align:center;padding-bottom:24px}
@media (max-width:900px){.cards{grid-template-columns:repeat(2,minmax(0,1fr))}main{padding:16px}header{padding:12px 16px}th,td{padding:6px 10px}}
`;

const SCRIPT = `
"use strict";
const token = document.querySelector('meta[name="confab-token"]').content;
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const WINDOW_MS = 60000;
const RECORDINGS = document.body.dataset.recordings === "1";
// A recording begins as its session does; this much clock slack still counts it as the session's.
const RECORDING_SLACK_MS = 2000;
const ENDED_SHOWN = 50;
let recordings = []; // newest first, as /api/recordings lists them
let lastSnap = null;
let maxIdSeen = 0;
let player = null;

function bytes(n) {
  if (n === null || n === undefined) return "";
  if (n < 1024) return n + " B";
  const units = ["KB", "MB", "GB", "TB"];
  let v = n / 1024, i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (v < 10 ? v.toFixed(1) : Math.round(v)) + " " + units[i];
}
function age(ms) {
  const s = Math.floor(ms / 1000);
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
  if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
  return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
}
function setText(el, text) { if (el.textContent !== text) el.textContent = text; }
function cells(tr, classes) {
  if (tr.cells.length === 0) for (const c of classes) { const td = tr.insertCell(); if (c) td.className = c; }
  return tr.cells;
}
// Updates rows in place, keyed, in the order given: unchanged rows keep their elements.
function sync(table, items, keyOf, fill) {
  const body = table.tBodies[0];
  const old = new Map();
  for (const tr of Array.from(body.rows)) old.set(tr.dataset.key, tr);
  let prev = null;
  for (const item of items) {
    const key = String(keyOf(item));
    let tr = old.get(key);
    if (tr) old.delete(key); else { tr = document.createElement("tr"); tr.dataset.key = key; }
    fill(tr, item);
    const next = prev ? prev.nextSibling : body.firstChild;
    if (next !== tr) body.insertBefore(tr, next);
    prev = tr;
  }
  for (const tr of old.values()) tr.remove();
  table.hidden = items.length === 0;
  table.closest("section").querySelector(".empty").hidden = items.length !== 0;
}

function renderServers(snap) {
  sync($("servers"), snap.servers, (s) => s.id, (tr, s) => {
    const c = cells(tr, ["num muted", "", "mono", "num", "num", "num", "num", "num", "num"]);
    const k = s.counters;
    setText(c[0], "#" + s.id); setText(c[1], s.name); setText(c[2], s.listening);
    setText(c[3], String(k.active)); setText(c[4], String(k.accepted)); setText(c[5], String(k.refused));
    setText(c[6], bytes(k.bytesIn)); setText(c[7], bytes(k.bytesOut)); setText(c[8], String(k.errors));
  });
}

// The recording of a live process: its id, begun once it had started. Ids restart with the
// program, so an earlier run's file with the same id, older than the process, is not its.
function recordingOf(p, snap) {
  const started = snap.time - p.age - RECORDING_SLACK_MS;
  return recordings.find((r) => r.id === p.id && Date.parse(r.startedAt) >= started);
}

// A cell with a replay button for recording r, or empty when there is none.
function replayCell(td, r, label) {
  if (!r) { if (td.firstChild) td.textContent = ""; return; }
  if (!td.firstChild) {
    const b = document.createElement("button");
    b.type = "button"; b.className = "replay"; b.textContent = "Replay";
    td.append(b);
  }
  const b = td.firstChild;
  b.dataset.replay = r.file;
  b.setAttribute("aria-label", label);
}

// Renders the process rows; returns the files of the recordings that belong to them.
function renderProcesses(snap) {
  const claimed = new Set();
  const classes = ["num muted", "", "", "", "", "num", "muted", "mono", "num", "num", "muted"];
  if (RECORDINGS) classes.push("num");
  classes.push("num");
  sync($("processes"), snap.processes, (p) => p.id, (tr, p) => {
    const c = cells(tr, classes);
    tr.dataset.id = String(p.id); tr.dataset.name = p.name;
    setText(c[0], "#" + p.id);
    setText(c[1], p.name);
    setText(c[2], p.user ?? "");
    if (!c[3].firstChild) c[3].append(document.createElement("span"));
    const pill = c[3].firstChild;
    const kind = p.id === snap.monitor ? "this monitor" : p.kind;
    pill.className = "pill " + p.kind; setText(pill, kind);
    c[4].className = "state " + p.state; setText(c[4], p.state);
    setText(c[5], age(p.age));
    setText(c[6], p.parent === null ? "" : "#" + p.parent + " " + p.parentName);
    setText(c[7], p.peer ?? "");
    setText(c[8], bytes(p.bytesIn)); setText(c[9], bytes(p.bytesOut));
    setText(c[10], p.waiting ?? "");
    if (RECORDINGS) {
      const r = recordingOf(p, snap);
      if (r) claimed.add(r.file);
      replayCell(c[11], r, "Replay the recording of process " + p.id + " " + p.name);
    }
    const k = c[c.length - 1];
    if (!k.firstChild) {
      const b = document.createElement("button");
      b.type = "button"; b.className = "kill"; b.textContent = "Kill";
      k.append(b);
    }
    const b = k.firstChild;
    b.dataset.kill = String(p.id); b.dataset.name = p.name;
    b.setAttribute("aria-label", "Kill process " + p.id + " " + p.name);
  });
  setText($("omitted"), snap.omitted > 0 ? "(" + snap.omitted + " more not shown)" : "");
  return claimed;
}

// The recordings no live row claimed: sessions that have ended (the newest few).
function renderRecordings(claimed) {
  const ended = recordings.filter((r) => !claimed.has(r.file));
  sync($("recordings"), ended.slice(0, ENDED_SHOWN), (r) => r.file, (tr, r) => {
    const c = cells(tr, ["muted", "num muted", "", "num", "num"]);
    tr.dataset.file = r.file;
    setText(c[0], new Date(r.startedAt).toLocaleString());
    setText(c[1], "#" + r.id); setText(c[2], r.name); setText(c[3], bytes(r.bytes));
    replayCell(c[4], r, "Replay the recording " + r.file);
  });
  setText($("recordings-more"), ended.length > ENDED_SHOWN ? "(" + (ended.length - ENDED_SHOWN) + " older not shown)" : "");
}

let recordingsLoading = false;
async function loadRecordings() {
  if (recordingsLoading) return;
  recordingsLoading = true;
  try {
    const r = await fetch("/api/recordings", { headers: { "X-Confab-Token": token }, cache: "no-store" });
    if (r.ok) { recordings = await r.json(); if (lastSnap) render(lastSnap); }
  } catch (e) {
    // The next poll tries again; the event stream's status already tells of a monitor gone.
  } finally { recordingsLoading = false; }
}

function closePlayer() {
  if (player) { player.dispose(); player = null; }
  $("player").textContent = "";
  $("replay").hidden = true;
}

function play(file, text) {
  closePlayer();
  if (typeof AsciinemaPlayer === "undefined") { toast("The player did not load; reload the page"); return; }
  $("replay").hidden = false;
  setText($("replay-title"), file);
  // In a box of its own: the player fits its width, and the box keeps it to a readable size.
  const box = document.createElement("div");
  $("player").append(box);
  player = AsciinemaPlayer.create({ data: text }, box, { autoPlay: true, fit: "width", idleTimeLimit: 2 });
  $("replay").scrollIntoView({ block: "nearest" });
}

function renderConnections(snap) {
  sync($("connections"), snap.connections, (c) => c.process, (tr, x) => {
    const c = cells(tr, ["num muted", "", "", "mono", "mono", "num", "num", "num"]);
    setText(c[0], "#" + x.process); setText(c[1], x.processName); setText(c[2], x.server ?? "");
    setText(c[3], x.peer); setText(c[4], x.local);
    setText(c[5], bytes(x.bytesIn)); setText(c[6], bytes(x.bytesOut)); setText(c[7], age(x.age));
  });
}

function spark(svg, samples, now, pick) {
  const W = 300, H = 46;
  svg.setAttribute("viewBox", "0 0 " + W + " " + H);
  svg.setAttribute("preserveAspectRatio", "none");
  const points = samples.filter((s) => now - s.time <= WINDOW_MS);
  let max = 1;
  for (const s of points) max = Math.max(max, pick(s));
  const xy = points.map((s) => [((s.time - (now - WINDOW_MS)) / WINDOW_MS) * W, H - 2 - (pick(s) / max) * (H - 6)]);
  const line = xy.map((p, i) => (i ? "L" : "M") + p[0].toFixed(1) + " " + p[1].toFixed(1)).join(" ");
  const area = xy.length ? line + " L" + xy[xy.length - 1][0].toFixed(1) + " " + H + " L" + xy[0][0].toFixed(1) + " " + H + " Z" : "";
  let a = svg.querySelector(".spark-area"), l = svg.querySelector(".spark-line");
  if (!a) {
    const base = document.createElementNS(SVG, "line");
    base.setAttribute("class", "spark-base"); base.setAttribute("vector-effect", "non-scaling-stroke");
    base.setAttribute("x1", "0"); base.setAttribute("x2", String(W)); base.setAttribute("y1", String(H - 1)); base.setAttribute("y2", String(H - 1));
    svg.append(base);
    a = document.createElementNS(SVG, "path"); a.setAttribute("class", "spark-area");
    l = document.createElementNS(SVG, "path"); l.setAttribute("class", "spark-line");
    l.setAttribute("vector-effect", "non-scaling-stroke");
    svg.append(a, l);
  }
  a.setAttribute("d", area); l.setAttribute("d", line);
  return max;
}

function render(snap) {
  const h = snap.history, last = h[h.length - 1];
  setText($("conn-now"), String(last ? last.connections : 0));
  setText($("rate-now"), bytes(last ? last.bytesPerSecond : 0) + "/s");
  setText($("proc-count"), String(snap.processes.length + snap.omitted));
  setText($("server-count"), String(snap.servers.length));
  const kinds = {};
  for (const p of snap.processes) kinds[p.kind] = (kinds[p.kind] || 0) + 1;
  const n = (count, one, many) => [count, count === 1 ? one : many];
  sub($("proc-kinds"), [n(kinds.server || 0, "server", "servers"), n(kinds.connection || 0, "connection", "connections"), [(kinds.process || 0) + (kinds.monitor || 0), "other"]]);
  const t = { accepted: 0, refused: 0, errors: 0, bytesIn: 0, bytesOut: 0 };
  for (const s of snap.servers) for (const k in t) t[k] += s.counters[k];
  sub($("server-totals"), [[t.accepted, "accepted"], [t.refused, "refused"], [t.errors, "errors"]]);
  sub($("server-bytes"), [[bytes(t.bytesIn), "in"], [bytes(t.bytesOut), "out"]]);
  const cmax = spark($("conn-spark"), h, snap.time, (s) => s.connections);
  const rmax = spark($("rate-spark"), h, snap.time, (s) => s.bytesPerSecond);
  setText($("conn-max"), "max " + cmax); setText($("rate-max"), "max " + bytes(rmax) + "/s");
  renderServers(snap);
  const claimed = renderProcesses(snap);
  renderConnections(snap);
  if (RECORDINGS) {
    renderRecordings(claimed);
    // A process new since the last snapshot may be a session with a recording: look now.
    let newest = maxIdSeen;
    for (const p of snap.processes) newest = Math.max(newest, p.id);
    const fresh = lastSnap !== null && newest > maxIdSeen;
    maxIdSeen = newest;
    lastSnap = snap;
    if (fresh) loadRecordings();
  }
  setText($("updated"), "updated " + new Date(snap.time).toLocaleTimeString());
}

// A line of "<b>n</b> label · ..." built from text nodes.
function sub(el, parts) {
  const key = JSON.stringify(parts);
  if (el.dataset.key === key) return;
  el.dataset.key = key; el.textContent = "";
  parts.forEach(([n, label], i) => {
    if (i) el.append(" · ");
    const b = document.createElement("b"); b.textContent = String(n); el.append(b, " " + label);
  });
}

let toastTimer;
function toast(text) {
  const t = $("toast"); t.textContent = text; t.classList.add("show");
  clearTimeout(toastTimer); toastTimer = setTimeout(() => t.classList.remove("show"), 3500);
}
function disarm(b) { clearTimeout(b._timer); b.classList.remove("armed"); b.textContent = "Kill"; b.disabled = false; delete b.dataset.armed; }

// Killing takes two clicks: the first arms the button for three seconds.
document.addEventListener("click", async (event) => {
  const b = event.target.closest("button[data-kill]");
  if (!b || b.disabled) return;
  if (b.dataset.armed !== "1") {
    b.dataset.armed = "1"; b.classList.add("armed"); b.textContent = "Confirm";
    b._timer = setTimeout(() => disarm(b), 3000);
    return;
  }
  clearTimeout(b._timer); b.disabled = true; b.textContent = "Killing…";
  const id = b.dataset.kill, name = b.dataset.name;
  try {
    const r = await fetch("/api/processes/" + encodeURIComponent(id) + "/kill", { method: "POST", headers: { "X-Confab-Token": token }, cache: "no-store" });
    const body = await r.json().catch(() => ({}));
    if (r.ok) toast("Killed #" + id + " " + name);
    else { toast("Could not kill #" + id + ": " + (body.error || r.status)); disarm(b); }
  } catch (e) { toast("Could not kill #" + id + ": " + e.message); disarm(b); }
});

// Replaying fetches the file with the token (the player itself fetches nothing) and plays it here.
document.addEventListener("click", async (event) => {
  const b = event.target.closest("button[data-replay]");
  if (!b || b.disabled) return;
  const file = b.dataset.replay;
  b.disabled = true;
  try {
    const r = await fetch("/api/recordings/" + encodeURIComponent(file), { headers: { "X-Confab-Token": token }, cache: "no-store" });
    if (!r.ok) {
      const body = await r.json().catch(() => ({}));
      toast("Could not replay " + file + ": " + (body.error || r.status));
      return;
    }
    let text = await r.text();
    // A live session's file may end in a line still being written: play the whole lines.
    const end = text.lastIndexOf("\\n");
    if (end !== -1) text = text.slice(0, end + 1);
    play(file, text);
  } catch (e) { toast("Could not replay " + file + ": " + e.message); }
  finally { b.disabled = false; }
});
if (RECORDINGS) {
  $("replay-close").addEventListener("click", closePlayer);
  loadRecordings();
  setInterval(() => { if (!document.hidden) loadRecordings(); }, 5000);
}

const status = $("status");
function connect() {
  const events = new EventSource("/events");
  events.onopen = () => { status.className = "live"; status.textContent = "live"; };
  events.onmessage = (e) => render(JSON.parse(e.data));
  events.onerror = () => {
    status.className = "down"; status.textContent = events.readyState === 2 ? "disconnected" : "reconnecting…";
    if (events.readyState === 2) setTimeout(connect, 3000);
  };
}
connect();
`;

/** The page, with this monitor's token and a fresh nonce. */
export function renderPage(options: PageOptions): string {
  const { token, nonce, where } = options;
  const recordings = options.recordings === true;
  const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const section = (id: string, title: string, heads: readonly string[], empty: string, extra = ""): string =>
    `<section><h2>${title}${extra}</h2><div class="scroll"><table id="${id}" hidden><thead><tr>${heads
      .map((h) => (h.startsWith(">") ? `<th class="num">${h.slice(1)}</th>` : `<th>${h}</th>`))
      .join("")}</tr></thead><tbody></tbody></table></div><p class="empty">${empty}</p></section>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="confab-token" content="${esc(token)}"><link rel="icon" href="data:,">
<title>confab monitor · ${esc(where)}</title>
<style nonce="${esc(nonce)}">${STYLE}</style>${
    recordings ? `\n<link rel="stylesheet" nonce="${esc(nonce)}" href="${PLAYER_STYLE_PATH}">` : ""
  }</head>
<body${recordings ? ' data-recordings="1"' : ""}>
<header><h1>confab <span>monitor</span></h1><span id="where">${esc(where)}</span><span id="status">connecting…</span></header>
<main>
<div class="cards">
<div class="card"><div class="label">Open connections</div><div class="value" id="conn-now">0</div><svg id="conn-spark" aria-label="open connections over the last minute"></svg><div class="scale"><span>60 s ago</span><span id="conn-max"></span></div></div>
<div class="card"><div class="label">Throughput</div><div class="value" id="rate-now">0 B/s</div><svg id="rate-spark" aria-label="bytes per second over the last minute"></svg><div class="scale"><span>60 s ago</span><span id="rate-max"></span></div></div>
<div class="card"><div class="label">Processes</div><div class="value" id="proc-count">0</div><div class="sub" id="proc-kinds"></div></div>
<div class="card"><div class="label">Servers</div><div class="value" id="server-count">0</div><div class="sub" id="server-totals"></div><div class="sub" id="server-bytes"></div></div>
</div>
${
  recordings
    ? `<section id="replay" hidden><h2>Replay <small id="replay-title"></small><button type="button" class="close" id="replay-close">Close</button></h2><div id="player"></div></section>`
    : ""
}
${section("servers", "Servers", [">ID", "Name", "Listening", ">Open", ">Accepted", ">Refused", ">In", ">Out", ">Errors"], "No servers.")}
${section("processes", "Processes", [">ID", "Name", "User", "Kind", "State", ">Age", "Parent", "Peer", ">In", ">Out", "Waiting", ...(recordings ? [""] : []), ""], "No processes.", ' <small id="omitted"></small>')}
${section("connections", "Connections", [">Process", "Name", "Server", "Peer", "Local", ">In", ">Out", ">Age"], "No open connections.")}
${recordings ? section("recordings", "Recordings", ["Started", ">Process", "Name", ">Size", ""], "No recordings of ended sessions.", ' <small>of ended sessions</small> <small id="recordings-more"></small>') : ""}
</main>
<footer><span id="updated"></span></footer>
<div id="toast" role="status" aria-live="polite"></div>
${recordings ? `<script nonce="${esc(nonce)}" src="${PLAYER_SCRIPT_PATH}"></script>\n` : ""}<script nonce="${esc(nonce)}">${SCRIPT}</script>
</body></html>
`;
}
