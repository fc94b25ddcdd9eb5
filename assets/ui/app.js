// The StreamForge monitor: draws one symbol's board from the node's event stream
// (/api/v1/monitor/{symbol}/stream: `snapshot`, then `update` and `health` frames) and reconnects
// by itself when the stream ends (a node restart), showing that it did.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  symbol: null, trades: [], candles: [], book: null, stats: {}, messages: 0, rate: 0,
  tape: 40, maxCandles: 120, reconnects: 0, everConnected: false, dirty: false, abort: null,
};

function token() { return sessionStorage.getItem("streamforge-token"); }
function headers() { const t = token(); return t ? { Authorization: "Bearer " + t } : {}; }

function fmt(v, digits) {
  if (v === null || v === undefined || v === "") return "–";
  const n = Number(v);
  if (!Number.isFinite(n)) return String(v);
  return n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
function decimals(price) {
  const n = Number(price);
  if (!(n > 0)) return 2;
  return n >= 1000 ? 2 : n >= 1 ? 4 : 8;
}
function setValue(id, raw, text) {
  const el = $(id);
  el.dataset.value = raw === null || raw === undefined ? "" : String(raw);
  el.textContent = text;
}

function status(kind, text) {
  const el = $("conn-status");
  el.dataset.state = kind;
  el.dataset.reconnects = String(state.reconnects);
  el.textContent = text;
}

// ---- frames -------------------------------------------------------------------------------
function mergeCandles(list) {
  for (const c of list) {
    const i = state.candles.findIndex((x) => x.t === c.t);
    if (i >= 0) state.candles[i] = c; else state.candles.push(c);
  }
  state.candles.sort((a, b) => a.t - b.t);
  if (state.candles.length > state.maxCandles) state.candles.splice(0, state.candles.length - state.maxCandles);
}
function onSnapshot(f) {
  state.trades = f.trades.slice().reverse();
  state.candles = [];
  mergeCandles(f.candles);
  state.book = f.book || null;
  onCommon(f);
}
function onUpdate(f) {
  for (const t of f.trades) state.trades.unshift(t);
  if (state.trades.length > state.tape) state.trades.length = state.tape;
  mergeCandles(f.candles);
  if (f.book) state.book = f.book;
  onCommon(f);
}
function onCommon(f) {
  state.stats = f.stats || {};
  state.messages = f.messages;
  state.rate = f.rate;
  state.dirty = true;
}
function onHealth(h) {
  const m = h.metrics || {};
  const tree = h.tree || {};
  $("h-node").textContent = h.node + " · up " + Math.round(h.uptime_s) + " s";
  const up = $("h-tree");
  up.textContent = (tree.running || 0) + " / " + (tree.actors || 0);
  up.classList.toggle("bad", (tree.running || 0) < (tree.actors || 0));
  up.title = (tree.down || []).length ? "not running: " + tree.down.join(", ") : "every actor runs";
  $("h-restarts").textContent = String(tree.restarts || 0);
  $("h-lag").textContent = fmt(m.consumer_lag, 0);
  $("h-reconnects").textContent = fmt(m.ws_reconnects, 0);
  $("h-resyncs").textContent = fmt(m.book_resyncs, 0);
  $("h-weight").textContent = fmt(m.rest_weight_used, 0);
  const dead = $("h-dead");
  dead.textContent = fmt(m.dead_letters, 0);
  dead.classList.toggle("bad", m.dead_letters > 0);
}

// ---- drawing ------------------------------------------------------------------------------
function canvas2d(el) {
  const ratio = window.devicePixelRatio || 1;
  const w = el.clientWidth, h = el.clientHeight;
  if (el.width !== Math.round(w * ratio) || el.height !== Math.round(h * ratio)) {
    el.width = Math.round(w * ratio);
    el.height = Math.round(h * ratio);
  }
  const ctx = el.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, h);
  return { ctx, w, h };
}
const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

function drawCandles() {
  const { ctx, w, h } = canvas2d($("candles"));
  const cs = state.candles;
  if (!cs.length) {
    ctx.fillStyle = css("--muted");
    ctx.fillText("waiting for trades…", 10, 20);
    return;
  }
  const axis = 70, volH = h * 0.2, priceH = h - volH - 16;
  let lo = Infinity, hi = -Infinity, vmax = 0;
  for (const c of cs) { lo = Math.min(lo, +c.l); hi = Math.max(hi, +c.h); vmax = Math.max(vmax, +c.v); }
  if (hi === lo) { hi += 1; lo -= 1; }
  const slot = (w - axis) / Math.max(cs.length, 30);
  const y = (p) => 4 + (hi - p) / (hi - lo) * (priceH - 8);
  ctx.font = "11px system-ui";
  ctx.fillStyle = css("--muted");
  ctx.strokeStyle = css("--line");
  for (let i = 0; i <= 4; i++) {
    const p = lo + (hi - lo) * i / 4;
    ctx.beginPath(); ctx.moveTo(0, y(p)); ctx.lineTo(w - axis, y(p)); ctx.stroke();
    ctx.fillText(fmt(p, decimals(p)), w - axis + 4, y(p) + 4);
  }
  cs.forEach((c, i) => {
    const x = i * slot + slot / 2;
    const up = +c.c >= +c.o;
    ctx.strokeStyle = ctx.fillStyle = up ? css("--bid") : css("--ask");
    ctx.beginPath(); ctx.moveTo(x, y(+c.h)); ctx.lineTo(x, y(+c.l)); ctx.stroke();
    const top = y(Math.max(+c.o, +c.c)), bottom = y(Math.min(+c.o, +c.c));
    ctx.fillRect(x - slot * 0.35, top, slot * 0.7, Math.max(1, bottom - top));
    const vh = vmax > 0 ? (+c.v / vmax) * (volH - 4) : 0;
    ctx.globalAlpha = 0.6;
    ctx.fillRect(x - slot * 0.35, h - 16 - vh, slot * 0.7, vh);
    ctx.globalAlpha = 1;
  });
  ctx.fillStyle = css("--muted");
  const first = new Date(cs[0].t), last = new Date(cs[cs.length - 1].t);
  ctx.fillText(first.toISOString().slice(11, 16), 2, h - 3);
  ctx.fillText(last.toISOString().slice(11, 16) + " UTC", Math.max(40, (cs.length - 1) * slot - 30), h - 3);
}

function drawDepth() {
  const { ctx, w, h } = canvas2d($("depth"));
  const b = state.book;
  if (!b || !b.bids.length || !b.asks.length) return;
  const cum = (side) => { let s = 0; return side.map(([p, q]) => [+p, (s += +q)]); };
  const bids = cum(b.bids), asks = cum(b.asks);
  const lo = bids[bids.length - 1][0], hi = asks[asks.length - 1][0];
  const qmax = Math.max(bids[bids.length - 1][1], asks[asks.length - 1][1]);
  const x = (p) => (p - lo) / (hi - lo || 1) * w;
  const y = (q) => h - (q / (qmax || 1)) * (h - 6);
  const area = (pts, color) => {
    ctx.fillStyle = color; ctx.globalAlpha = 0.35;
    ctx.beginPath(); ctx.moveTo(x(pts[0][0]), h);
    for (const [p, q] of pts) ctx.lineTo(x(p), y(q));
    ctx.lineTo(x(pts[pts.length - 1][0]), h); ctx.closePath(); ctx.fill();
    ctx.globalAlpha = 1; ctx.strokeStyle = color; ctx.beginPath();
    pts.forEach(([p, q], i) => (i ? ctx.lineTo(x(p), y(q)) : ctx.moveTo(x(p), y(q))));
    ctx.stroke();
  };
  area(bids, css("--bid"));
  area(asks, css("--ask"));
}

function ladderRows(levels, cls, reverse) {
  let total = 0;
  const rows = levels.map(([p, q]) => { total += +q; return [p, q, total]; });
  const max = rows.length ? rows[rows.length - 1][2] : 1;
  const color = cls === "bid" ? "rgba(63,185,80,.18)" : "rgba(255,123,114,.18)";
  const html = rows.map(([p, q, t]) => {
    const pct = Math.round((t / max) * 100);
    return `<tr style="background-image:linear-gradient(to left, ${color} ${pct}%, transparent ${pct}%)">` +
      `<td class="${cls}" data-price="${p}">${fmt(p, decimals(p))}</td><td>${fmt(q, 4)}</td><td>${fmt(t, 4)}</td></tr>`;
  });
  return (reverse ? html.reverse() : html).join("");
}

function render() {
  if (!state.dirty) return;
  state.dirty = false;
  const s = state.stats;
  const d = decimals(s.last || s.bid);
  setValue("last-price", s.last, fmt(s.last, d));
  setValue("best-bid", s.bid, fmt(s.bid, d));
  setValue("best-ask", s.ask, fmt(s.ask, d));
  $("mid").textContent = fmt(s.mid, d + 1);
  $("spread").textContent = s.spread === undefined ? "–" : fmt(s.spread, d) + " (" + s.spread_bps + " bp)";
  $("imbalance").textContent = s.imbalance === undefined ? "–" : fmt(s.imbalance * 100, 1) + " %";
  setValue("messages", state.messages, fmt(state.messages, 0));
  $("rate").textContent = fmt(state.rate, 0);
  const b = state.book;
  if (b) {
    setValue("book-update-id", b.update_id, b.update_id === null ? "–" : String(b.update_id));
    setValue("book-state", b.state, b.state);
    $("asks").innerHTML = ladderRows(b.asks, "ask", true);
    $("bids").innerHTML = ladderRows(b.bids, "bid", false);
    $("ladder-spread").textContent = s.spread === undefined ? "–" : "spread " + fmt(s.spread, d);
  }
  $("trades").innerHTML = state.trades.map((t) => {
    const side = t.m ? "sell" : "buy";
    const time = new Date(t.t).toISOString().slice(11, 23);
    return `<tr><td>${time}</td><td class="${t.m ? "ask" : "bid"}" data-price="${t.p}">${fmt(t.p, decimals(t.p))}</td>` +
      `<td>${fmt(t.q, 4)}</td><td class="${t.m ? "ask" : "bid"}">${side}</td></tr>`;
  }).join("");
  drawCandles();
  drawDepth();
}
function loop() { render(); requestAnimationFrame(loop); }

// ---- the event stream ---------------------------------------------------------------------
function parseBlock(block) {
  let event = "message", data = "";
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) event = line.slice(6).trim();
    else if (line.startsWith("data:")) data += line.slice(5).trim();
  }
  return { event, data };
}

async function follow(symbol) {
  const abort = new AbortController();
  state.abort = abort;
  let delay = 500;
  while (!abort.signal.aborted) {
    try {
      const resp = await fetch(`/api/v1/monitor/${encodeURIComponent(symbol)}/stream`, { headers: headers(), signal: abort.signal });
      if (resp.status === 401 || resp.status === 403) { askToken(); return; }
      if (!resp.ok) throw new Error((await resp.json().catch(() => ({}))).reason || resp.statusText);
      const wasDown = state.everConnected;
      state.everConnected = true;
      if (wasDown) state.reconnects += 1;
      status("live", wasDown ? `Live · reconnected ${state.reconnects}× (last ${new Date().toISOString().slice(11, 19)} UTC)` : "Live");
      delay = 500;
      const reader = resp.body.getReader();
      const text = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += text.decode(value, { stream: true });
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const { event, data } = parseBlock(buf.slice(0, cut));
          buf = buf.slice(cut + 2);
          if (!data) continue;
          const frame = JSON.parse(data);
          if (event === "snapshot") onSnapshot(frame);
          else if (event === "update") onUpdate(frame);
          else if (event === "health") onHealth(frame);
        }
      }
      throw new Error("the stream ended");
    } catch (e) {
      if (abort.signal.aborted) return;
      status("reconnecting", `Reconnecting… (${e.message})`);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 5000);
    }
  }
}

function askToken() {
  status("error", "A token is needed");
  const dialog = $("login");
  if (!dialog.open) dialog.showModal();
}

function choose(symbol) {
  if (state.abort) state.abort.abort();
  state.symbol = symbol;
  state.trades = []; state.candles = []; state.book = null; state.stats = {};
  state.dirty = true;
  $("title-symbol").textContent = symbol;
  document.title = symbol + " · StreamForge monitor";
  history.replaceState(null, "", "#" + symbol);
  follow(symbol);
}

async function start() {
  status("connecting", "Connecting…");
  let info;
  for (let delay = 500; ; delay = Math.min(delay * 2, 5000)) {
    try {
      const resp = await fetch("/api/v1/monitor", { headers: headers() });
      if (resp.status === 401 || resp.status === 403) { askToken(); return; }
      info = await resp.json();
      break;
    } catch (e) {
      status("reconnecting", "Waiting for the node…");
      await new Promise((r) => setTimeout(r, delay));
    }
  }
  state.tape = info.tape; state.maxCandles = info.candles;
  const select = $("symbol");
  select.innerHTML = info.symbols.map((s) => `<option value="${s}">${s}</option>`).join("");
  if (!info.symbols.length) {
    status("error", "This node streams nothing: add [[streams]] to its config, or start it with --offline");
    return;
  }
  const wanted = location.hash.slice(1);
  const symbol = info.symbols.includes(wanted) ? wanted : info.default;
  select.value = symbol;
  select.addEventListener("change", () => choose(select.value));
  choose(symbol);
}

$("login-form").addEventListener("submit", () => {
  sessionStorage.setItem("streamforge-token", $("token").value);
  start();
});
window.addEventListener("resize", () => { state.dirty = true; });
requestAnimationFrame(loop);
start();
