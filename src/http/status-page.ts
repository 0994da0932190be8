/**
 * The live status page served at '/': one HTML document (CSS and JS inline, no build step) that
 * polls /api/status every 1.5 s and redraws nodes, sessions, pools and recent events, and draws
 * the last minutes from /api/history with uPlot, which pgmaitre serves itself (/assets/uplot.*),
 * so nothing comes from the network: throughput per node, latency p50/p99, replication lag,
 * pool use and waiting clients, and with the query cache on its hit ratio (hits and misses per
 * second beside it); time ranges where a node was down are shaded red. All data is inserted with textContent (no HTML injection
 * from host names or application names). Admin buttons appear only when the server says admin
 * actions are enabled (http_auth set); the browser reuses the Basic credentials it already sent.
 */

/** The page. */
export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pgmaitre status</title>
<link rel="stylesheet" href="assets/uplot.css">
<style>
:root { --bg:#0f1419; --panel:#171d24; --panel2:#1e2630; --text:#e6edf3; --muted:#8b98a5; --line:#2a3440;
  --up:#2ea043; --down:#f85149; --wait:#d29922; --accent:#58a6ff; --primary:#a371f7; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; background:var(--bg); color:var(--text); }
header { display:flex; align-items:center; gap:16px; padding:14px 24px; background:linear-gradient(90deg,#161b22,#1b2430); border-bottom:1px solid var(--line); position:sticky; top:0; z-index:2; }
header h1 { font-size:18px; margin:0; letter-spacing:.3px; }
header h1 span { color:var(--accent); }
.meta { color:var(--muted); font-size:12px; }
.spacer { flex:1; }
.live { display:inline-flex; align-items:center; gap:6px; font-size:12px; color:var(--muted); }
.dot { width:8px; height:8px; border-radius:50%; background:var(--up); box-shadow:0 0 0 0 rgba(46,160,67,.6); animation:pulse 1.5s infinite; }
.dot.stale { background:var(--down); animation:none; }
@keyframes pulse { 0%{box-shadow:0 0 0 0 rgba(46,160,67,.5)} 70%{box-shadow:0 0 0 8px rgba(46,160,67,0)} 100%{box-shadow:0 0 0 0 rgba(46,160,67,0)} }
main { padding:20px 24px 40px; max-width:1400px; margin:0 auto; }
.tiles { display:grid; grid-template-columns:repeat(auto-fit,minmax(160px,1fr)); gap:12px; margin-bottom:20px; }
.tile { background:var(--panel); border:1px solid var(--line); border-radius:10px; padding:12px 14px; }
.tile .k { color:var(--muted); font-size:11px; text-transform:uppercase; letter-spacing:.6px; }
.tile .v { font-size:22px; font-weight:600; margin-top:2px; font-variant-numeric:tabular-nums; }
h2 { font-size:13px; text-transform:uppercase; letter-spacing:.8px; color:var(--muted); margin:26px 0 10px; }
.nodes { display:grid; grid-template-columns:repeat(auto-fill,minmax(300px,1fr)); gap:14px; }
.node { background:var(--panel); border:1px solid var(--line); border-left:4px solid var(--muted); border-radius:10px; padding:14px 16px; }
.node.s-up { border-left-color:var(--up); } .node.s-down, .node.s-quarantine { border-left-color:var(--down); background:#1d1517; }
.node.s-waiting { border-left-color:var(--wait); }
.node .top { display:flex; align-items:center; gap:8px; }
.node .name { font-weight:600; font-size:15px; }
.node .addr { color:var(--muted); font-family:ui-monospace,Menlo,Consolas,monospace; font-size:12px; }
.pill { display:inline-block; padding:1px 8px; border-radius:999px; font-size:11px; font-weight:600; text-transform:uppercase; letter-spacing:.4px; }
.status.up { background:rgba(46,160,67,.18); color:#56d364; } .status.down, .status.quarantine { background:rgba(248,81,73,.18); color:#ff7b72; }
.status.waiting, .status.recovering { background:rgba(210,153,34,.18); color:#e3b341; } .status.unused { background:#2a3440; color:var(--muted); }
.role.primary { background:rgba(163,113,247,.2); color:#d2a8ff; } .role.standby, .role.replica { background:rgba(88,166,255,.15); color:#79c0ff; } .role.main { background:rgba(163,113,247,.2); color:#d2a8ff; }
.kv { display:grid; grid-template-columns:auto 1fr; gap:3px 12px; margin-top:10px; font-size:13px; }
.kv .k { color:var(--muted); } .kv .v { text-align:right; font-variant-numeric:tabular-nums; }
.bar { height:6px; background:var(--panel2); border-radius:4px; overflow:hidden; margin-top:3px; }
.bar > i { display:block; height:100%; background:var(--accent); }
.reason { color:var(--muted); font-size:12px; margin-top:8px; }
.actions { margin-top:10px; display:flex; gap:6px; }
button { background:var(--panel2); color:var(--text); border:1px solid var(--line); border-radius:6px; padding:4px 10px; cursor:pointer; font-size:12px; }
button:hover { border-color:var(--accent); }
table { width:100%; border-collapse:collapse; background:var(--panel); border:1px solid var(--line); border-radius:10px; overflow:hidden; }
th, td { padding:7px 10px; text-align:left; border-bottom:1px solid var(--line); font-size:13px; }
th { color:var(--muted); font-weight:500; font-size:11px; text-transform:uppercase; letter-spacing:.5px; background:var(--panel2); }
td.num { text-align:right; font-variant-numeric:tabular-nums; }
tr:last-child td { border-bottom:none; }
.empty { color:var(--muted); text-align:center; padding:14px; }
.ev-node_down td:first-child, .ev-failover td:first-child { border-left:3px solid var(--down); }
.ev-failback td:first-child, .ev-node_up td:first-child { border-left:3px solid var(--up); }
.banner { display:none; background:#3d1d20; color:#ffb3ad; padding:8px 24px; border-bottom:1px solid #6e2a2e; }
.banner.show { display:block; }
.cols { display:grid; grid-template-columns:1fr 1fr; gap:20px; }
.charts { display:grid; grid-template-columns:1fr 1fr; gap:14px; }
@media (max-width: 900px) { .charts { grid-template-columns:1fr; } }
.chart { background:var(--panel); border:1px solid var(--line); border-radius:10px; padding:10px 12px; min-width:0; }
.chart .ct { color:var(--muted); font-size:12px; margin-bottom:4px; }
.chart .plot { min-height:200px; }
.chart .now { display:flex; flex-wrap:wrap; gap:4px 12px; margin-top:6px; font-size:12px; font-variant-numeric:tabular-nums; }
.chart .now span { display:inline-flex; align-items:center; gap:5px; color:var(--text); }
.chart .now i { width:10px; height:3px; border-radius:2px; display:inline-block; }
.chart .now span.down { color:#ff7b72; }
.chart .now span.down i { background:var(--down) !important; }
.charts-missing { color:var(--muted); }
.uplot, .uplot * { font-family:inherit; }
.u-axis { color:var(--muted); }
@media (max-width: 900px) { .cols { grid-template-columns:1fr; } }
</style>
</head>
<body>
<header>
  <h1>pg<span>maitre</span></h1>
  <span class="meta" id="version"></span>
  <span class="spacer"></span>
  <span class="live"><span class="dot" id="dot"></span><span id="updated">connecting…</span></span>
</header>
<div class="banner" id="banner">Lost contact with pgmaitre; retrying…</div>
<main>
  <section class="tiles">
    <div class="tile"><div class="k">Primary</div><div class="v" id="t-primary">–</div></div>
    <div class="tile"><div class="k">Nodes up</div><div class="v" id="t-nodes">–</div></div>
    <div class="tile"><div class="k">Client sessions</div><div class="v" id="t-sessions">–</div></div>
    <div class="tile"><div class="k">Waiting clients</div><div class="v" id="t-waiting">–</div></div>
    <div class="tile"><div class="k">Classifier cache hits</div><div class="v" id="t-cache">–</div></div>
    <div class="tile"><div class="k">Uptime</div><div class="v" id="t-uptime">–</div></div>
  </section>
  <h2>Backend nodes</h2>
  <section class="nodes" id="nodes"></section>
  <h2>Over the last minutes</h2>
  <section class="charts" id="charts">
    <div class="chart" id="c-throughput"><div class="ct">Throughput per node (statements/s; writes dashed)</div><div class="plot"></div><div class="now"></div></div>
    <div class="chart" id="c-latency"><div class="ct">Query latency per node (ms; p50 solid, p99 dashed)</div><div class="plot"></div><div class="now"></div></div>
    <div class="chart" id="c-lag"><div class="ct">Replication lag per standby (bytes)</div><div class="plot"></div><div class="now"></div></div>
    <div class="chart" id="c-pool"><div class="ct">Backend connections in use per node, client sessions and waiting clients</div><div class="plot"></div><div class="now"></div></div>
    <div class="chart" id="c-cache" hidden><div class="ct">Query cache: hit ratio (% of cacheable SELECTs answered by pgmaitre; hits/s and misses/s below)</div><div class="plot"></div><div class="now"></div></div>
  </section>
  <div class="cols">
    <section>
      <h2>Pools</h2>
      <table><thead><tr><th>Node</th><th>Active</th><th>Idle</th><th>Resetting</th><th>Connecting</th><th>Total</th><th>Waiting</th><th>Leases</th><th>Waited</th></tr></thead><tbody id="pools"></tbody></table>
      <p id="pooling" class="muted"></p>
    </section>
    <section>
      <h2>Recent events</h2>
      <table><thead><tr><th>Time</th><th>Event</th><th>Node</th><th>Detail</th></tr></thead><tbody id="events"></tbody></table>
    </section>
  </div>
  <h2>Client sessions</h2>
  <table><thead><tr><th>PID</th><th>Slot</th><th>User</th><th>Database</th><th>Application</th><th>Client</th><th>Status</th><th>LB node</th><th>Connected</th></tr></thead><tbody id="sessions"></tbody></table>
</main>
<script src="assets/uplot.js"></script>
<script>
(function () {
  'use strict';
  var REFRESH_MS = 1500;
  function el(tag, cls, text) { var e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined && text !== null) e.textContent = String(text); return e; }
  function $(id) { return document.getElementById(id); }
  function fmtInt(n) { return Number(n || 0).toLocaleString('en-US'); }
  function fmtBytes(n) { if (!n) return '0 B'; var u = ['B','kB','MB','GB','TB'], i = 0; while (n >= 1024 && i < 4) { n /= 1024; i++; } return (i ? n.toFixed(1) : n) + ' ' + u[i]; }
  function fmtTime(iso) { var d = new Date(iso); return d.toLocaleTimeString(); }
  function fmtDur(ms) { var s = Math.floor(ms / 1000), d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60); return d ? d + 'd ' + h + 'h' : h ? h + 'h ' + m + 'm' : m + 'm ' + (s % 60) + 's'; }
  function row(tbody, cells, cls) { var tr = el('tr', cls); cells.forEach(function (c) { var td = el('td', typeof c === 'number' ? 'num' : '', c); tr.appendChild(td); }); tbody.appendChild(tr); }
  function replace(id, build) { var t = $(id); var n = t.cloneNode(false); build(n); t.parentNode.replaceChild(n, t); }
  function kv(box, k, v) { box.appendChild(el('div', 'k', k)); box.appendChild(el('div', 'v', v)); }

  function action(id, what) {
    if (!confirm(what + ' node ' + id + '?')) return;
    fetch('api/nodes/' + id + '/' + what, { method: 'POST' }).then(function (r) { return r.json(); })
      .then(function (j) { if (!j.ok) alert(j.error || 'failed'); refresh(); });
  }

  function renderNodes(s) {
    replace('nodes', function (box) {
      s.nodes.forEach(function (n) {
        var card = el('article', 'node s-' + n.status); card.setAttribute('data-node-id', n.id);
        var top = el('div', 'top');
        top.appendChild(el('span', 'name', 'Node ' + n.id));
        top.appendChild(el('span', 'pill status ' + n.status, n.status));
        top.appendChild(el('span', 'pill role ' + n.role, n.role));
        card.appendChild(top);
        card.appendChild(el('div', 'addr', n.host + ':' + n.port));
        var k = el('div', 'kv');
        kv(k, 'Weight', (n.weight * 100).toFixed(1) + '%');
        kv(k, 'Replication lag', n.id === s.primaryId ? '—' : (n.lagSeconds !== null ? n.lagSeconds.toFixed(3) + ' s' : fmtBytes(n.lagBytes)));
        kv(k, 'Replication', n.id === s.primaryId ? '—' : ((n.replicationState || 'unknown') + (n.syncState ? ' / ' + n.syncState : '')));
        kv(k, 'Selects', fmtInt(n.counters.select_cnt));
        kv(k, 'Writes', fmtInt(n.counters.insert_cnt + n.counters.update_cnt + n.counters.delete_cnt + n.counters.ddl_cnt));
        kv(k, 'Errors', fmtInt(n.counters.error_cnt + n.counters.fatal_cnt + n.counters.panic_cnt));
        kv(k, 'Connections', n.pool ? n.pool.active + ' active / ' + n.pool.total : '—');
        kv(k, 'Health checks', n.health.total ? n.health.success + ' ok / ' + n.health.fail + ' failed' : '—');
        card.appendChild(k);
        var bar = el('div', 'bar'), fill = el('i'); fill.style.width = Math.round(n.weight * 100) + '%'; bar.appendChild(fill); card.appendChild(bar);
        card.appendChild(el('div', 'reason', 'since ' + new Date(n.lastStatusChange).toLocaleString() + (n.statusReason ? ' — ' + n.statusReason : '')));
        if (s.actionsEnabled) {
          var a = el('div', 'actions');
          (n.status === 'recovering' ? [] : (n.status === 'down' || n.status === 'quarantine' ? ['attach'] : ['detach']).concat(n.role === 'primary' ? [] : ['promote'])).forEach(function (w) {
            var b = el('button', '', w); b.onclick = function () { action(n.id, w); }; a.appendChild(b);
          });
          card.appendChild(a);
        }
        box.appendChild(card);
      });
    });
  }

  function render(s) {
    $('version').textContent = 'v' + s.version;
    var primary = s.nodes.filter(function (n) { return n.id === s.primaryId; })[0];
    $('t-primary').textContent = primary ? 'node ' + primary.id : 'none';
    $('t-nodes').textContent = s.nodes.filter(function (n) { return n.status === 'up' || n.status === 'waiting'; }).length + ' / ' + s.nodes.length;
    $('t-sessions').textContent = s.slots.inUse + ' / ' + s.slots.capacity;
    $('t-waiting').textContent = s.slots.waiting;
    $('t-cache').textContent = s.classifier ? (s.classifier.hitRatio * 100).toFixed(1) + '%' : '—';
    $('t-uptime').textContent = fmtDur(new Date(s.now) - new Date(s.startedAt));
    renderNodes(s);
    var leases = {};
    if (s.pooling) s.pooling.nodes.forEach(function (n) { leases[n.node] = n; });
    replace('pools', function (t) {
      s.nodes.forEach(function (n) {
        var p = n.pool, l = leases[n.id];
        row(t, ['node ' + n.id, p ? p.active : '—', p ? p.idle : '—', p ? p.resetting : '—', p ? p.connecting : '—', p ? p.total : '—',
          l ? l.waiting : '—', l ? l.leases : '—', l ? l.waitedLeases : '—']);
      });
    });
    var pl = s.pooling;
    $('pooling').textContent = pl ? 'pool_mode ' + pl.mode + ', default_pool_size ' + pl.defaultPoolSize + ' — pooled sessions ' + pl.clients + ' / ' + pl.maxClientConn
      + ', pinned ' + pl.pinnedNow + ' (' + pl.pinnedTotal + ' since start), prepared-statement cache ' + pl.cacheHits + ' hits / ' + pl.cacheMisses + ' misses' : '';
    replace('events', function (t) {
      if (!s.events.length) { var tr = el('tr'); var td = el('td', 'empty', 'No events yet'); td.colSpan = 4; tr.appendChild(td); t.appendChild(tr); return; }
      s.events.slice().reverse().slice(0, 20).forEach(function (e) { row(t, [fmtTime(e.at), e.kind.replace('_', ' '), e.nodeId, e.message], 'ev-' + e.kind); });
    });
    replace('sessions', function (t) {
      if (!s.sessions.length) { var tr = el('tr'); var td = el('td', 'empty', 'No client sessions'); td.colSpan = 9; tr.appendChild(td); t.appendChild(tr); return; }
      s.sessions.forEach(function (x) { row(t, [x.pid, x.slot, x.user, x.database, x.applicationName, x.address + ':' + x.port, x.status, x.loadBalanceNode, fmtTime(x.connectedAt)]); });
    });
  }

  // ---- charts (uPlot) ------------------------------------------------------------------------
  var COLORS = ['#a371f7', '#58a6ff', '#3fb950', '#d29922', '#f778ba', '#79c0ff', '#56d4dd', '#e3b341'];
  var DOWN_FILL = 'rgba(248,81,73,0.28)';
  var charts = null, chartKey = '', lastHistory = null;
  function color(i) { return COLORS[i % COLORS.length]; }
  function fmtNum(v, d) { return v === null || v === undefined ? '–' : Number(v).toFixed(d); }
  // One definition per chart: the series (label, node, value array, style) and how to print a value.
  function chartDefs(h) {
    var thr = [], lat = [], lag = [], pool = [];
    h.nodes.forEach(function (n, i) {
      thr.push({ key: 'reads-' + n.id, label: 'node ' + n.id + ' reads', node: n, data: n.reads, stroke: color(i), fmt: function (v) { return fmtNum(v, 1) + '/s'; } });
      thr.push({ key: 'writes-' + n.id, label: 'node ' + n.id + ' writes', node: n, data: n.writes, stroke: color(i), dash: [6, 4], fmt: function (v) { return fmtNum(v, 1) + '/s'; } });
      lat.push({ key: 'p50-' + n.id, label: 'node ' + n.id + ' p50', node: n, data: n.p50, stroke: color(i), fmt: function (v) { return fmtNum(v, 3) + ' ms'; } });
      lat.push({ key: 'p99-' + n.id, label: 'node ' + n.id + ' p99', node: n, data: n.p99, stroke: color(i), dash: [6, 4], fmt: function (v) { return fmtNum(v, 3) + ' ms'; } });
      var wasPrimary = n.primary.some(function (p) { return p === 1; }), isPrimary = n.primary[n.primary.length - 1] === 1;
      if (!isPrimary || !wasPrimary) lag.push({ key: 'lag-' + n.id, label: 'node ' + n.id, node: n, data: n.lagBytes, stroke: color(i), fmt: function (v) { return v === null ? '–' : fmtBytes(v); } });
      pool.push({ key: 'pool-' + n.id, label: 'node ' + n.id + ' in use', node: n, data: n.poolActive, stroke: color(i), fmt: function (v) { return fmtNum(v, 0); } });
    });
    pool.push({ key: 'sessions', label: 'client sessions', data: h.clients.inUse, stroke: '#8b98a5', fmt: function (v) { return fmtNum(v, 0); } });
    pool.push({ key: 'waiting', label: 'waiting clients', data: h.clients.waiting, stroke: '#ffa657', width: 2, fmt: function (v) { return fmtNum(v, 0); } });
    var defs = { 'c-throughput': thr, 'c-latency': lat, 'c-lag': lag, 'c-pool': pool };
    if (h.cache) {
      defs['c-cache'] = [
        { key: 'cache-hit-ratio', label: 'hit ratio', data: h.cache.hitRatio, stroke: '#3fb950', width: 2, fmt: function (v) { return fmtNum(v, 1) + ' %'; } },
        { key: 'cache-hits', label: 'hits', data: h.cache.hits, stroke: '#58a6ff', hidden: true, fmt: function (v) { return fmtNum(v, 1) + '/s'; } },
        { key: 'cache-misses', label: 'misses', data: h.cache.misses, stroke: '#ffa657', hidden: true, fmt: function (v) { return fmtNum(v, 1) + '/s'; } },
      ];
    }
    return defs;
  }
  // Time ranges where some node was down, shaded before the series are drawn.
  function downRanges(h) {
    var out = [], start = null;
    for (var i = 0; i < h.t.length; i++) {
      var down = h.nodes.some(function (n) { return n.up[i] === 0; });
      if (down && start === null) start = i;
      if (!down && start !== null) { out.push([h.t[start], h.t[i]]); start = null; }
    }
    if (start !== null) out.push([h.t[start], h.t[h.t.length - 1] + h.interval]);
    return out;
  }
  function shadeDown(u) {
    if (!lastHistory) return;
    var ctx = u.ctx, top = u.bbox.top, height = u.bbox.height;
    ctx.save();
    ctx.fillStyle = DOWN_FILL;
    downRanges(lastHistory).forEach(function (r) {
      var x0 = Math.max(u.bbox.left, u.valToPos(r[0], 'x', true)), x1 = Math.min(u.bbox.left + u.bbox.width, u.valToPos(r[1], 'x', true));
      if (x1 > x0) ctx.fillRect(x0, top, Math.max(2, x1 - x0), height);
    });
    ctx.restore();
  }
  function plotWidth(box) { return Math.max(280, box.querySelector('.plot').clientWidth || box.clientWidth - 24); }
  function buildCharts(h) {
    var defs = chartDefs(h);
    charts = {};
    $('c-cache').hidden = !defs['c-cache'];
    Object.keys(defs).forEach(function (id) {
      var box = $(id), plot = box.querySelector('.plot');
      plot.textContent = '';
      // The hit ratio is a percentage: its axis is 0-100 whatever the values.
      var yRange = id === 'c-cache' ? function () { return [0, 100]; } : function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; };
      var axis = { stroke: '#8b98a5', grid: { stroke: '#2a3440', width: 1 }, ticks: { stroke: '#2a3440' } };
      var opts = {
        width: plotWidth(box), height: 200, legend: { show: false }, cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true }, y: { range: yRange } },
        axes: [axis, Object.assign({ size: 60 }, axis, id === 'c-lag' ? { values: function (u, vals) { return vals.map(function (v) { return fmtBytes(v); }); } } : {})],
        series: [{}].concat(defs[id].map(function (d) { return { label: d.label, stroke: d.stroke, width: d.width || 1.5, dash: d.dash, spanGaps: false, show: !d.hidden, points: { show: false } }; })),
        hooks: { drawClear: [shadeDown] },
      };
      charts[id] = { u: new uPlot(opts, [h.t].concat(defs[id].map(function (d) { return d.data; })), plot), box: box };
    });
  }
  function renderNow(h, defs) {
    Object.keys(defs).forEach(function (id) {
      var now = charts[id].box.querySelector('.now'), n2 = now.cloneNode(false);
      defs[id].forEach(function (d) {
        var last = d.data.length ? d.data[d.data.length - 1] : null;
        var isDown = d.node ? d.node.up[d.node.up.length - 1] === 0 : false;
        var span = el('span', isDown ? 'down' : ''), sw = el('i');
        sw.style.background = d.stroke; span.appendChild(sw);
        span.appendChild(document.createTextNode(d.label + ' ' + d.fmt(last) + (isDown ? ' (down)' : '')));
        span.setAttribute('data-series', d.key);
        span.setAttribute('data-value', last === null || last === undefined ? '' : String(last));
        if (d.node) span.setAttribute('data-node-up', isDown ? '0' : '1');
        n2.appendChild(span);
      });
      now.parentNode.replaceChild(n2, now);
    });
  }
  function renderCharts(h) {
    if (typeof uPlot === 'undefined') { $('charts').className = 'charts-missing'; $('charts').textContent = 'charts unavailable: /assets/uplot.js did not load'; return; }
    lastHistory = h;
    var key = h.nodes.map(function (n) { return n.id + (n.primary[n.primary.length - 1] === 1 ? 'p' : 's'); }).join(',') + (h.cache ? ',cache' : '');
    if (charts === null || key !== chartKey) {
      if (charts) Object.keys(charts).forEach(function (id) { charts[id].u.destroy(); });
      chartKey = key;
      buildCharts(h);
    } else {
      var defs0 = chartDefs(h);
      Object.keys(charts).forEach(function (id) { charts[id].u.setData([h.t].concat(defs0[id].map(function (d) { return d.data; }))); });
    }
    renderNow(h, chartDefs(h));
  }
  window.addEventListener('resize', function () {
    if (!charts) return;
    Object.keys(charts).forEach(function (id) { charts[id].u.setSize({ width: plotWidth(charts[id].box), height: 200 }); });
  });

  function refresh() {
    var status = fetch('api/status', { cache: 'no-store' }).then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (s) { render(s); $('dot').className = 'dot'; $('banner').className = 'banner'; $('updated').textContent = 'updated ' + new Date().toLocaleTimeString(); })
      .catch(function () { $('dot').className = 'dot stale'; $('banner').className = 'banner show'; });
    var history = fetch('api/history?seconds=600', { cache: 'no-store' }).then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(renderCharts).catch(function (e) { if (window.console) console.warn('history', e); });
    return Promise.all([status, history]);
  }
  refresh();
  setInterval(refresh, REFRESH_MS);
})();
</script>
</body>
</html>
`;
