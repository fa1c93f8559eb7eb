/**
 * The console in a real browser: headless Chromium (Debian's `chromium`; `.ci/run` installs it) driven by
 * playwright-core, against the real runner (`npm start -- topologies/memory.ts --console 0`) on the embedded stack,
 * with poison in its input. Checks what a person sees, and keeps a screenshot of each view in
 * test-artifacts/console/. Skips, saying why, where Chromium is not installed.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { existsSync, mkdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { describe, test } from 'node:test'
import { openEmbeddedLog } from '../../src/log/embedded-log.ts'
import { RedriveHeaders } from '../../src/ops/dlq.ts'
import { openLogAccess } from '../../src/ops/log.ts'
import { embeddedEnv, spawnNode, tempDataDir } from '../helpers/embedded-log.ts'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const ARTIFACTS = resolve(import.meta.dirname, '../../test-artifacts/console')
const IDS = 12
const skip = existsSync(CHROMIUM)
  ? false
  : `no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`
if (skip) process.stderr.write(`console browser test skipped: ${skip}\n`)

/** memory.events with IDS memories (two versions each) and two poison records: not JSON, and not a memory event. */
function seed(dir: string): number {
  const log = openEmbeddedLog({ path: join(dir, 'log.sqlite') })
  try {
    log.ensureTopics(['memory.events'])
    const records = []
    for (let i = 0; i < IDS; i++) {
      for (let v = 0; v < 2; v++) {
        const event = {
          event_id: randomUUID(),
          id: `m-${i}`,
          namespace: 'ns',
          type: 'semantic',
          version: v,
          timestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, v)).toISOString(),
          payload: { text: `memory ${i} version ${v}` }
        }
        records.push({ topic: 'memory.events', key: Buffer.from(event.id), value: Buffer.from(JSON.stringify(event)) })
      }
    }
    records.push({ topic: 'memory.events', key: Buffer.from('poison-1'), value: Buffer.from('not json {') })
    records.push({
      topic: 'memory.events',
      key: Buffer.from('poison-2'),
      value: Buffer.from(JSON.stringify({ id: 'poison-2', not: 'a memory event' }))
    })
    log.append(records)
    return records.length
  } finally {
    log.close()
  }
}

interface Stats {
  runtime: { done: number; deadLettered: number; consumed: number }
}

async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const until = Date.now() + timeoutMs
  for (;;) {
    const value = await probe().catch(() => undefined)
    if (value !== undefined) return value
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 250))
  }
}

describe('the console in headless Chromium', { skip }, () => {
  test('graph, DLQ count, a dead letter, a redrive, a memory, and bad input — as a person sees them', async (t) => {
    const { chromium } = await import('playwright-core')
    mkdirSync(ARTIFACTS, { recursive: true })
    const dir = tempDataDir(t, 'sfm-console-')
    const total = seed(dir)
    // The embedded stack entirely: the memories table in PGlite under `dir`, whatever DATABASE_URL the tests have.
    const env = embeddedEnv(dir)
    delete env.DATABASE_URL
    const startRunner = (...extra: string[]) =>
      spawnNode(['src/cli/start.ts', 'topologies/memory.ts', '--console', '0', '--status-interval', '0', ...extra], env)
    let runner = startRunner()
    t.after(async () => {
      runner.child.kill('SIGTERM')
      await runner.exited
    })
    const url = await waitFor('the console URL in the log', 60_000, async () => {
      return /console: (http:\/\/127\.0\.0\.1:\d+\/) \(read-only\)/.exec(runner.stderr())?.[1]
    })
    // Everything consumed: the events done, the two poison records dead-lettered (durably: stats count after the write).
    const stats = await waitFor('the runner to process the input', 120_000, async () => {
      const s = (await (await fetch(new URL('/api/stats', url))).json()) as Stats
      return s.runtime.done === total && s.runtime.deadLettered === 2 ? s : undefined
    })

    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] })
    t.after(() => browser.close())
    const page = await browser.newPage({ viewport: { width: 1500, height: 900 } })
    const pageErrors: string[] = []
    page.on('pageerror', (error) => pageErrors.push(error.message))
    // Offline: any request that leaves the runner's origin fails the test.
    const origins = [new URL(url).origin]
    const foreign: string[] = []
    page.on('request', (request) => {
      if (!origins.some((o) => request.url().startsWith(`${o}/`))) foreign.push(request.url())
    })

    // --- the topology graph: the memory topology's nodes, live figures
    await page.goto(`${url}#graph`)
    await page.waitForSelector('[data-node="dlq"] text.figures')
    await page.locator('[data-node="dlq"] text.figures', { hasText: '2 dead-lettered' }).waitFor()
    const nodes = await page.$$eval('[data-node]', (els) =>
      els.map((e) => [e.getAttribute('data-node'), e.querySelector('text.title')?.textContent ?? ''])
    )
    assert.deepEqual(
      nodes.map(([id]) => id),
      [
        'source',
        'op:0',
        'op:1',
        'op:2',
        'op:3',
        'branch:kv:batch',
        'sink:kv',
        'branch:vectors:batch',
        'sink:vectors',
        'dlq'
      ]
    )
    assert.deepEqual(
      nodes.map(([, title]) => title),
      [
        'source',
        'decodeJson  (decode)',
        'legacyEvents  (legacy-events)',
        'validate',
        'dedupe',
        'batch (kv)',
        'kv',
        'batch (vectors)',
        'vectors',
        'dead letters'
      ]
    )
    assert.equal(await page.textContent('[data-node="op:0"] text.figures'), 'dlq 1')
    assert.equal(await page.textContent('[data-node="op:1"] text.figures'), 'dlq 0')
    assert.equal(await page.textContent('[data-node="op:2"] text.figures'), 'dlq 1')
    assert.equal(await page.textContent('[data-stat="done"]'), String(total))
    await page.screenshot({ path: join(ARTIFACTS, 'graph.png'), fullPage: true })

    // --- lag and throughput
    await page.goto(`${url}#charts`)
    await page.waitForSelector('#lag-chart polyline')
    const partitions = await page.$$eval('#lag-chart polyline', (els) => els.map((e) => e.getAttribute('data-series')))
    assert.ok(
      partitions.length >= 1 && partitions.every((p) => /^memory\.events\[\d+\]$/.test(p ?? '')),
      String(partitions)
    )
    assert.deepEqual(
      await page.$$eval('#rate-chart polyline', (els) => els.map((e) => e.getAttribute('data-series'))),
      ['consumed', 'done', 'dead-lettered', 'commits']
    )
    await page.screenshot({ path: join(ARTIFACTS, 'charts.png'), fullPage: true })

    // --- dead letters: the count the runtime reports, a letter opened with its headers
    await page.goto(`${url}#dlq`)
    await page.waitForSelector('#dlq-list tbody tr')
    assert.equal(await page.getAttribute('#dlq-count', 'data-total'), String(stats.runtime.deadLettered))
    assert.match(
      (await page.textContent('#dlq-count')) ?? '',
      /^2 dead letters in memory\.dlq · this runner dead-lettered 2$/
    )
    const stages = await page.$$eval('#dlq-stages tbody tr', (rows) =>
      rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent).join(' '))
    )
    assert.deepEqual(stages.sort(), ['decode PoisonError 1', 'validate PoisonError 1'])
    await page.click('#dlq-list tbody tr:has-text("decode")')
    await page.waitForSelector('#dlq-headers tr')
    const headers = Object.fromEntries(
      await page.$$eval('#dlq-headers tr', (rows) =>
        rows.map((r) => [r.querySelector('th')?.textContent ?? '', r.querySelector('td')?.textContent ?? ''])
      )
    )
    assert.equal(headers['sfm.dlq.stage'], 'decode')
    assert.equal(headers['sfm.dlq.error.class'], 'PoisonError')
    assert.equal(headers['sfm.dlq.source.topic'], 'memory.events')
    assert.equal(headers['sfm.dlq.topology'], 'memory')
    assert.match(headers['sfm.dlq.error.message'] ?? '', /not JSON/)
    assert.equal(await page.textContent('#dlq-key'), 'poison-1')
    assert.equal(await page.textContent('#dlq-value'), 'not json {')
    const firstLetter = (await page.textContent('#dlq-detail-title')) ?? ''
    await page.screenshot({ path: join(ARTIFACTS, 'dlq.png'), fullPage: true })

    // Bad input: a malformed filter, and a redrive on a read-only console — a clear message, nothing changes.
    await page.fill('#dlq-filter', 'stage=decode')
    await page.click('#dlq-apply')
    await page.waitForSelector('#dlq-error:not(:empty)')
    assert.match(
      (await page.textContent('#dlq-error')) ?? '',
      /malformed filter term "stage=decode": write key:value terms/
    )
    assert.equal(await page.$$eval('#dlq-list tbody tr', (rows) => rows.length), 2)
    await page.click('#dlq-redrive-one')
    await page.locator('#dlq-error', { hasText: 'writes are not allowed' }).waitFor()
    assert.match(
      (await page.textContent('#dlq-error')) ?? '',
      /read-only \(restart the runner with --console-allow-writes/
    )
    await page.screenshot({ path: join(ARTIFACTS, 'dlq-errors.png'), fullPage: true })
    const after = (await (await fetch(new URL('/api/dlq', url))).json()) as { total: number }
    assert.equal(after.total, 2, 'the refused redrive changed nothing')

    // --- a memory: its row, vector and audit history
    await page.goto(`${url}#memory`)
    await page.fill('#memory-id', 'm-3')
    await page.click('#memory-go')
    await page.waitForSelector('#memory-audit tbody tr')
    const row = JSON.parse((await page.textContent('#memory-row')) ?? '{}') as Record<string, unknown>
    assert.equal(row.id, 'm-3')
    assert.equal(row.version, '1')
    assert.deepEqual(row.payload, { text: 'memory 3 version 1' })
    assert.match((await page.textContent('#memory-vector')) ?? '', /^present \(version 1, model /)
    const history = await page.$$eval('#memory-audit tbody tr', (rows) =>
      rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent))
    )
    // Both events of m-3 audited, each with an outcome (which one depends on batching: applied, fenced by the
    // newer one in the same batch, or duplicate after a retried batch); the row holds version 1.
    assert.deepEqual(history.map((h) => h[3]).sort(), ['0', '1'], JSON.stringify(history))
    for (const h of history) assert.ok(['applied', 'fenced', 'duplicate'].includes(h[5] ?? ''), JSON.stringify(h))
    assert.deepEqual(
      history.map((h) => h[2]),
      ['upsert', 'upsert']
    )
    await page.screenshot({ path: join(ARTIFACTS, 'memory.png'), fullPage: true })

    // An unknown id: a clear message, no result shown.
    await page.fill('#memory-id', 'no-such-memory')
    await page.click('#memory-go')
    await page.waitForSelector('#memory-error:not(:empty)')
    assert.equal(
      await page.textContent('#memory-error'),
      'no memory with id "no-such-memory": no row, no vector and no audit record'
    )
    assert.equal(await page.isHidden('#memory-result'), true)
    await page.screenshot({ path: join(ARTIFACTS, 'memory-unknown.png'), fullPage: true })

    // --- a redrive with writes allowed: the same runner's data, restarted with --console-allow-writes
    runner.child.kill('SIGTERM')
    assert.equal((await runner.exited).code, 0)
    runner = startRunner('--console-allow-writes')
    const writeUrl = await waitFor('the writable console URL in the log', 60_000, async () => {
      return /console: (http:\/\/127\.0\.0\.1:\d+\/) \(writes allowed\)/.exec(runner.stderr())?.[1]
    })
    origins.push(new URL(writeUrl).origin)
    await page.goto(`${writeUrl}#dlq`)
    await page.waitForSelector('#dlq-list tbody tr')
    await page.fill('#dlq-filter', 'stage:decode')
    await page.click('#dlq-apply')
    await page.locator('#dlq-matching', { hasText: '(1 matching)' }).waitFor()
    await page.click('#dlq-redrive-set')
    await page.locator('#dlq-notice:not(:empty)').waitFor()
    assert.equal(await page.textContent('#dlq-notice'), 'redriven 1 of 1 (stage decode)')
    assert.equal(await page.textContent('#dlq-error'), '')
    // Back on memory.events, once, with the original key and value and the sfm.redrive.* headers.
    const access = openLogAccess({ target: 'embedded', dataDir: dir, env })
    const redriven: { key: string; value: string; headers: Record<string, string> }[] = []
    try {
      const parts = await access.partitions('memory.events')
      await access.scan(
        'memory.events',
        parts.map((p) => ({ partition: p.partition, from: p.start, to: p.end })),
        (r) => {
          if (!r.headers.has(RedriveHeaders.COUNT)) return
          redriven.push({
            key: r.key?.toString('utf8') ?? '',
            value: r.value?.toString('utf8') ?? '',
            headers: Object.fromEntries([...r.headers].map(([k, v]) => [k, v.toString('utf8')]))
          })
        }
      )
    } finally {
      await access.close()
    }
    assert.equal(redriven.length, 1, JSON.stringify(redriven))
    assert.equal(redriven[0]!.key, 'poison-1')
    assert.equal(redriven[0]!.value, 'not json {')
    assert.equal(redriven[0]!.headers[RedriveHeaders.COUNT], '1')
    assert.equal(redriven[0]!.headers[RedriveHeaders.DLQ_TOPIC], 'memory.dlq')
    // The runner consumes it, and (still not JSON) dead-letters it again; the DLQ view shows the new letter,
    // marked as redriven once, and the runner's own count.
    await waitFor('the redriven letter consumed and dead-lettered again', 60_000, async () => {
      const s = (await (await fetch(new URL('/api/stats', writeUrl))).json()) as Stats
      return s.runtime.deadLettered === 1 ? s : undefined
    })
    await page.fill('#dlq-filter', '')
    await page.click('#dlq-apply')
    await page
      .locator('#dlq-count', { hasText: /^3 dead letters in memory\.dlq · this runner dead-lettered 1$/ })
      .waitFor()
    // The other decode letter: the redriven poison-1, dead-lettered again.
    const decodeLetters = await page.$$eval('#dlq-list tbody tr', (rows) =>
      rows.filter((r) => r.children[1]?.textContent === 'decode').map((r) => r.getAttribute('data-letter') ?? '')
    )
    assert.equal(decodeLetters.length, 2, JSON.stringify(decodeLetters))
    const newLetter = decodeLetters.find((l) => l !== firstLetter)
    assert.ok(newLetter, `a decode letter other than ${firstLetter}: ${JSON.stringify(decodeLetters)}`)
    await page.click(`#dlq-list tbody tr[data-letter="${newLetter}"]`)
    await page.locator('#dlq-headers th', { hasText: RedriveHeaders.COUNT }).waitFor()
    const again = Object.fromEntries(
      await page.$$eval('#dlq-headers tr', (rows) =>
        rows.map((r) => [r.querySelector('th')?.textContent ?? '', r.querySelector('td')?.textContent ?? ''])
      )
    )
    assert.equal(again[RedriveHeaders.COUNT], '1')
    assert.equal(again['sfm.dlq.stage'], 'decode')
    assert.equal(await page.textContent('#dlq-key'), 'poison-1')
    await page.screenshot({ path: join(ARTIFACTS, 'dlq-redrive.png'), fullPage: true })

    assert.deepEqual(pageErrors, [], 'no script errors on the page')
    assert.deepEqual(foreign, [], 'no request left the runner (no external assets)')
  })
})
