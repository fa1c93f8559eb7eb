import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { describe, test } from 'node:test'
import type { MemoryEvent } from '../../src/memory/event.ts'
import { openLogAccess } from '../../src/ops/log.ts'
import { brokers, committedOffsets, NO_KAFKA, produce, readTopic, uniqueName } from '../helpers/kafka.ts'
import { isolatedMemoryStack, runMemoryUntilIdle } from '../helpers/legacy.ts'

const skip = brokers() && process.env.DATABASE_URL ? false : `${NO_KAFKA}; DATABASE_URL too`

function upsert(id: string, version: number, second: number, text: string): MemoryEvent {
  return {
    event_id: randomUUID(),
    id,
    namespace: 'ns',
    op: 'upsert',
    type: 'episodic',
    version,
    timestamp: `2026-04-01T00:00:${String(second).padStart(2, '0')}Z`,
    payload: { text }
  }
}

/** End offset per partition of a topic. */
async function ends(topic: string): Promise<Map<number, bigint>> {
  const access = openLogAccess()
  try {
    return new Map((await access.partitions(topic)).map((p) => [p.partition, p.end]))
  } finally {
    await access.close()
  }
}

/** The runner (`npm start`'s entry point) with --shadow, until idle: its exit code, JSON summary and log. */
async function shadowRun(env: NodeJS.ProcessEnv) {
  const child = spawn(
    process.execPath,
    ['src/cli/start.ts', 'topologies/memory.ts', '--shadow', '--until-idle=2', '--status-interval', '1'],
    { env: { ...env, LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] }
  )
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

describe('npm start -- topologies/memory.ts --shadow', { skip }, () => {
  test('reports the outcome counts the real run then produces, and leaves the table, the topics and the real group alone', {
    timeout: 240_000
  }, async (t) => {
    const stack = await isolatedMemoryStack(t)
    const group = uniqueName('memory')
    const events = stack.topic('memory.events')
    const send = (list: readonly (MemoryEvent | string)[]) =>
      produce(
        list.map((e) =>
          typeof e === 'string'
            ? { topic: events, key: 'poison', value: e }
            : { topic: events, key: e.id, value: JSON.stringify(e) }
        )
      )

    // What the real group has processed already.
    const first = Array.from({ length: 20 }, (_, i) => upsert(`m${i}`, 1, 10, `first ${i}`))
    await send(first)
    await runMemoryUntilIdle({ group })

    // What it has not: each id once, so the memory.latest count (one record per id per batch) does not depend on how
    // two runs cut the records into batches. Ids changed across batches: test/sinks/postgres/dry-run.test.ts.
    const next: (MemoryEvent | string)[] = [
      ...[0, 1, 2, 3, 4].map((i) => upsert(`m${i}`, 2, 20, `updated ${i}`)),
      ...[5, 6, 7].map((i) => upsert(`m${i}`, 0, 30, `older version ${i}`)),
      ...[8, 9].map((i) => first[i]!),
      ...[10, 11, 12].map(
        (i): MemoryEvent => ({
          event_id: randomUUID(),
          id: `m${i}`,
          namespace: 'ns',
          op: 'delete',
          version: 3,
          timestamp: '2026-04-01T00:00:40Z'
        })
      ),
      ...Array.from({ length: 6 }, (_, i) => upsert(`new${i}`, 1, 50, `new ${i}`)),
      'not json',
      JSON.stringify({ id: 'x', op: 'upsert' })
    ]
    await send(next)

    const table = async () =>
      (await stack.pool.query(`SELECT * FROM "${stack.table}" ORDER BY id`)).rows.map((r) => JSON.stringify(r))
    const topics = ['memory.latest', 'memory.audit', 'memory.dlq'] as const
    const before = {
      rows: await table(),
      ends: await Promise.all(topics.map((name) => ends(stack.topic(name)))),
      committed: await committedOffsets(group, events)
    }

    const shadow = await shadowRun({ ...process.env, SFM_MEMORY_GROUP: group })
    assert.equal(shadow.code, 0, shadow.stderr)
    assert.match(shadow.stderr, new RegExp(`consuming as group ${group}\\.shadow; the real group ${group} is read`))
    assert.match(shadow.stderr, /shadow: kv /, 'the status line shows the counts so far')
    const report = JSON.parse(shadow.stdout.trim().split('\n').at(-1)!) as {
      shadow: { groupId: string; branches: Record<string, Record<string, number>>; deadLetters: Record<string, number> }
    }
    assert.equal(report.shadow.groupId, `${group}.shadow`)

    // Nothing moved: rows, output topics, the real group.
    assert.deepEqual(await table(), before.rows)
    assert.deepEqual(await Promise.all(topics.map((name) => ends(stack.topic(name)))), before.ends)
    assert.deepEqual(await committedOffsets(group, events), before.committed)

    // The real run of the same group over the same records.
    await runMemoryUntilIdle({ group })
    const newRecords = async (name: (typeof topics)[number], index: number) => {
      const all = await readTopic(stack.topic(name), 1_000, 5_000)
      return all.filter((m) => m.offset >= (before.ends[index]!.get(m.partition) ?? 0n))
    }
    const audit = (await newRecords('memory.audit', 1)).map(
      (m) => JSON.parse(m.value!) as { outcome: string; op: string }
    )
    const real: Record<string, number> = { applied: 0, fenced: 0, duplicate: 0, deleted: 0, failed: 0 }
    for (const a of audit) {
      real[a.outcome] = (real[a.outcome] ?? 0) + 1
      if (a.op === 'delete' && a.outcome === 'applied') real.deleted = (real.deleted ?? 0) + 1
    }
    real[stack.topic('memory.latest')] = (await newRecords('memory.latest', 0)).length
    real[stack.topic('memory.audit')] = audit.length
    const dlq = (await newRecords('memory.dlq', 2)).length

    assert.deepEqual(real, {
      applied: 14,
      fenced: 3,
      duplicate: 2,
      deleted: 3,
      failed: 0,
      [stack.topic('memory.latest')]: 19,
      [stack.topic('memory.audit')]: 19
    })
    assert.deepEqual(report.shadow.branches.kv, real)
    assert.equal(dlq, 2)
    assert.deepEqual(report.shadow.deadLetters, { decode: 1, validate: 1 })
  })
})
