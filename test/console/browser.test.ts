/**
 * The console in a real browser: headless Chromium (Debian's `chromium`; `.ci/run` installs it) driven by
 * playwright-core, against the real runner (`npm start -- topologies/memory.ts --console 0`) with poison in its
 * input: on the embedded stack, and on the test stack's broker and PostgreSQL (where the DLQ and memory.audit views
 * read Kafka). Checks what a person sees, and keeps a screenshot of each view in test-artifacts/console/ (the Kafka
 * run's in test-artifacts/console/kafka/). Skips, saying why, where Chromium is not installed (or, for the Kafka
 * run, where KAFKA_BROKERS / DATABASE_URL are not set).
 */
import assert from 'node:assert/strict'
import { existsSync, mkdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { describe, type TestContext, test } from 'node:test'
import type { ConsoleStats } from '../../src/console/recorder.ts'
import { openEmbeddedLog } from '../../src/log/embedded-log.ts'
import { RedriveHeaders } from '../../src/ops/dlq.ts'
import { type LogAccess, openLogAccess } from '../../src/ops/log.ts'
import { consoleInput, waitFor } from '../helpers/console.ts'
import { embeddedEnv, spawnNode, tempDataDir } from '../helpers/embedded-log.ts'
import { brokers, NO_KAFKA, produce, uniqueName } from '../helpers/kafka.ts'
import { isolatedMemoryStack } from '../helpers/legacy.ts'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const ARTIFACTS = resolve(import.meta.dirname, '../../test-artifacts/console')
const skip = existsSync(CHROMIUM)
  ? false
  : `no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`
if (skip) process.stderr.write(`console browser test skipped: ${skip}\n`)

/** Where the runner runs: its environment, its topics' names, whether it has a vector branch, a log reader. */
interface Stack {
  readonly name: 'embedded' | 'kafka'
  readonly env: NodeJS.ProcessEnv
  readonly total: number
  topic(name: string): string
  readonly vectors: boolean
  access(): LogAccess
}

/** The embedded stack entirely: the log and the memories table in PGlite under a temp folder. */
function embeddedStack(t: TestContext): Stack {
  const dir = tempDataDir(t, 'sfm-console-')
  const log = openEmbeddedLog({ path: join(dir, 'log.sqlite') })
  const records = consoleInput('memory.events')
  try {
    log.ensureTopics(['memory.events'])
    log.append(records)
  } finally {
    log.close()
  }
  const env = embeddedEnv(dir)
  // Whatever DATABASE_URL the tests have: PGlite here.
  delete env.DATABASE_URL
  return {
    name: 'embedded',
    env,
    total: records.length,
    topic: (name) => name,
    vectors: true,
    access: () => openLogAccess({ target: 'embedded', dataDir: dir, env })
  }
}

/** The test stack's broker and PostgreSQL: topics under a unique prefix (2 partitions), a table of its own. */
async function kafkaStack(t: TestContext): Promise<Stack> {
  const stack = await isolatedMemoryStack(t)
  const records = consoleInput(stack.topic('memory.events'))
  await produce(records)
  const env = { ...process.env, SFM_MEMORY_GROUP: uniqueName('console') }
  return {
    name: 'kafka',
    env,
    total: records.length,
    topic: (name) => stack.topic(name as 'memory.events'),
    vectors: false,
    access: () => openLogAccess({ target: 'kafka', env })
  }
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

describe('the console in headless Chromium', { skip }, () => {
  test('on the embedded stack: graph, DLQ count, a dead letter, a redrive, a memory, and bad input — as a person sees them', async (t) => {
    await asAPersonSeesIt(t, embeddedStack(t))
  })
  test('on Kafka: the same views, the DLQ and memory.audit read from the broker', {
    skip: brokers() && process.env.DATABASE_URL ? false : `${NO_KAFKA}; DATABASE_URL too`,
    timeout: 300_000
  }, async (t) => {
    await asAPersonSeesIt(t, await kafkaStack(t))
  })
})

async function asAPersonSeesIt(t: TestContext, stack: Stack): Promise<void> {
  const { chromium } = await import('playwright-core')
  const artifacts = stack.name === 'embedded' ? ARTIFACTS : join(ARTIFACTS, stack.name)
  mkdirSync(artifacts, { recursive: true })
  const { env, total } = stack
  const dlqTopic = stack.topic('memory.dlq')
  const eventsTopic = stack.topic('memory.events')
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
    const s = (await (await fetch(new URL('/api/stats', url))).json()) as ConsoleStats
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
  // Every node's live figures, counted by the runtime: all consumed, so nothing is in flight anywhere.
  await page.locator('[data-node="sink:kv"] text.rates', { hasText: 'in flight 0' }).waitFor()
  const rates = await page.$$eval('[data-node] text.rates', (els) =>
    els.map((e) => [e.closest('[data-node]')?.getAttribute('data-node'), e.textContent ?? ''])
  )
  assert.equal(rates.length, stack.vectors ? 9 : 7, JSON.stringify(rates))
  for (const [id, text] of rates) assert.match(text ?? '', /^[\d.]+\/s · in flight 0$/, `${id}: ${text}`)
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
      ...(stack.vectors ? ['branch:vectors:batch', 'sink:vectors'] : []),
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
      ...(stack.vectors ? ['batch (vectors)', 'vectors'] : []),
      'dead letters'
    ]
  )
  assert.equal(await page.textContent('[data-node="op:0"] text.figures'), 'dlq 1')
  assert.equal(await page.textContent('[data-node="op:1"] text.figures'), 'dlq 0')
  assert.equal(await page.textContent('[data-node="op:2"] text.figures'), 'dlq 1')
  assert.equal(await page.textContent('[data-stat="done"]'), String(total))
  await page.screenshot({ path: join(artifacts, 'graph.png'), fullPage: true })

  // --- lag and throughput
  await page.goto(`${url}#charts`)
  // Attached, not visible: a lag of 0 throughout is a flat line, which has no height.
  await page.waitForSelector('#lag-chart polyline', { state: 'attached' })
  const partitions = await page.$$eval('#lag-chart polyline', (els) => els.map((e) => e.getAttribute('data-series')))
  assert.ok(
    partitions.length >= 1 &&
      partitions.every((p) => new RegExp(`^${escapeRegExp(eventsTopic)}\\[\\d+\\]$`).test(p ?? '')),
    String(partitions)
  )
  assert.deepEqual(await page.$$eval('#rate-chart polyline', (els) => els.map((e) => e.getAttribute('data-series'))), [
    'consumed',
    'done',
    'dead-lettered',
    'commits'
  ])
  await page.screenshot({ path: join(artifacts, 'charts.png'), fullPage: true })

  // --- dead letters: the count the runtime reports, a letter opened with its headers
  await page.goto(`${url}#dlq`)
  await page.waitForSelector('#dlq-list tbody tr')
  assert.equal(await page.getAttribute('#dlq-count', 'data-total'), String(stats.runtime.deadLettered))
  assert.match(
    (await page.textContent('#dlq-count')) ?? '',
    new RegExp(`^2 dead letters in ${escapeRegExp(dlqTopic)} · this runner dead-lettered 2$`)
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
  assert.equal(headers['sfm.dlq.source.topic'], eventsTopic)
  assert.equal(headers['sfm.dlq.topology'], 'memory')
  assert.match(headers['sfm.dlq.error.message'] ?? '', /not JSON/)
  assert.equal(await page.textContent('#dlq-key'), 'poison-1')
  assert.equal(await page.textContent('#dlq-value'), 'not json {')
  const firstLetter = (await page.textContent('#dlq-detail-title')) ?? ''
  await page.screenshot({ path: join(artifacts, 'dlq.png'), fullPage: true })

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
  await page.screenshot({ path: join(artifacts, 'dlq-errors.png'), fullPage: true })
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
  assert.match(
    (await page.textContent('#memory-vector')) ?? '',
    stack.vectors ? /^present \(version 1, model / : /^\(no vector store\)$/
  )
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
  // Where the history was read: the one audit partition the id is keyed to, all of it (no window cut here).
  const auditRead = /^read (\d+) of the (\d+) records of (.+)\[(\d+)\] \(the partition this id is keyed to\)$/.exec(
    (await page.textContent('#memory-window')) ?? ''
  )
  assert.ok(auditRead, 'the audit window is shown')
  assert.equal(auditRead[1], auditRead[2])
  assert.equal(auditRead[3], stack.topic('memory.audit'))
  assert.doesNotMatch((await page.textContent('#memory-notes')) ?? '', /history cut/)
  await page.screenshot({ path: join(artifacts, 'memory.png'), fullPage: true })

  // An unknown id: a clear message, no result shown.
  await page.fill('#memory-id', 'no-such-memory')
  await page.click('#memory-go')
  await page.waitForSelector('#memory-error:not(:empty)')
  assert.equal(
    await page.textContent('#memory-error'),
    'no memory with id "no-such-memory": no row, no vector and no audit record'
  )
  assert.equal(await page.isHidden('#memory-result'), true)
  await page.screenshot({ path: join(artifacts, 'memory-unknown.png'), fullPage: true })

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
  const access = stack.access()
  const redriven: { key: string; value: string; headers: Record<string, string> }[] = []
  try {
    const parts = await access.partitions(eventsTopic)
    await access.scan(
      eventsTopic,
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
  assert.equal(redriven[0]!.headers[RedriveHeaders.DLQ_TOPIC], dlqTopic)
  // The runner consumes it, and (still not JSON) dead-letters it again; the DLQ view shows the new letter,
  // marked as redriven once, and the runner's own count.
  await waitFor('the redriven letter consumed and dead-lettered again', 60_000, async () => {
    const s = (await (await fetch(new URL('/api/stats', writeUrl))).json()) as ConsoleStats
    return s.runtime.deadLettered === 1 ? s : undefined
  })
  await page.fill('#dlq-filter', '')
  await page.click('#dlq-apply')
  await page
    .locator('#dlq-count', {
      hasText: new RegExp(`^3 dead letters in ${escapeRegExp(dlqTopic)} · this runner dead-lettered 1$`)
    })
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
  await page.screenshot({ path: join(artifacts, 'dlq-redrive.png'), fullPage: true })

  assert.deepEqual(pageErrors, [], 'no script errors on the page')
  assert.deepEqual(foreign, [], 'no request left the runner (no external assets)')
}
