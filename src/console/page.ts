/**
 * The console's page: one HTML document with its style and script inline (no external assets, no build step; it
 * works offline). The script builds everything with DOM calls and `textContent` — data from messages is never
 * parsed as HTML.
 */
export const CONSOLE_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>sfm-streams console</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d2430; background: #f6f7f9; }
  header { background: #1d2430; color: #fff; padding: 8px 16px; display: flex; gap: 16px; align-items: center; }
  header h1 { font-size: 16px; margin: 0 16px 0 0; }
  nav button { background: none; color: #c9d1dc; border: 0; font: inherit; padding: 6px 10px; cursor: pointer; }
  nav button.on { color: #fff; border-bottom: 2px solid #6cb6ff; }
  #status { margin-left: auto; font-size: 12px; color: #c9d1dc; }
  main { padding: 16px; }
  section { display: none; } section.on { display: block; }
  .card { overflow: auto; background: #fff; border: 1px solid #dde1e7; border-radius: 6px; padding: 12px; margin-bottom: 12px; }
  table { border-collapse: collapse; width: 100%; font-size: 13px; }
  th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eceff3; vertical-align: top; }
  tr.pick { cursor: pointer; } tr.pick:hover { background: #eef5ff; }
  .error { color: #b3261e; background: #fdecea; border: 1px solid #f3b8b2; padding: 8px; border-radius: 4px; }
  .notice { color: #1b5e20; background: #e8f5e9; border: 1px solid #a5d6a7; padding: 8px; border-radius: 4px; }
  .cut { color: #7a4b00; background: #fff4e5; border: 1px solid #f0c987; padding: 8px; border-radius: 4px; margin-top: 8px; }
  .error:empty, .notice:empty, .cut:empty { display: none; }
  pre { background: #f3f5f8; padding: 8px; overflow: auto; max-height: 320px; font-size: 12px; }
  input[type=text] { font: inherit; padding: 4px 6px; width: 320px; }
  button.act { font: inherit; padding: 4px 10px; }
  svg text { font: 11px system-ui, sans-serif; fill: #1d2430; }
  .node rect { fill: #fff; stroke: #8a97a8; }
  .node.source rect { fill: #eef5ff; } .node.sink rect { fill: #eefaf0; } .node.dlq rect { fill: #fff4e5; }
  .node.retrying rect { stroke: #e0a040; stroke-width: 2.5; }
  .node.held rect { stroke: #b3261e; stroke-width: 2.5; fill: #fdecea; }
  .node text.title { font-weight: 600; font-size: 12px; }
  .edge { stroke: #8a97a8; fill: none; } .edge.poison { stroke: #e0a040; stroke-dasharray: 4 3; }
  .legend span { display: inline-block; margin-right: 12px; font-size: 12px; }
</style>
</head>
<body>
<header><h1>sfm-streams · <span id="topology">…</span></h1>
<nav><button data-view="graph">Topology</button><button data-view="charts">Lag &amp; throughput</button><button data-view="dlq">Dead letters</button><button data-view="memory">A memory</button></nav>
<div id="status"></div></header>
<main>
<section id="view-graph"><div class="card"><svg id="graph" role="img" aria-label="topology graph"></svg></div>
<div class="card" id="runtime"></div></section>
<section id="view-charts">
<div class="card"><h3>Lag per partition (messages), last minutes</h3><svg id="lag-chart" width="900" height="240"></svg><div class="legend" id="lag-legend"></div></div>
<div class="card"><h3>Throughput (per second): consumed, done, dead-lettered, commits</h3><svg id="rate-chart" width="900" height="240"></svg><div class="legend" id="rate-legend"></div></div>
</section>
<section id="view-dlq">
<div class="card"><div id="dlq-count"></div>
<p><input type="text" id="dlq-filter" placeholder="stage:validate class:PoisonError"> <button class="act" id="dlq-apply">Filter</button>
<button class="act" id="dlq-redrive-set">Redrive the filtered set (stage, code)</button></p>
<div class="error" id="dlq-error"></div><div class="notice" id="dlq-notice"></div><div class="cut" id="dlq-window"></div>
<h3>By stage and error class</h3><table id="dlq-stages"><thead><tr><th>stage</th><th>error class</th><th>letters</th></tr></thead><tbody></tbody></table></div>
<div class="card"><h3>Letters <span id="dlq-matching"></span></h3><table id="dlq-list"><thead><tr><th>partition@offset</th><th>stage</th><th>error class</th><th>code</th><th>message</th><th>failed at</th><th>from</th></tr></thead><tbody></tbody></table></div>
<div class="card" id="dlq-detail" hidden><h3>Letter <span id="dlq-detail-title"></span> <button class="act" id="dlq-redrive-one">Redrive letters like this one (its stage and code)</button></h3>
<h4>Headers</h4><table id="dlq-headers"><tbody></tbody></table><h4>Key</h4><pre id="dlq-key"></pre><h4>Value</h4><pre id="dlq-value"></pre></div>
</section>
<section id="view-memory">
<div class="card"><input type="text" id="memory-id" placeholder="memory id"> <button class="act" id="memory-go">Look up</button>
<div class="error" id="memory-error"></div></div>
<div id="memory-result" hidden>
<div class="card"><h3>Row (memories table)</h3><pre id="memory-row"></pre></div>
<div class="card"><h3>Vector</h3><div id="memory-vector"></div></div>
<div class="card"><h3>History (memory.audit)</h3><table id="memory-audit"><thead><tr><th>offset</th><th>event_id</th><th>op</th><th>version</th><th>timestamp</th><th>outcome</th><th>processed at</th></tr></thead><tbody></tbody></table>
<div id="memory-window"></div><div class="cut" id="memory-notes"></div></div></div>
</section>
</main>
<script>
'use strict'
const $ = (id) => document.getElementById(id)
const SVG = 'http://www.w3.org/2000/svg'
const svg = (name, attrs, parent) => {
  const el = document.createElementNS(SVG, name)
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v))
  if (parent) parent.appendChild(el)
  return el
}
const el = (name, text, parent) => {
  const e = document.createElement(name)
  if (text !== undefined) e.textContent = String(text)
  if (parent) parent.appendChild(e)
  return e
}
const fmt = (n) => (n === undefined || n === null ? '–' : Math.abs(n) >= 100 ? String(Math.round(n)) : String(Math.round(n * 10) / 10))
const cut = (s, n) => (s.length > n ? s.slice(0, n - 1) + '…' : s)
async function api(path, init) {
  const res = await fetch(path, init)
  const body = await res.json().catch(() => ({ error: 'the console answered ' + res.status + ' without JSON' }))
  if (!res.ok) throw new Error(body.error || 'HTTP ' + res.status)
  return body
}

// --- views ---
function show(view) {
  for (const s of document.querySelectorAll('section')) s.classList.toggle('on', s.id === 'view-' + view)
  for (const b of document.querySelectorAll('nav button')) b.classList.toggle('on', b.dataset.view === view)
  if (view === 'dlq') loadDlq()
  if (view === 'charts') drawCharts()
}
for (const b of document.querySelectorAll('nav button')) b.onclick = () => { location.hash = b.dataset.view }
window.onhashchange = () => show((location.hash || '#graph').slice(1))

// --- graph ---
let graph, allowWrites = false
const W = 200, H = 100, GX = 40, GY = 22
function layout(g) {
  // Columns by the longest path from the source; the DLQ in a row of its own below, under the middle.
  const col = { source: 0 }
  const flow = g.edges.filter((e) => e.to !== 'dlq')
  for (let i = 0; i < g.nodes.length; i++) for (const e of flow) if (col[e.from] !== undefined) col[e.to] = Math.max(col[e.to] || 0, col[e.from] + 1)
  const columns = Math.max(...Object.values(col)) + 1
  const rows = {}
  const pos = {}
  for (const n of g.nodes) {
    if (n.id === 'dlq') continue
    const c = col[n.id] ?? 0
    const r = rows[c] = (rows[c] ?? -1) + 1
    pos[n.id] = { x: 10 + c * (W + GX), y: 10 + r * (H + GY) }
  }
  const maxRows = Math.max(...Object.values(rows)) + 1
  // Centre the columns that hold fewer nodes.
  for (const n of g.nodes) {
    if (n.id === 'dlq') continue
    const count = rows[col[n.id] ?? 0] + 1
    pos[n.id].y += ((maxRows - count) * (H + GY)) / 2
  }
  const width = 20 + columns * (W + GX) - GX
  pos.dlq = { x: (width - W) / 2, y: 10 + maxRows * (H + GY) + GY }
  return { pos, width, height: pos.dlq.y + H + 10 }
}
function drawGraph(stats) {
  const root = $('graph')
  root.replaceChildren()
  const { pos, width, height } = layout(graph)
  // Scaled to the page's width when wider (the viewBox keeps it whole).
  root.setAttribute('viewBox', '0 0 ' + width + ' ' + height)
  root.setAttribute('width', width); root.setAttribute('height', height)
  root.style.maxWidth = '100%'; root.style.height = 'auto'
  const defs = svg('defs', {}, root)
  const marker = svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto' }, defs)
  svg('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#8a97a8' }, marker)
  for (const e of graph.edges) {
    const a = pos[e.from], b = pos[e.to]
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2
    const poison = e.label === 'poison'
    const bx = b.x + W / 2, by = b.y
    const d = poison ? 'M' + (a.x + W / 2) + ',' + (a.y + H) + ' C' + (a.x + W / 2) + ',' + (by - GY) + ' ' + bx + ',' + (a.y + H + GY) + ' ' + bx + ',' + by
      : 'M' + x1 + ',' + y1 + ' C' + (x1 + GX / 2) + ',' + y1 + ' ' + (x2 - GX / 2) + ',' + y2 + ' ' + x2 + ',' + y2
    svg('path', { d, class: 'edge' + (poison ? ' poison' : ''), 'marker-end': 'url(#arrow)' }, root)
  }
  for (const n of graph.nodes) {
    const s = (stats && stats.nodes[n.id]) || {}
    const g = svg('g', { class: 'node ' + n.kind + (s.held ? ' held' : s.retrying ? ' retrying' : ''), 'data-node': n.id, transform: 'translate(' + pos[n.id].x + ',' + pos[n.id].y + ')' }, root)
    svg('rect', { width: W, height: H, rx: 6 }, g)
    const lines = [[n.label + (n.stage && n.stage !== n.label ? '  (' + n.stage + ')' : ''), 'title']]
    if (n.detail) lines.push([cut(n.detail, 34), 'detail'])
    const rates = []
    if (s.rate !== undefined) rates.push(fmt(s.rate) + '/s')
    if (s.inFlight !== undefined) rates.push('in flight ' + s.inFlight + (s.writing ? ' (writing ' + s.writing + ')' : ''))
    if (rates.length) lines.push([rates.join(' · '), 'rates'])
    const figures = []
    if (s.deadLettered !== undefined && n.kind !== 'dlq') figures.push('dlq ' + s.deadLettered)
    if (s.dropped) figures.push('dropped ' + s.dropped)
    if (s.retries) figures.push('retries ' + s.retries)
    if (n.kind === 'dlq') figures.push(s.deadLettered + ' dead-lettered')
    lines.push([figures.join(' · '), 'figures'])
    if (s.held) lines.push([cut('HELD: ' + s.held, 38), 'held'])
    else if (s.retrying) lines.push([cut('retrying ' + s.retrying, 38), 'retrying'])
    lines.forEach(([t, cls], i) => { const x = svg('text', { x: 8, y: 17 + i * 17, class: cls }, g); x.textContent = t })
    const title = svg('title', {}, g); title.textContent = [n.label, n.detail || '', s.held ? 'HELD: ' + s.held : s.retrying ? 'retrying ' + s.retrying : ''].join('\\n')
  }
}
function drawRuntime(stats) {
  const r = stats.runtime
  const box = $('runtime'); box.replaceChildren()
  const t = el('table', undefined, box); const body = el('tbody', undefined, t)
  const rows = [['consumed', r.consumed], ['done', r.done], ['in flight', r.inFlight + ' (' + Math.round(r.inFlightBytes / 1024) + ' KiB)'], ['lag', r.lag === null ? 'not measured yet' : r.lag],
    ['dead-lettered', r.deadLettered], ['dropped', r.dropped], ['commits', r.commits + (r.commitErrors ? ' (' + r.commitErrors + ' failed)' : '')], ['sink retries', r.sinkRetries],
    ['source', r.sourceHeld ? 'HELD: reconnecting, attempt ' + r.sourceHeld.attempts + ': ' + r.sourceHeld.reason : 'reading'], ['assigned', r.assigned.join(', ')]]
  for (const [k, v] of rows) { const tr = el('tr', undefined, body); el('th', k, tr); const td = el('td', v, tr); td.dataset.stat = k }
}

// --- charts ---
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf']
function chart(root, legend, series, unit) {
  root.replaceChildren(); legend.replaceChildren()
  const w = +root.getAttribute('width'), h = +root.getAttribute('height'), pad = 40
  const all = series.flatMap((s) => s.points)
  if (all.length < 2) { const t = svg('text', { x: pad, y: h / 2 }, root); t.textContent = 'collecting samples…'; return }
  const t0 = Math.min(...all.map((p) => p[0])), t1 = Math.max(...all.map((p) => p[0]))
  const max = Math.max(1, ...all.map((p) => p[1]))
  const X = (t) => pad + ((t - t0) / Math.max(1, t1 - t0)) * (w - pad - 10), Y = (v) => h - 20 - (v / max) * (h - 40)
  svg('line', { x1: pad, y1: h - 20, x2: w - 10, y2: h - 20, stroke: '#8a97a8' }, root)
  svg('line', { x1: pad, y1: 10, x2: pad, y2: h - 20, stroke: '#8a97a8' }, root)
  const top = svg('text', { x: 2, y: 16 }, root); top.textContent = fmt(max) + unit
  const zero = svg('text', { x: 2, y: h - 20 }, root); zero.textContent = '0'
  const ago = svg('text', { x: pad, y: h - 4 }, root); ago.textContent = '-' + Math.round((t1 - t0) / 1000) + ' s'
  const now = svg('text', { x: w - 40, y: h - 4 }, root); now.textContent = 'now'
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]
    svg('polyline', { fill: 'none', stroke: color, 'stroke-width': 1.8, points: s.points.map((p) => X(p[0]) + ',' + Y(p[1])).join(' '), 'data-series': s.name }, root)
    const item = el('span', '■ ' + s.name + ' ' + fmt(s.points.at(-1)?.[1]), legend); item.style.color = color
  })
}
async function drawCharts() {
  const history = await api('/api/history').catch(() => [])
  const partitions = [...new Set(history.flatMap((s) => Object.keys(s.lag)))].sort()
  chart($('lag-chart'), $('lag-legend'), partitions.map((p) => ({ name: p, points: history.filter((s) => p in s.lag).map((s) => [s.t, s.lag[p]]) })), '')
  const rate = (key) => history.slice(1).map((s, i) => [s.t, Math.max(0, (s[key] - history[i][key]) / Math.max(0.001, (s.t - history[i].t) / 1000))])
  chart($('rate-chart'), $('rate-legend'), [['consumed', 'consumed'], ['done', 'done'], ['dead-lettered', 'deadLettered'], ['commits', 'commits']].map(([name, key]) => ({ name, points: rate(key) })), '/s')
}

// --- dead letters ---
let current
async function loadDlq() {
  $('dlq-error').textContent = ''
  const filter = $('dlq-filter').value
  let list
  try { list = await api('/api/dlq?filter=' + encodeURIComponent(filter)) } catch (e) { $('dlq-error').textContent = e.message; return }
  const stats = await api('/api/stats').catch(() => undefined)
  $('dlq-count').textContent = list.total + ' dead letters in ' + list.topic + (stats ? ' · this runner dead-lettered ' + stats.runtime.deadLettered : '')
  $('dlq-window').textContent = list.window.cut ? 'Read the newest ' + list.window.perPartition + ' letters of each partition (' + list.window.read + ' letters): the stage counts and the list cover those only.' : ''
  $('dlq-count').dataset.total = list.total
  const stages = $('dlq-stages').tBodies[0]; stages.replaceChildren()
  for (const [stage, classes] of Object.entries(list.byStage)) for (const [cls, n] of Object.entries(classes)) {
    const tr = el('tr', undefined, stages); tr.className = 'pick'; el('td', stage, tr); el('td', cls, tr); el('td', n, tr)
    tr.onclick = () => { $('dlq-filter').value = 'stage:' + stage + ' class:' + cls; loadDlq() }
  }
  $('dlq-matching').textContent = '(' + list.matching + ' matching' + (list.matching > list.letters.length ? ', newest ' + list.letters.length + ' shown' : '') + ')'
  const body = $('dlq-list').tBodies[0]; body.replaceChildren()
  for (const l of list.letters) {
    const tr = el('tr', undefined, body); tr.className = 'pick'; tr.dataset.letter = l.partition + '@' + l.offset
    for (const v of [l.partition + '@' + l.offset, l.stage, l.errorClass, l.errorCode, cut(l.message, 120), l.failedAt, l.source]) el('td', v, tr)
    tr.onclick = () => openLetter(l.partition, l.offset)
  }
}
async function openLetter(partition, offset) {
  $('dlq-error').textContent = ''
  let letter
  try { letter = await api('/api/dlq/letter?partition=' + partition + '&offset=' + offset) } catch (e) { $('dlq-error').textContent = e.message; return }
  current = letter
  $('dlq-detail').hidden = false
  $('dlq-detail-title').textContent = letter.partition + '@' + letter.offset
  const body = $('dlq-headers').tBodies[0]; body.replaceChildren()
  for (const [k, v] of Object.entries(letter.headers)) { const tr = el('tr', undefined, body); el('th', k, tr); el('td', v, tr) }
  $('dlq-key').textContent = letter.key ? letter.key.text + (letter.key.encoding === 'base64' ? '  (base64)' : '') : '(no key)'
  $('dlq-value').textContent = letter.value ? letter.value.text + (letter.value.encoding === 'base64' ? '  (base64)' : '') : '(null)'
  $('dlq-detail').scrollIntoView()
}
async function redrive(body) {
  $('dlq-error').textContent = ''; $('dlq-notice').textContent = ''
  try {
    const r = await api('/api/dlq/redrive', { method: 'POST', headers: { 'content-type': 'application/json', 'x-sfm-console': '1' }, body: JSON.stringify(body) })
    const sel = [r.selection.stage ? 'stage ' + r.selection.stage : '', r.selection.errorCode ? 'code ' + r.selection.errorCode : ''].filter(Boolean).join(', ') || 'every letter'
    $('dlq-notice').textContent = 'redriven ' + r.redriven + ' of ' + r.matched + ' (' + sel + ')' + (r.alreadyRedriven ? '; ' + r.alreadyRedriven + ' redriven before' : '') + (r.refused && r.refused.length ? '; ' + r.refused.length + ' refused (redriven too often, or stored cut down)' : '')
    await loadDlq()
  } catch (e) { $('dlq-error').textContent = e.message }
}
$('dlq-apply').onclick = loadDlq
$('dlq-filter').onkeydown = (e) => { if (e.key === 'Enter') loadDlq() }
$('dlq-redrive-set').onclick = () => redrive({ filter: $('dlq-filter').value })
$('dlq-redrive-one').onclick = () => current && redrive({ partition: current.partition, offset: current.offset })

// --- a memory ---
async function lookup() {
  $('memory-error').textContent = ''; $('memory-result').hidden = true
  const id = $('memory-id').value
  let m
  try { m = await api('/api/memory?id=' + encodeURIComponent(id)) } catch (e) { $('memory-error').textContent = e.message; return }
  $('memory-result').hidden = false
  $('memory-row').textContent = m.row ? JSON.stringify(m.row, null, 2) : '(no row)'
  $('memory-vector').textContent = m.vector === null ? '(no vector store)' : m.vector.present ? 'present (version ' + m.vector.version + ', model ' + (m.vector.modelRevision ?? '–') + ')' : m.vector.deleted ? 'deleted (tombstone at version ' + m.vector.version + ')' : 'absent'
  const body = $('memory-audit').tBodies[0]; body.replaceChildren()
  for (const a of m.audit || []) { const tr = el('tr', undefined, body); tr.dataset.outcome = a.outcome; for (const v of [a.offset, a.event_id, a.op, a.version, a.timestamp, a.outcome, a.processed_at]) el('td', v, tr) }
  const w = m.auditWindow
  $('memory-window').textContent = w ? 'read ' + (BigInt(w.to) - BigInt(w.from)) + ' of the ' + w.stored + ' records of ' + w.topic + '[' + w.partition + '] (the partition this id is keyed to)' : ''
  $('memory-notes').textContent = m.notes.join('; ')
}
$('memory-go').onclick = lookup
$('memory-id').onkeydown = (e) => { if (e.key === 'Enter') lookup() }

// --- polling ---
async function tick() {
  try {
    const stats = await api('/api/stats')
    drawGraph(stats); drawRuntime(stats)
    $('status').textContent = 'updated ' + new Date(stats.at).toLocaleTimeString() + (allowWrites ? ' · writes allowed' : ' · read-only')
    if ($('view-charts').classList.contains('on')) drawCharts()
  } catch (e) { $('status').textContent = 'runner unreachable: ' + e.message }
}
;(async () => {
  graph = await api('/api/graph')
  allowWrites = graph.allowWrites
  $('topology').textContent = graph.name
  document.body.dataset.ready = '1'
  show((location.hash || '#graph').slice(1))
  await tick()
  setInterval(tick, 2000)
})()
</script>
</body>
</html>
`
