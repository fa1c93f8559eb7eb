import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { compareIds, fieldDiff, jsonEqual, sameJsonbText } from '../../src/memory/legacy/parity.ts'
import { type RunResult, runNodeScript } from '../helpers/cli.ts'
import { brokers, NO_KAFKA } from '../helpers/kafka.ts'
import {
  isolatedMemoryStack,
  legacyKvRows,
  legacyStore,
  NO_PYTHON,
  runMemoryUntilIdle,
  withSearchPath
} from '../helpers/legacy.ts'

const skip = (brokers() && process.env.DATABASE_URL ? false : `${NO_KAFKA}; DATABASE_URL too`) || (NO_PYTHON ?? false)

type Run = RunResult

const cli = (script: 'parity' | 'backfill', args: string[]): Promise<Run> => runNodeScript(`src/cli/${script}.ts`, args)

test('compareIds is code point order (PostgreSQL "C"), jsonEqual compares numbers by value', () => {
  const ids = ['a:(1.0,)', 'a:(1.0, 2.0)', 'b', 'a', '\u{1F600}', '\uFFFD', 'é', 'Z']
  const byCodePoint = [...ids].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)))
  assert.deepEqual([...ids].sort(compareIds), byCodePoint)
  assert.ok(
    jsonEqual(JSON.parse('{"a": [1.0, 2], "b": {"c": null}}'), JSON.parse('{"b": {"c": null}, "a": [1, 2.00]}'))
  )
  assert.ok(!jsonEqual({ a: [1, 2] }, { a: [2, 1] }))
  assert.ok(!jsonEqual({ a: 1 }, { a: 1, b: undefined as unknown as number }))
  assert.deepEqual(fieldDiff('{"a": 1, "b": 2, "c": 3}', '{"a": 1.0, "b": 5, "d": 4}'), [
    { field: 'b', legacy: '2', here: '5' },
    { field: 'c', legacy: '3' },
    { field: 'd', here: '4' }
  ])
})

test('sameJsonbText: numbers by value, strings and structure exactly', () => {
  assert.ok(sameJsonbText('{"a": [5.0, 1.50, -0.0], "t": "x"}', '{"a": [5, 1.5, 0], "t": "x"}'))
  assert.ok(sameJsonbText('{"n": 0.00001}', '{"n": 1e-05}'))
  assert.ok(!sameJsonbText('{"a": [5.0]}', '{"a": [5.1]}'))
  assert.ok(!sameJsonbText('{"t": "5.0"}', '{"t": "5"}'), 'digits inside strings are text')
  assert.ok(!sameJsonbText('{"t": "a\\"b"}', '{"t": "a\\"c"}'))
  assert.ok(sameJsonbText('{"t": "a\\"b", "n": 2.0}', '{"t": "a\\"b", "n": 2}'))
  assert.ok(!sameJsonbText('{"a": 1}', '{"a": 1, "b": 2}'))
  assert.ok(!sameJsonbText('[1, 2]', '[1, 2, 3]'))
  assert.ok(!sameJsonbText('{"a": true}', '{"a": false}'))
})

describe('npm run parity', { skip }, () => {
  test('backfill → topology → parity 0; changes behind the stack’s back are named exactly; --repair → parity 0', {
    timeout: 300_000
  }, async (t) => {
    const stack = await isolatedMemoryStack(t)
    const rows = legacyKvRows(7, 80, ['default', 'other'])
    const legacy = await legacyStore(t, rows)
    const parity = (...args: string[]) => cli('parity', ['--legacy-url', legacy.url, '--table', stack.table, ...args])

    assert.equal((await cli('backfill', ['--legacy-url', legacy.url])).code, 0)
    await runMemoryUntilIdle({ group: 'g-parity' })
    const clean = await parity('--json')
    assert.equal(clean.code, 0, clean.stderr + clean.stdout)
    const summary = JSON.parse(clean.stdout) as { counts: Record<string, number>; equal: number }
    const memories = new Set(rows.filter((r) => r.key.endsWith(':data')).map((r) => r.key)).size
    assert.equal(summary.equal, memories)
    assert.deepEqual(summary.counts, { missing: 0, extra: 0, differing: 0, deleted_here: 0 })

    // Behind the stack's back.
    const ids = rows.filter((r) => r.key.endsWith(':data')).map((r) => r.key.slice(0, -5))
    const [updated, deleted, tombstoned, ignoredOnly, nsOther] = [ids[3]!, ids[5]!, ids[8]!, ids[9]!, ids.at(-1)!]
    assert.ok(nsOther.startsWith('other:'))
    const added = 'default:(7.0, 1e-07)'
    await legacy.pool.query(`UPDATE kv_store SET value = jsonb_set(value, '{text}', '"edited"') WHERE key = $1`, [
      `${updated}:data`
    ])
    await legacy.pool.query(
      `UPDATE kv_store SET value = value || '{"access_count": 999, "importance_norm": 0.1}' WHERE key = $1`,
      [`${ignoredOnly}:data`]
    )
    await legacy.pool.query('DELETE FROM kv_store WHERE key = $1', [`${deleted}:data`])
    await legacy.pool.query(
      `INSERT INTO kv_store VALUES ($1, '{"text": "added", "memory_type": "episodic", "coordinate": [7.0, 1e-07]}')`,
      [`${added}:data`]
    )
    await stack.pool.query(`UPDATE "${stack.table}" SET deleted_at = now(), payload = NULL WHERE id = $1`, [tombstoned])

    const out = join(stack.dataDir, 'report.json')
    const dirty = await parity('--out', out, '--sample', '5')
    assert.equal(dirty.code, 1, dirty.stderr)
    const report = JSON.parse(await readFile(out, 'utf8')) as { ids: Record<string, string[]> }
    assert.deepEqual(report.ids, {
      missing: [added],
      extra: [deleted],
      differing: [updated],
      deleted_here: [tombstoned]
    })
    assert.match(dirty.stdout, /missing 1, extra 1, differing 1, deleted_here 1/)
    assert.match(dirty.stdout, /text: legacy "edited" \| here "/)

    const nsOnly = await parity('--namespace', 'other', '--json')
    assert.equal(JSON.parse(nsOnly.stdout).compared.legacy, ids.filter((id) => id.startsWith('other:')).length)

    const strict = await parity('--ignore-field', '', '--json')
    assert.equal(JSON.parse(strict.stdout).counts.differing, 2, 'with no ignored fields access_count counts too')

    const repaired = await cli('backfill', ['--legacy-url', legacy.url, '--repair', out])
    assert.equal(repaired.code, 0, repaired.stderr)
    await runMemoryUntilIdle({ group: 'g-parity' })
    const after = await parity()
    assert.equal(after.code, 0, after.stdout + after.stderr)
  })

  test('--watch: sfm_parity_differences{class} on the metrics endpoint follows the stores; SIGTERM stops it', {
    timeout: 180_000
  }, async (t) => {
    const stack = await isolatedMemoryStack(t)
    const rows = legacyKvRows(9, 20, ['default'])
    const legacy = await legacyStore(t, rows)
    assert.equal((await cli('backfill', ['--legacy-url', legacy.url])).code, 0)
    await runMemoryUntilIdle()
    const child = spawn(
      process.execPath,
      [
        'src/cli/parity.ts',
        '--legacy-url',
        legacy.url,
        '--table',
        stack.table,
        '--watch',
        '0.3',
        '--metrics-port',
        '0',
        '--json'
      ],
      { env: process.env, stdio: ['ignore', 'pipe', 'pipe'] }
    )
    t.after(() => child.kill('SIGKILL'))
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr += c
    })
    child.stdout.resume()
    const deadline = Date.now() + 60_000
    const until = async (what: string, check: (text: string) => boolean) => {
      for (;;) {
        const port = /metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(stderr)?.[1]
        if (port) {
          const text = await fetch(`http://127.0.0.1:${port}/metrics`).then(
            (r) => r.text(),
            () => ''
          )
          if (check(text)) return text
        }
        if (Date.now() > deadline) assert.fail(`${what} never showed; stderr: ${stderr}`)
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
    }
    const gauge = (text: string, name: string) =>
      new RegExp(`^sfm_parity_differences\\{[^}]*class="${name}"[^}]*\\} (\\d+)`, 'm').exec(text)?.[1]
    await until('zero differences', (text) => gauge(text, 'missing') === '0' && gauge(text, 'differing') === '0')
    await legacy.pool.query(
      `INSERT INTO kv_store VALUES ('default:(3.0,):data', '{"text": "late", "memory_type": "semantic", "coordinate": [3.0]}')`
    )
    const text = await until('one missing', (text) => gauge(text, 'missing') === '1')
    assert.match(text, /sfm_parity_differences\{[^}]*topology="parity"/)
    child.kill('SIGTERM')
    const [code] = await once(child, 'close')
    assert.equal(code, 1, 'the last comparison had a difference')
  })

  test('--vectors: a live memory without a vector and a deleted one with a vector are named; --repair fixes both', {
    timeout: 240_000
  }, async (t) => {
    const stack = await isolatedMemoryStack(t)
    process.env.SFM_VECTORS = 'on' // the embedded pgvector store under the test's SFM_DATA_DIR, lexical embedder
    const rows = legacyKvRows(10, 15, ['default'])
    const legacy = await legacyStore(t, rows)
    assert.equal((await cli('backfill', ['--legacy-url', legacy.url])).code, 0)
    await runMemoryUntilIdle({ group: 'g-vectors' })
    const parity = (...args: string[]) =>
      cli('parity', ['--legacy-url', legacy.url, '--table', stack.table, '--vectors', ...args])
    const clean = await parity('--json')
    assert.equal(clean.code, 0, clean.stdout + clean.stderr)
    const ids = rows.filter((r) => r.key.endsWith(':data')).map((r) => r.key.slice(0, -5))
    assert.equal(JSON.parse(clean.stdout).vectors.checked, ids.length)

    // A tombstone here whose vector stays, and a live row here that never had a vector.
    const tombstoned = ids[2]!
    await stack.pool.query(`UPDATE "${stack.table}" SET deleted_at = now(), payload = NULL WHERE id = $1`, [tombstoned])
    const unembedded = 'default:(99.0,)'
    await stack.pool.query(
      `INSERT INTO "${stack.table}" (id, namespace, type, payload, version, event_id, event_ts)
       VALUES ($1, 'default', 'semantic', '{"text": "no vector"}', 0, gen_random_uuid(), now())`,
      [unembedded]
    )
    await legacy.pool.query(`INSERT INTO kv_store VALUES ($1, '{"text": "no vector", "memory_type": "semantic"}')`, [
      `${unembedded}:data`
    ])
    const out = join(stack.dataDir, 'vectors-report.json')
    const dirty = await parity('--json', '--out', out)
    assert.equal(dirty.code, 1, dirty.stderr)
    const result = JSON.parse(dirty.stdout) as { vectors: { counts: Record<string, number> } }
    assert.deepEqual(result.vectors.counts, { missing: 1, orphaned: 1 })
    const report = JSON.parse(await readFile(out, 'utf8')) as { vectors: { ids: Record<string, string[]> } }
    assert.deepEqual(report.vectors.ids, { missing: [unembedded], orphaned: [tombstoned] })

    assert.equal((await cli('backfill', ['--legacy-url', legacy.url, '--repair', out])).code, 0)
    await runMemoryUntilIdle({ group: 'g-vectors' })
    const after = await parity()
    assert.equal(after.code, 0, after.stdout + after.stderr)
  })

  test('bad input: one line naming what to fix, exit 2', { timeout: 120_000 }, async (t) => {
    const stack = await isolatedMemoryStack(t)
    const good = await legacyStore(t, legacyKvRows(8, 5, ['default']))
    const textValue = await legacyStore(t, [], 'key TEXT PRIMARY KEY, value TEXT NOT NULL')
    const closed = new URL(process.env.DATABASE_URL!)
    closed.port = '1'
    await writeFile(join(stack.dataDir, 'x'), '')
    const cases: [string[], RegExp][] = [
      [[], /--legacy-url is required/],
      [['--legacy-url', closed.toString()], /cannot connect to the legacy store/],
      [['--legacy-url', withSearchPath(process.env.DATABASE_URL!, 'no_such_schema_y')], /no kv_store table/],
      [['--legacy-url', textValue.url], /kv_store\.value .* is text, expected jsonb/],
      [['--legacy-url', good.url, '--table', 'no_such_memories'], /no table no_such_memories .*--table/],
      [['--legacy-url', good.url, '--database-url', closed.toString()], /cannot connect to the memories database/],
      [['--legacy-url', good.url, '--sample', 'many'], /--sample: expected a whole number/]
    ]
    for (const [args, message] of cases) {
      const run = await cli('parity', args)
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`)
      assert.match(run.stderr, message)
      assert.ok(!run.stderr.includes('    at '), 'no stack trace')
    }
  })
})
