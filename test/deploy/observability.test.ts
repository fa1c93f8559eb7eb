import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { test } from 'node:test'
import { parse, stringify } from 'yaml'
import { REPO_ROOT } from '../../scripts/stack/config.ts'
import { HISTOGRAM_NAMES, METRIC_NAMES, Metrics } from '../../src/telemetry/metrics.ts'
import { promqlNames } from '../helpers/promql.ts'

const DASHBOARD = join(REPO_ROOT, 'deploy/grafana/sfm-dashboard.json')
const ALERTS = join(REPO_ROOT, 'deploy/prometheus/alerts.yml')
const ALERT_TESTS = join(REPO_ROOT, 'deploy/prometheus/alerts.test.yml')

interface Panel {
  id: number
  type: string
  title: string
  gridPos: { h: number; w: number; x: number; y: number }
  datasource?: { type: string; uid: string }
  targets?: { expr: string; refId: string }[]
}
interface Dashboard {
  uid: string
  panels: Panel[]
  templating: { list: { name: string; type: string; query?: unknown; definition?: string }[] }
}
interface Rule {
  alert?: string
  record?: string
  expr: string
  for?: string
  labels?: Record<string, string>
  annotations?: Record<string, string>
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard
const alerts = parse(readFileSync(ALERTS, 'utf8')) as { groups: { name: string; rules: Rule[] }[] }
const rules = alerts.groups.flatMap((g) => g.rules)

/** Every PromQL expression of the dashboard (panels and variable queries) and of the alert rules. */
const expressions: { where: string; expr: string }[] = [
  ...dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel "${p.title}"`, expr: t.expr }))),
  ...dashboard.templating.list
    .filter((v) => v.type === 'query')
    .map((v) => ({ where: `variable ${v.name}`, expr: /label_values\((\w+)/.exec(v.definition ?? '')![1]! })),
  ...rules.map((r) => ({ where: `alert ${r.alert}`, expr: r.expr }))
]

/** Series the runner exports: every metric name, plus the _bucket/_sum/_count series of histograms. */
const EXPORTED = new Set<string>([
  ...METRIC_NAMES,
  ...HISTOGRAM_NAMES.flatMap((name) => [`${name}_bucket`, `${name}_sum`, `${name}_count`])
])
/** Series Prometheus itself adds per scrape target. */
const SCRAPE_SERIES = new Set(['up'])

/** Labels on each exported series, read from a real exposition with one sample of every instrument. */
async function exportedLabels(): Promise<Map<string, Set<string>>> {
  const metrics = new Metrics({ topology: 'labels' })
  try {
    metrics.consumed('t')
    metrics.observeProcessing(0.01)
    metrics.sinkWrite('kv', { messages: 1, bytes: 100, seconds: 0.01 })
    metrics.sinkRetry('kv')
    metrics.dlq('validate', new Error('x'))
    metrics.dropped('duplicate')
    metrics.commit('ok', 0.01)
    metrics.committedOffset('t', 0, 1n)
    metrics.setLag(new Map([['t', [1n]]]))
    metrics.setInflight(() => ({ messages: 1, bytes: 1 }))
    metrics.setHeld(() => new Map([['kv', 61]]))
    metrics.produced('t', 0.01)
    metrics.postgresRows('applied', 1)
    metrics.observePostgresBatch(0.01)
    metrics.embedded('lexical', 10, 0.01)
    metrics.vectorWrites('pgvector', 'upsert', 10)
    metrics.vectorRequest('pgvector', 10)
    metrics.setParity({ missing: 1 })
    const labels = new Map<string, Set<string>>()
    for (const line of (await metrics.text()).split('\n')) {
      const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s/.exec(line)
      if (match === null) continue
      const set = labels.get(match[1]!) ?? new Set<string>()
      for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) set.add(pair[1]!)
      labels.set(match[1]!, set)
    }
    return labels
  } finally {
    await metrics.close()
  }
}

/** Labels Prometheus attaches to every scraped series (PodMonitor / scrape config target labels). */
const TARGET_LABELS = ['job', 'instance', 'namespace', 'pod', 'container', 'service']

test('every metric the dashboard and the alerts reference is exported by the runner', () => {
  assert.ok(expressions.length >= 25, `only ${expressions.length} expressions found`)
  const referenced = new Set<string>()
  for (const { where, expr } of expressions) {
    const { selectors } = promqlNames(expr)
    assert.ok(selectors.length > 0, `${where}: no metric in ${expr}`)
    for (const { metric } of selectors) {
      assert.ok(EXPORTED.has(metric) || SCRAPE_SERIES.has(metric), `${where}: ${metric} is not exported (${expr})`)
      referenced.add(metric)
    }
  }
  // The scanner must not be blind: a made-up name is found and refused.
  const probe = promqlNames('sum by (topic) (rate(sfm_not_a_metric{topology=~"$topology"}[$__rate_interval]))')
  assert.deepEqual(
    probe.selectors.map((s) => s.metric),
    ['sfm_not_a_metric']
  )
  assert.ok(!EXPORTED.has('sfm_not_a_metric'))
  // Histograms are read through their buckets, never as a bare name (which Prometheus does not have).
  for (const name of HISTOGRAM_NAMES) assert.ok(!referenced.has(name), `${name} has no series; use ${name}_bucket`)
})

test('the labels the expressions match and group on exist on those series', async () => {
  const labels = await exportedLabels()
  for (const { where, expr } of expressions) {
    const { selectors, grouping } = promqlNames(expr)
    const available = new Set<string>(TARGET_LABELS)
    for (const { metric, labels: matched } of selectors) {
      if (SCRAPE_SERIES.has(metric)) continue
      const own = labels.get(metric)
      assert.ok(own, `${where}: no sample of ${metric} in the exposition: record one in exportedLabels()`)
      for (const label of own) available.add(label)
      for (const label of matched) {
        assert.ok(own.has(label) || TARGET_LABELS.includes(label), `${where}: ${metric} has no label ${label}`)
      }
    }
    for (const label of grouping) assert.ok(available.has(label), `${where}: groups by ${label}, which no series has`)
  }
})

test('the dashboard shows lag per partition, rates, processing time, DLQ by stage, commit and producer latency, vectors', () => {
  const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr))
  const shows = (metric: string, by?: string) =>
    exprs.some((e) => {
      const names = promqlNames(e)
      return names.selectors.some((s) => s.metric === metric) && (by === undefined || names.grouping.includes(by))
    })
  assert.ok(shows('sfm_consumer_lag', 'partition'), 'lag per partition')
  assert.ok(shows('sfm_messages_consumed_total', 'topic'), 'consume rate')
  assert.ok(shows('sfm_processing_seconds_bucket'), 'processing time')
  assert.ok(shows('sfm_dlq_total', 'stage'), 'DLQ by stage')
  assert.ok(shows('sfm_commit_seconds_bucket'), 'commit latency')
  assert.ok(shows('sfm_producer_latency_seconds_bucket', 'topic'), 'producer latency')
  assert.ok(shows('sfm_sink_retries_total', 'branch'), 'sink retries')
  assert.ok(shows('sfm_embed_seconds_bucket', 'embedder'), 'embedding time')
  assert.ok(shows('sfm_embedded_texts_total', 'embedder'), 'texts embedded per second')
  assert.ok(shows('sfm_vector_upserts_total', 'store'), 'vector upserts per second')
  assert.ok(shows('sfm_vector_points_per_request_bucket', 'store'), 'points per request')
  assert.ok(shows('sfm_parity_differences', 'class'), 'parity differences by class')

  // Structure Grafana needs: unique ids, every panel on the 24-column grid and on the templated data source.
  const ids = dashboard.panels.map((p) => p.id)
  assert.equal(new Set(ids).size, ids.length, 'panel ids must be unique')
  const occupied = new Set<string>()
  for (const panel of dashboard.panels) {
    const { x, y, w, h } = panel.gridPos
    assert.ok(x >= 0 && w > 0 && x + w <= 24 && h > 0, `panel "${panel.title}" is off the grid`)
    for (let row = y; row < y + h; row++) {
      for (let col = x; col < x + w; col++) {
        assert.ok(!occupied.has(`${row}:${col}`), `panel "${panel.title}" overlaps another at row ${row}`)
        occupied.add(`${row}:${col}`)
      }
    }
    if (panel.type === 'row') continue
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a JavaScript template
    assert.deepEqual(panel.datasource, { type: 'prometheus', uid: '${datasource}' }, `panel "${panel.title}"`)
    assert.ok((panel.targets ?? []).length > 0, `panel "${panel.title}" has no query`)
    for (const target of panel.targets ?? []) {
      assert.match(target.expr, /topology=~"\$topology"/, `panel "${panel.title}" ignores the topology variable`)
    }
  }
})

test('alert rules: lag growing, DLQ rate, no commits, sink retries, sink held — each with severity and a summary', () => {
  const byName = new Map(rules.map((r) => [r.alert, r]))
  const required: [string, string][] = [
    ['SfmConsumerLagGrowing', 'sfm_consumer_lag'],
    ['SfmDeadLettersHigh', 'sfm_dlq_total'],
    ['SfmNoCommits', 'sfm_commits_total'],
    ['SfmSinkRetrying', 'sfm_sink_retries_total'],
    ['SfmParityDifferences', 'sfm_parity_differences'],
    ['SfmSinkHeld', 'sfm_sink_held_seconds']
  ]
  for (const [name, metric] of required) {
    const rule = byName.get(name)
    assert.ok(rule, `alert ${name} is missing`)
    assert.ok(
      promqlNames(rule.expr).selectors.some((s) => s.metric === metric),
      `${name} must read ${metric}`
    )
  }
  for (const rule of rules) {
    assert.match(rule.alert ?? '', /^Sfm[A-Z][A-Za-z]+$/)
    assert.ok(['critical', 'warning', 'info'].includes(rule.labels?.severity ?? ''), `${rule.alert}: severity`)
    assert.match(rule.for ?? '', /^\d+[smh]$/, `${rule.alert}: a "for" duration avoids flapping`)
    assert.ok(rule.annotations?.summary && rule.annotations.description, `${rule.alert}: summary and description`)
    // Every alert keeps the topology label, so a page says which topology is in trouble.
    assert.ok(/by \([^)]*topology/.test(rule.expr), `${rule.alert} must aggregate by topology`)
  }
})

function findPromtool(): string | undefined {
  const candidates = [
    process.env.PROMTOOL,
    ...(process.env.PATH ?? '').split(delimiter).map((d) => join(d, 'promtool'))
  ]
  for (const candidate of candidates) {
    if (candidate && spawnSync(candidate, ['--version']).status === 0) return candidate
  }
  return undefined
}

const NO_PROMTOOL =
  'promtool not found (set PROMTOOL or put it on PATH; Debian: `apt-get download prometheus && dpkg -x prometheus_*.deb DIR`)'

test('promtool: alerts.yml is valid, its unit tests pass, and every dashboard query parses', (t) => {
  const promtool = findPromtool()
  if (promtool === undefined) {
    t.diagnostic(`skipped: ${NO_PROMTOOL}`)
    t.skip(NO_PROMTOOL)
    return
  }
  const run = (args: string[]) => {
    const result = spawnSync(promtool, args, { encoding: 'utf8', cwd: REPO_ROOT })
    assert.equal(result.status, 0, `promtool ${args.join(' ')}:\n${result.stdout}${result.stderr}`)
  }
  run(['check', 'rules', ALERTS])
  run(['test', 'rules', ALERT_TESTS])
  // promtool parses expressions in rule files: wrap each dashboard query in a recording rule, with Grafana's
  // variables replaced by values they take.
  const dir = mkdtempSync(join(tmpdir(), 'sfm-dashboard-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const records = dashboard.panels.flatMap((p) =>
    (p.targets ?? []).map((target, i) => ({
      record: `dashboard:panel_${p.id}_${i}`,
      expr: target.expr.replaceAll('$__rate_interval', '1m').replaceAll('$topology', 'memory')
    }))
  )
  const file = join(dir, 'dashboard-rules.yml')
  writeFileSync(file, stringify({ groups: [{ name: 'dashboard', rules: records }] }))
  run(['check', 'rules', file])
})
