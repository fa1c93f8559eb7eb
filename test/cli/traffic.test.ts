/**
 * `npm run traffic` on the real broker and PostgreSQL: a short run at a low rate into a legacy kv_store of the test's
 * own, through each producer pattern, then the memory topology until idle (after the outbox relay for the outbox)
 * and `npm run parity`: 0 differences. Plus the one-line configuration errors, with nothing written.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, type TestContext, test } from 'node:test'
import { REPO_ROOT } from '../../scripts/stack/config.ts'
import { runNodeScript } from '../helpers/cli.ts'
import { brokers, NO_KAFKA } from '../helpers/kafka.ts'
import { isolatedMemoryStack, legacyStore, runMemoryUntilIdle } from '../helpers/legacy.ts'
import { startRunner } from '../helpers/runner.ts'

const PYTHON = join(REPO_ROOT, '.venv', 'bin', 'python')
const services = brokers() && process.env.DATABASE_URL ? false : `${NO_KAFKA}; DATABASE_URL too`
const noVenv = existsSync(PYTHON) ? false : 'no .venv with sfm_events: run `npm run python-setup`'

const run = (script: string, args: string[], env: NodeJS.ProcessEnv = process.env) =>
  runNodeScript(`src/cli/${script}.ts`, args, env)

interface Summary {
  writes: number
  create: number
  update: number
  delete: number
  publish_failures: number
  rate: number
  live: number
}

async function trafficThenParity(t: TestContext, via: 'python' | 'node', pattern: 'dual-write' | 'outbox') {
  const stack = await isolatedMemoryStack(t)
  const legacy = await legacyStore(t, [])
  if (pattern === 'outbox') {
    await legacy.pool.query(await readFile(join(REPO_ROOT, 'clients', 'python', 'sfm_events', 'outbox.sql'), 'utf8'))
  }
  const args = ['--rate', '40', '--duration', '3', '--ids', '25', '--seed', '11', '--legacy-url', legacy.url]
  const traffic = await run('traffic', [...args, '--via', via, '--pattern', pattern])
  assert.equal(traffic.code, 0, traffic.stderr)
  const summary = JSON.parse(traffic.stdout.trim().split('\n').at(-1)!) as Summary
  assert.equal(summary.writes, 120, traffic.stderr)
  assert.equal(summary.create + summary.update + summary.delete, 120)
  assert.ok(summary.create >= 25 && summary.update > 0 && summary.delete > 0, JSON.stringify(summary))
  assert.equal(summary.publish_failures, 0)
  assert.ok(summary.rate > 30 && summary.rate < 50, `rate ${summary.rate} near 40/s`)
  assert.match(traffic.stderr, /traffic: done — 120 writes \(create \d+, update \d+, delete \d+\)/)
  const { rows } = await legacy.pool.query<{ data: number; meta: number }>(
    `SELECT count(*) FILTER (WHERE key LIKE '%:data')::int AS data, count(*) FILTER (WHERE key LIKE '%:meta')::int AS meta FROM kv_store`
  )
  assert.deepEqual(rows[0], { data: summary.live, meta: summary.live }, 'kv_store holds the live memories, with :meta')

  if (pattern === 'outbox') {
    const relay = startRunner(
      'topologies/outbox-relay.ts',
      { SFM_OUTBOX_URL: process.env.DATABASE_URL!, SFM_OUTBOX_TABLE: `${legacy.schema}.sfm_outbox` },
      ['--until-idle=3', '--status-interval=0']
    )
    assert.equal((await once(relay.child, 'exit'))[0], 0, relay.stderr())
  }
  await runMemoryUntilIdle()
  const here = await stack.pool.query<{ live: number; deleted: number }>(
    `SELECT count(*) FILTER (WHERE deleted_at IS NULL)::int AS live, count(*) FILTER (WHERE deleted_at IS NOT NULL)::int AS deleted FROM "${stack.table}"`
  )
  assert.equal(here.rows[0]!.live, summary.live)
  assert.ok(here.rows[0]!.deleted > 0, 'the deletes are tombstones here')
  const parity = await run('parity', ['--legacy-url', legacy.url, '--table', stack.table])
  assert.equal(parity.code, 0, `${parity.stdout}\n${parity.stderr}`)
  assert.match(
    parity.stdout,
    new RegExp(`${summary.live} legacy memories, .* missing 0, extra 0, differing 0, deleted_here 0`)
  )

  // A second run over the same pool finds the live memories and updates or deletes them: parity stays 0.
  if (pattern === 'dual-write') {
    const again = await run('traffic', [...args.slice(0, 6), '--seed', '12', '--legacy-url', legacy.url, '--via', via])
    assert.equal(again.code, 0, again.stderr)
    assert.match(again.stderr, new RegExp(`\\(${summary.live} already live\\)`))
    await runMemoryUntilIdle()
    const after = await run('parity', ['--legacy-url', legacy.url, '--table', stack.table])
    assert.equal(after.code, 0, `${after.stdout}\n${after.stderr}`)
  }
}

describe('npm run traffic, then the memory topology, then parity 0', { skip: services }, () => {
  test('--via python --pattern dual-write', { skip: noVenv, timeout: 180_000 }, (t) =>
    trafficThenParity(t, 'python', 'dual-write')
  )
  test('--via python --pattern outbox', { skip: noVenv, timeout: 180_000 }, (t) =>
    trafficThenParity(t, 'python', 'outbox')
  )
  test('--via node --pattern dual-write', { timeout: 180_000 }, (t) => trafficThenParity(t, 'node', 'dual-write'))
  test('--via node --pattern outbox', { timeout: 180_000 }, (t) => trafficThenParity(t, 'node', 'outbox'))
})

describe('npm run traffic --pattern events: the app after its traffic moved', { skip: services }, () => {
  test('publishes only: kv_store is read for the live memories, never written; memories follow the events', {
    skip: noVenv,
    timeout: 180_000
  }, async (t) => {
    const stack = await isolatedMemoryStack(t)
    const legacy = await legacyStore(t, [])
    const args = ['--rate', '40', '--duration', '2', '--ids', '20', '--legacy-url', legacy.url]
    const before = await run('traffic', [...args, '--seed', '1', '--via', 'node'])
    assert.equal(before.code, 0, before.stderr)
    const snapshot = async () =>
      (await legacy.pool.query<{ key: string; value: unknown }>('SELECT key, value FROM kv_store ORDER BY key')).rows
    const kv = await snapshot()
    for (const via of ['python', 'node']) {
      const moved = await run('traffic', [
        ...args,
        '--seed',
        via === 'python' ? '2' : '3',
        '--via',
        via,
        '--pattern',
        'events'
      ])
      assert.equal(moved.code, 0, moved.stderr)
      assert.match(moved.stderr, /memory\.events on Kafka .* only \(kv_store at .* read, not written\)/)
      assert.match(moved.stderr, new RegExp(`\\(${(JSON.parse(before.stdout) as Summary).live} already live\\)`))
      assert.deepEqual(await snapshot(), kv, `--via ${via}: kv_store unchanged`)
    }
    await runMemoryUntilIdle()
    // The events moved on without the legacy store (no mirror here): parity names the memories they changed.
    const parity = await run('parity', ['--legacy-url', legacy.url, '--table', stack.table, '--json'])
    assert.equal(parity.code, 1, parity.stderr)
    const counts = (JSON.parse(parity.stdout) as { counts: Record<string, number> }).counts
    assert.ok((counts.differing ?? 0) + (counts.deleted_here ?? 0) + (counts.extra ?? 0) > 0, JSON.stringify(counts))
  })
})

describe('npm run traffic: configuration errors, one line, exit 2, nothing written', { skip: services }, () => {
  test('usage', async () => {
    const noRate = await run('traffic', ['--duration', '1'])
    assert.equal(noRate.code, 2)
    assert.match(noRate.stderr, /traffic: --rate is required/)
    const badVia = await run('traffic', ['--rate', '1', '--duration', '1', '--via', 'ruby'])
    assert.equal(badVia.code, 2)
    assert.match(badVia.stderr, /--via: expected python or node, got "ruby"/)
    const help = await run('traffic', ['--help'])
    assert.equal(help.code, 0)
    assert.match(help.stdout, /Usage: npm run traffic -- --rate R --duration S/)
  })

  test('no legacy store, no kv_store, no outbox table', async (t) => {
    const env: NodeJS.ProcessEnv = { ...process.env, SFM_STACK_DIR: join(REPO_ROOT, 'no-such-stack') }
    delete env.DATABASE_URL
    delete env.SFM_LEGACY_URL
    const none = await run('traffic', ['--rate', '1', '--duration', '1', '--via', 'node'], env)
    assert.equal(none.code, 2)
    assert.match(none.stderr, /traffic: no legacy store: give --legacy-url URL, or set SFM_LEGACY_URL or DATABASE_URL/)

    const legacy = await legacyStore(t, [])
    await legacy.pool.query('DROP TABLE kv_store')
    const noTable = await run('traffic', [
      '--rate',
      '1',
      '--duration',
      '1',
      '--legacy-url',
      legacy.url,
      '--via',
      'node'
    ])
    assert.equal(noTable.code, 2)
    assert.match(
      noTable.stderr,
      /traffic: no kv_store table at .* — point --legacy-url at the SomaFractalMemory database/
    )
    assert.doesNotMatch(noTable.stderr, /\n\s+at /, 'no stack trace')

    await legacy.pool.query('CREATE TABLE kv_store (key TEXT PRIMARY KEY, value JSONB NOT NULL)')
    const noOutbox = await run('traffic', [
      ...['--rate', '5', '--duration', '1', '--legacy-url', legacy.url, '--via', 'node', '--pattern', 'outbox']
    ])
    assert.equal(noOutbox.code, 2)
    assert.match(
      noOutbox.stderr,
      /no outbox table sfm_outbox at .*: create it with psql .* -f clients\/python\/sfm_events\/outbox\.sql/
    )
    const { rows } = await legacy.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM kv_store')
    assert.equal(rows[0]!.n, 0, 'nothing written')
  })

  test('--via python: no Python there, or one without sfm_events, names npm run python-setup', async (t) => {
    const legacy = await legacyStore(t, [])
    const args = ['--rate', '5', '--duration', '1', '--legacy-url', legacy.url, '--pattern', 'outbox']
    await legacy.pool.query(await readFile(join(REPO_ROOT, 'clients', 'python', 'sfm_events', 'outbox.sql'), 'utf8'))
    const absent = await run('traffic', args, { ...process.env, SFM_PYTHON: join(REPO_ROOT, 'no-such-venv', 'python') })
    assert.equal(absent.code, 2)
    assert.match(
      absent.stderr,
      /traffic: no Python with sfm_events at .*no-such-venv\/python: run `npm run python-setup`/
    )
    // A Python without the package (the system's): the module is not found, and the message says what to run.
    if (!existsSync('/usr/bin/python3')) return
    const bare = await run('traffic', args, { ...process.env, SFM_PYTHON: '/usr/bin/python3' })
    assert.equal(bare.code, 2, bare.stderr)
    assert.match(bare.stderr, /traffic: the \.venv has no sfm_events\.traffic: run `npm run python-setup`/)
    assert.doesNotMatch(bare.stderr, /Traceback/)
  })
})
