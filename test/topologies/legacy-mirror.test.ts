import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { describe, test } from 'node:test'
import type pg from 'pg'
import type { OutgoingMessage } from '../../src/kafka/producer.ts'
import { TombstoneFenceHeaders } from '../../src/memory/latest.ts'
import { prepareMirrorRow } from '../../src/memory/legacy/mirror.ts'
import { Runtime } from '../../src/streams/runtime.ts'
import { legacyMirrorTopology } from '../../topologies/legacy-mirror.ts'
import { brokers, createTopics, NO_KAFKA, produce, uniqueName, waitFor } from '../helpers/kafka.ts'
import { isolatedMemoryStack, legacyStore, runMemoryUntilIdle } from '../helpers/legacy.ts'
import { generateHistory } from '../helpers/memory-history.ts'
import { startRunner } from '../helpers/runner.ts'

const skip = brokers() && process.env.DATABASE_URL ? false : `${NO_KAFKA}; DATABASE_URL too`

/** Rows of the legacy table that are not memories: the mirror must leave them exactly as they are. */
const NOT_MEMORIES = [
  { key: 'default:(1.0, 2.0):meta', value: '{"creation_timestamp": 1760000000.5}' },
  { key: 'default:wal:0b6f5d2e-8a43-4c1e-9a55-3f0d4e6c7b21', value: '{"coordinate": [1.0], "value": {}, "ts": 1.0}' },
  { key: 'default:(1.0, 2.0):data:version:1760000000123456789', value: '{"text": "old"}' },
  { key: '5d41402abc4b2a76b9719d911017c592', value: '{"grpc": true}' }
]

async function kvRows(pool: pg.Pool): Promise<Map<string, unknown>> {
  const { rows } = await pool.query<{ key: string; value: unknown }>('SELECT key, value FROM kv_store ORDER BY key')
  return new Map(rows.map((r) => [r.key, r.value]))
}

async function runMirrorUntilIdle(env: NodeJS.ProcessEnv) {
  const topology = await legacyMirrorTopology(env)
  return new Runtime(topology, { untilIdleMs: 2_000 }).run()
}

function state(id: string, version: number, second: number, text: string) {
  return JSON.stringify({
    id,
    namespace: 'default',
    type: 'episodic',
    importance: null,
    version,
    event_id: `00000000-0000-4000-8000-${String(version * 100 + second).padStart(12, '0')}`,
    timestamp: `2026-03-01T00:00:${String(second).padStart(2, '0')}.000000Z`,
    payload: { text, memory_type: 'episodic', coordinate: [1, 2] }
  })
}

function tombstone(version: number, second: number): Pick<OutgoingMessage, 'value' | 'headers'> {
  return {
    value: null,
    headers: new Map([
      [TombstoneFenceHeaders.VERSION, Buffer.from(String(version))],
      [TombstoneFenceHeaders.TIMESTAMP, Buffer.from(`2026-03-01T00:00:${String(second).padStart(2, '0')}Z`)]
    ])
  }
}

test('prepareMirrorRow: key {id}:data, payload as value, tombstones need their fence headers', () => {
  const row = prepareMirrorRow({ id: 'ns:(1.0,)', state: JSON.parse(state('ns:(1.0,)', 3, 7, 'x')) }, 0)
  assert.ok(!(row instanceof Error))
  assert.equal(row.id, 'ns:(1.0,):data')
  assert.equal(row.version, 3)
  assert.equal(row.value, '{"text":"x","memory_type":"episodic","coordinate":[1,2]}')
  const gone = prepareMirrorRow(
    { id: 'ns:(1.0,)', state: null, fence: { version: 4, timestamp: '2026-03-01T00:00:08Z' } },
    1
  )
  assert.ok(!(gone instanceof Error))
  assert.equal(gone.deleted, true)
  const unfenced = prepareMirrorRow({ id: 'ns:(1.0,)', state: null }, 2)
  assert.ok(unfenced instanceof Error)
  assert.match(unfenced.message, /without its fence headers .* delete the row ns:\(1\.0,\):data from kv_store/)
})

describe('topologies/legacy-mirror.ts', { skip }, () => {
  test('memory.latest with updates, deletes, out-of-order versions and duplicates → kv_store equals the fold; other rows untouched', {
    timeout: 120_000
  }, async (t) => {
    const prefix = `${uniqueName('mirror')}.`
    await createTopics(t, [`${prefix}memory.latest`, `${prefix}memory.dlq`], 2)
    const a = 'default:(1.0, 2.0)'
    const b = 'default:(3.0,)'
    const c = 'other:(1e-05, -0.0)'
    const d = 'default:(4.0,)'
    const e = 'default:(5.0,)'
    const legacy = await legacyStore(t, [
      ...NOT_MEMORIES,
      // Rows the legacy app wrote before: the mirror replaces or removes them.
      { key: `${a}:data`, value: '{"text": "legacy a"}' },
      { key: `${b}:data`, value: '{"text": "legacy b"}' },
      // A memory the mirror never hears of stays.
      { key: 'default:(9.0,):data', value: '{"text": "untouched"}' }
    ])
    const latest = `${prefix}memory.latest`
    const record = (key: string, value: string | Pick<OutgoingMessage, 'value' | 'headers'>): OutgoingMessage =>
      typeof value === 'string' ? { topic: latest, key, value } : { topic: latest, key, ...value }
    await produce([
      record(a, state(a, 1, 1, 'a1')),
      record(a, state(a, 5, 5, 'a5')),
      record(a, state(a, 3, 3, 'a3 (older, after a newer one)')),
      record(a, state(a, 5, 5, 'a5')),
      record(b, state(b, 1, 1, 'b1')),
      record(b, tombstone(2, 2)),
      record(b, tombstone(2, 2)),
      record(b, state(b, 1, 1, 'b1 again (older than the delete)')),
      record(c, state(c, 0, 1, 'c0')),
      record(c, tombstone(1, 2)),
      record(c, state(c, 2, 3, 'c2 (re-created)')),
      record(d, tombstone(7, 7)),
      record(e, state(e, 2, 2, 'e2')),
      record(e, { value: null, headers: new Map() })
    ])
    const env = {
      ...process.env,
      SFM_TOPIC_PREFIX: prefix,
      SFM_LEGACY_URL: legacy.url,
      SFM_MIRROR_GROUP: uniqueName('mirror')
    }
    const summary = await runMirrorUntilIdle(env)
    assert.equal(summary.deadLettered, 1, 'the tombstone without fence headers')

    const rows = await kvRows(legacy.pool)
    for (const { key, value } of NOT_MEMORIES) assert.deepEqual(rows.get(key), JSON.parse(value), key)
    assert.deepEqual(rows.get(`${a}:data`), { text: 'a5', memory_type: 'episodic', coordinate: [1, 2] })
    assert.equal(rows.has(`${b}:data`), false, 'deleted, and the older state after the delete is fenced')
    assert.deepEqual(rows.get(`${c}:data`), { text: 'c2 (re-created)', memory_type: 'episodic', coordinate: [1, 2] })
    assert.equal(rows.has(`${d}:data`), false)
    assert.deepEqual(rows.get(`${e}:data`), { text: 'e2', memory_type: 'episodic', coordinate: [1, 2] })
    assert.deepEqual(rows.get('default:(9.0,):data'), { text: 'untouched' })
    assert.equal(rows.size, NOT_MEMORIES.length + 4)

    // The side table keeps the fence next to kv_store, whose columns are still the app's.
    const { rows: columns } = await legacy.pool.query<{ column_name: string }>(
      `SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'kv_store' ORDER BY ordinal_position`,
      [legacy.schema]
    )
    assert.deepEqual(
      columns.map((r) => r.column_name),
      ['key', 'value']
    )
    const { rows: fence } = await legacy.pool.query<{ key: string; version: string; deleted: boolean }>(
      'SELECT key, version::text, deleted_at IS NOT NULL AS deleted FROM kv_store_mirror_versions ORDER BY key'
    )
    assert.deepEqual(
      fence.map((r) => [r.key, r.version, r.deleted]),
      [
        [`${a}:data`, '5', false],
        [`${b}:data`, '2', true],
        [`${d}:data`, '7', true],
        [`${e}:data`, '2', false],
        [`${c}:data`, '2', false]
      ].sort((x, y) => (String(x[0]) < String(y[0]) ? -1 : 1))
    )

    // A second run of a new group over the same topic changes nothing (all duplicates or fenced).
    const before = await kvRows(legacy.pool)
    await runMirrorUntilIdle({ ...env, SFM_MIRROR_GROUP: uniqueName('mirror') })
    assert.deepEqual(await kvRows(legacy.pool), before)
  })

  test('memory topology → memory.latest → mirror: parity against the mirror is 0, other rows untouched', {
    timeout: 300_000
  }, async (t) => {
    const stack = await isolatedMemoryStack(t)
    const legacy = await legacyStore(t, NOT_MEMORIES)
    const history = generateHistory({ ids: 60, eventsPerId: 6, idPrefix: 'default:(', seed: 19 }).map((event) => ({
      ...event,
      id: `${event.id}.0,)`
    }))
    await produce(
      history.map((event) => ({
        topic: stack.topic('memory.events'),
        key: event.id,
        value: JSON.stringify(event)
      }))
    )
    await runMemoryUntilIdle()
    const summary = await runMirrorUntilIdle({
      ...process.env,
      SFM_LEGACY_URL: legacy.url,
      SFM_MIRROR_GROUP: uniqueName('mirror')
    })
    assert.equal(summary.deadLettered, 0)

    const { rows: live } = await stack.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM "${stack.table}" WHERE deleted_at IS NULL`
    )
    const rows = await kvRows(legacy.pool)
    assert.equal(rows.size, NOT_MEMORIES.length + live[0]!.n)
    for (const { key, value } of NOT_MEMORIES) assert.deepEqual(rows.get(key), JSON.parse(value), key)

    const parity = await cli('parity', [
      '--legacy-url',
      legacy.url,
      '--table',
      stack.table,
      '--ignore-field',
      '',
      '--json'
    ])
    assert.equal(parity.code, 0, parity.stdout + parity.stderr)
    const report = JSON.parse(parity.stdout) as { counts: Record<string, number>; equal: number }
    assert.deepEqual(report.counts, { missing: 0, extra: 0, differing: 0, deleted_here: 0 })
    assert.equal(report.equal, live[0]!.n)
  })
})

describe('topologies/legacy-mirror.ts under kill -9', { skip }, () => {
  test('killed -9 mid-way and started again, kv_store still ends equal to the fold of memory.latest', {
    timeout: 240_000
  }, async (t) => {
    const prefix = `${uniqueName('mirrork')}.`
    await createTopics(t, [`${prefix}memory.latest`, `${prefix}memory.dlq`], 3)
    const legacy = await legacyStore(t, NOT_MEMORIES)
    const latest = `${prefix}memory.latest`
    // 1,500 memories, 8 records each (versions shuffled, some tombstones, each record sent once or twice).
    let seed = 19
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2147483648
      return seed / 2147483648
    }
    const records: OutgoingMessage[] = []
    const fold = new Map<string, { version: number; text: string | null }>()
    for (let i = 0; i < 1_500; i++) {
      const id = `default:(${i}.0,)`
      const versions = Array.from({ length: 8 }, (_, v) => v + 1).sort(() => random() - 0.5)
      for (const version of versions) {
        const gone = random() < 0.25
        const text = `m${i} v${version}`
        const record: OutgoingMessage = gone
          ? { topic: latest, key: id, ...tombstone(version, version) }
          : { topic: latest, key: id, value: state(id, version, version, text) }
        records.push(record)
        if (random() < 0.3) records.push(record)
        if (version === 8) fold.set(id, { version, text: gone ? null : text })
      }
    }
    await produce(records)
    const env = {
      SFM_TOPIC_PREFIX: prefix,
      SFM_LEGACY_URL: legacy.url,
      SFM_MIRROR_GROUP: uniqueName('mirror'),
      SFM_MIRROR_BATCH: '50',
      DRAIN_OLD_EVENTS: 'false'
    }
    const sideRows = async () =>
      (
        await legacy.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM kv_store_mirror_versions').catch(() => ({
          rows: [{ n: 0 }]
        }))
      ).rows[0]!.n
    const first = startRunner('topologies/legacy-mirror.ts', env)
    await waitFor(async () => (await sideRows()) >= 300, 60_000, 'the mirror to be under way')
    first.child.kill('SIGKILL')
    await once(first.child, 'close')
    const midway = await sideRows()
    assert.ok(midway < 1_500, `killed mid-way (${midway} of 1500 memories mirrored)`)

    const second = startRunner('topologies/legacy-mirror.ts', env, ['--until-idle=2'])
    const [code] = await once(second.child, 'close')
    assert.equal(code, 0, second.stderr())

    const rows = await kvRows(legacy.pool)
    for (const { key, value } of NOT_MEMORIES) assert.deepEqual(rows.get(key), JSON.parse(value), key)
    let live = 0
    for (const [id, last] of fold) {
      const row = rows.get(`${id}:data`) as { text?: string } | undefined
      if (last.text === null) assert.equal(row, undefined, `${id} deleted at version 8`)
      else {
        live++
        assert.equal(row?.text, last.text, id)
      }
    }
    assert.equal(rows.size, NOT_MEMORIES.length + live)
  })
})

test('npm start -- topologies/legacy-mirror.ts: no SFM_LEGACY_URL, a legacy database that does not answer, no kv_store: one line, exit 2', {
  skip,
  timeout: 60_000
}, async () => {
  const start = async (legacyUrl: string | undefined) => {
    const env: NodeJS.ProcessEnv = { ...process.env, SFM_TOPIC_PREFIX: `${uniqueName('mirror')}.` }
    if (legacyUrl === undefined) delete env.SFM_LEGACY_URL
    else env.SFM_LEGACY_URL = legacyUrl
    const child = spawn(process.execPath, ['src/cli/start.ts', 'topologies/legacy-mirror.ts'], {
      env,
      stdio: ['ignore', 'ignore', 'pipe']
    })
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk
    })
    const [code] = await once(child, 'close')
    return { code, errors: stderr.split('\n').filter((line) => line.startsWith('error: ')) }
  }
  const none = await start(undefined)
  assert.equal(none.code, 2)
  assert.equal(none.errors.length, 1)
  assert.match(none.errors[0]!, /SFM_LEGACY_URL is not set/)
  const down = await start('postgres://sfm:secret@127.0.0.1:1/sfm')
  assert.equal(down.code, 2)
  assert.equal(down.errors.length, 1)
  assert.match(down.errors[0]!, /cannot connect to the legacy store at 127\.0\.0\.1:1\/sfm: .*check SFM_LEGACY_URL/)
  assert.doesNotMatch(down.errors.join('\n'), /secret/)
  const empty = await start(process.env.DATABASE_URL)
  assert.equal(empty.code, 2)
  assert.match(empty.errors[0]!, /no kv_store table .* point SFM_LEGACY_URL at the SomaFractalMemory database/)
})

async function cli(
  script: 'parity' | 'backfill',
  args: string[]
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [`src/cli/${script}.ts`, ...args], {
    env: process.env,
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk
  })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk
  })
  const [code] = await once(child, 'close')
  return { code: code as number | null, stdout, stderr }
}
