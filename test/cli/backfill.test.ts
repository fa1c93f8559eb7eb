import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { brokers, NO_KAFKA, readTopic } from '../helpers/kafka.ts'
import {
  expectedMemories,
  isolatedMemoryStack,
  legacyKvRows,
  legacyStore,
  NO_PYTHON,
  runMemoryUntilIdle,
  withSearchPath
} from '../helpers/legacy.ts'
import { readMemories } from '../sinks/postgres/helpers.ts'

const skip = (brokers() && process.env.DATABASE_URL ? false : `${NO_KAFKA}; DATABASE_URL too`) || (NO_PYTHON ?? false)

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs `npm run backfill` as a user would (the project's Node, cwd = the project, the test's environment). */
function backfillCli(args: string[]): { child: ReturnType<typeof spawn>; done: Promise<Run> } {
  const child = spawn(process.execPath, ['src/cli/backfill.ts', ...args], {
    env: process.env,
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (c: string) => {
    stdout += c
  })
  child.stderr!.setEncoding('utf8').on('data', (c: string) => {
    stderr += c
  })
  const done = once(child, 'close').then(([code]) => ({ code: code as number | null, stdout, stderr }))
  return { child, done }
}

const lastJson = (run: Run) => JSON.parse(run.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>

/** The kinds of the rows Python wrote, counted from the layout (what backfill must report as skipped). */
function kindsOf(rows: readonly { key: string }[]) {
  const counts = { memory: 0, meta: 0, wal: 0, version: 0, uuid5: 0 }
  for (const { key } of rows) {
    if (key.endsWith(':data')) counts.memory++
    else if (key.endsWith(':meta')) counts.meta++
    else if (/:version:\d+$/.test(key)) counts.version++
    else if (key.includes(':wal:')) counts.wal++
    else if (/^[0-9a-f]{32}$/.test(key)) counts.uuid5++
    else assert.fail(`fixture key of no known kind: ${key}`)
  }
  return counts
}

describe('npm run backfill', { skip }, () => {
  test('legacy kv_store → memory.events → memory topology: every memory under its id; a second run applies nothing', {
    timeout: 240_000
  }, async (t) => {
    const stack = await isolatedMemoryStack(t)
    const rows = [...new Map(legacyKvRows(3, 120, ['default', 'other']).map((r) => [r.key, r])).values()]
    const legacy = await legacyStore(t, rows)
    const kinds = kindsOf(rows)

    const dry = await backfillCli(['--legacy-url', legacy.url, '--dry-run']).done
    assert.equal(dry.code, 0, dry.stderr)
    const drySummary = lastJson(dry)
    assert.equal(drySummary.read, rows.length)
    assert.equal(drySummary.produced, kinds.memory)
    assert.deepEqual(drySummary.skipped, {
      meta: kinds.meta,
      wal: kinds.wal,
      version: kinds.version,
      uuid5: kinds.uuid5,
      other: 0
    })
    assert.deepEqual(await readTopic(stack.topic('memory.events'), 1, 1_500), [], 'a dry run produces nothing')

    const first = await backfillCli(['--legacy-url', legacy.url, '--page-size', '50']).done
    assert.equal(first.code, 0, first.stderr)
    assert.equal(lastJson(first).produced, kinds.memory)
    assert.match(first.stderr, /skipped \(not memories\): meta \d+, wal \d+, version \d+, uuid5 \d+/)
    const password = new URL(process.env.DATABASE_URL!).password
    if (password) assert.ok(!first.stderr.includes(password), 'no password in the output')

    const run = await runMemoryUntilIdle()
    assert.equal(run.deadLettered, 0)
    const expected = expectedMemories(rows)
    const actual = await readMemories(stack.pool, `"${stack.table}"`)
    assert.equal(actual.size, expected.size)
    for (const [id, payload] of expected) {
      const row = actual.get(id)
      assert.ok(row, `memory ${id}`)
      assert.deepEqual(row.payload, payload, id)
      assert.equal(row.version, 0)
      assert.equal(row.type, (payload as { memory_type: string }).memory_type)
      assert.equal(row.namespace, id.startsWith('default:') ? 'default' : 'other')
    }
    for (const id of [
      'default:(1e-05, -0.0, 1e+16)',
      'default:(0.5,)',
      'other:(-0.0,)',
      'other:(0.30000000000000004, 3.0)'
    ]) {
      assert.ok(actual.has(id), id)
    }

    const again = await backfillCli(['--legacy-url', legacy.url]).done
    assert.equal(again.code, 0, again.stderr)
    const second = await runMemoryUntilIdle({ group: process.env.SFM_MEMORY_GROUP! })
    assert.equal(second.consumed, kinds.memory, 'the second run produced every memory again')
    const after = await readMemories(stack.pool, `"${stack.table}"`)
    assert.deepEqual(after, actual, 'nothing changed')
    const audit = await readTopic(stack.topic('memory.audit'), 2 * kinds.memory, 10_000)
    const outcomes = new Map<string, number>()
    for (const m of audit) {
      const outcome = (JSON.parse(m.value!) as { outcome: string }).outcome
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1)
    }
    // Each event once applied (first run) and once a duplicate (second run): 0 applied on the second run.
    assert.deepEqual(Object.fromEntries(outcomes), { applied: kinds.memory, duplicate: kinds.memory })
  })

  test('--namespace: only that namespace; --repair: updated, deleted and added ids follow the legacy store', {
    timeout: 240_000
  }, async (t) => {
    const stack = await isolatedMemoryStack(t)
    const rows = legacyKvRows(4, 40, ['default', 'other'])
    const legacy = await legacyStore(t, rows)
    const only = await backfillCli(['--legacy-url', legacy.url, '--namespace', 'other']).done
    assert.equal(only.code, 0, only.stderr)
    await runMemoryUntilIdle({ group: 'g-repair' })
    const expected = new Map([...expectedMemories(rows)].filter(([id]) => id.startsWith('other:')))
    const actual = await readMemories(stack.pool, `"${stack.table}"`)
    assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort())

    // Behind the stack's back: one updated, one deleted, one added (as the legacy app would write them).
    const [updated, deleted] = [...expected.keys()].slice(1, 3) as [string, string]
    await legacy.pool.query(`UPDATE kv_store SET value = value || '{"text": "changed"}' WHERE key = $1`, [
      `${updated}:data`
    ])
    await legacy.pool.query('DELETE FROM kv_store WHERE key = $1', [`${deleted}:data`])
    const added = 'other:(42.0, 4.2e-07)'
    await legacy.pool.query(
      `INSERT INTO kv_store VALUES ($1, '{"text": "new", "memory_type": "semantic", "coordinate": [42.0, 4.2e-07]}')`,
      [`${added}:data`]
    )
    const reportPath = join(stack.dataDir, 'report.json')
    const report = {
      kind: 'sfm.parity-report',
      version: 1,
      finished_at: new Date().toISOString(),
      namespace: 'other',
      compared: { legacy: expected.size, here: expected.size },
      counts: { missing: 1, extra: 1, differing: 1, deleted_here: 0 },
      ids: { missing: [added], extra: [deleted], differing: [updated], deleted_here: [] }
    }
    await writeFile(reportPath, JSON.stringify(report))
    const repaired = await backfillCli(['--legacy-url', legacy.url, '--repair', reportPath]).done
    assert.equal(repaired.code, 0, repaired.stderr)
    const summary = lastJson(repaired)
    assert.equal(summary.upserts, 2)
    assert.equal(summary.deletes, 1)
    const run = await runMemoryUntilIdle({ group: 'g-repair' })
    assert.equal(run.consumed, 3, 'only the named ids were re-emitted')
    const now = await readMemories(stack.pool, `"${stack.table}"`)
    assert.equal((now.get(updated)!.payload as { text: string }).text, 'changed')
    assert.ok(now.get(updated)!.version > 1e15, 'at the clock version')
    assert.notEqual(now.get(deleted)?.deletedAt, null)
    assert.deepEqual(now.get(added)?.payload, { text: 'new', memory_type: 'semantic', coordinate: [42, 4.2e-7] })
  })

  test('kill -9 mid-run, then --resume: continues after the checkpoint and every memory arrives', {
    timeout: 240_000
  }, async (t) => {
    const stack = await isolatedMemoryStack(t)
    const rows = legacyKvRows(5, 1500, ['default'])
    const legacy = await legacyStore(t, rows)
    const state = join(stack.dataDir, 'state.json')
    const killed = backfillCli(['--legacy-url', legacy.url, '--page-size', '10', '--state', state])
    while (!existsSync(state)) await sleep(5)
    killed.child.kill('SIGKILL')
    const dead = await killed.done
    assert.equal(dead.code, null, 'killed before it finished')
    const checkpoint = JSON.parse(await readFile(state, 'utf8')) as { lastKey: string; counts: { read: number } }
    assert.ok(checkpoint.counts.read < rows.length, 'the checkpoint is mid-way')
    assert.ok(!checkpoint.lastKey.includes('password'))

    const resumed = await backfillCli(['--legacy-url', legacy.url, '--state', state, '--resume']).done
    assert.equal(resumed.code, 0, resumed.stderr)
    const summary = lastJson(resumed)
    assert.ok((summary.read as number) < rows.length, `resumed: read ${summary.read} of ${rows.length}`)
    assert.match(resumed.stderr, /resumed after/)
    await runMemoryUntilIdle()
    const actual = await readMemories(stack.pool, `"${stack.table}"`)
    assert.deepEqual([...actual.keys()].sort(), [...expectedMemories(rows).keys()].sort())
  })

  test('bad input: one line naming what to fix, exit 2, nothing written', { timeout: 120_000 }, async (t) => {
    const stack = await isolatedMemoryStack(t)
    const good = await legacyStore(t, legacyKvRows(6, 5, ['default']))
    const textValue = await legacyStore(t, [], 'key TEXT PRIMARY KEY, value TEXT NOT NULL')
    const notAReport = join(stack.dataDir, 'not-a-report.json')
    await writeFile(notAReport, JSON.stringify({ missing: ['default:(1.0,)'] }))
    const closed = new URL(process.env.DATABASE_URL!)
    closed.port = '1'
    const cases: [string[], RegExp][] = [
      [[], /--legacy-url is required/],
      [['--legacy-url', closed.toString()], /cannot connect to the legacy store at .*check --legacy-url/],
      [['--legacy-url', withSearchPath(process.env.DATABASE_URL!, 'no_such_schema_x')], /no kv_store table at/],
      [['--legacy-url', textValue.url], /kv_store\.value at .* is text, expected jsonb/],
      [['--legacy-url', good.url, '--repair', notAReport], /is not a parity report \(no "kind"/],
      [['--legacy-url', good.url, '--repair', join(stack.dataDir, 'nope.json')], /cannot read the parity report/],
      [['--legacy-url', good.url, '--page-size', '0'], /--page-size: expected a positive integer/]
    ]
    for (const [args, message] of cases) {
      const run = await backfillCli(args).done
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`)
      assert.match(run.stderr, message)
      assert.ok(!run.stderr.includes('    at '), 'no stack trace')
      const password = new URL(process.env.DATABASE_URL!).password
      if (password) assert.ok(!run.stderr.includes(password), 'no password in the message')
    }
    assert.deepEqual(await readTopic(stack.topic('memory.events'), 1, 1_500), [], 'nothing written')
  })
})
