import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { MemoryEvent } from '../../../src/memory/event.ts'
import { fold } from '../../../src/memory/fold.ts'
import { memoriesSink } from '../../../src/memory/memories.ts'
import { envelopes, memoryEvent, readMemories, serverAndPglite, testSchema } from './helpers.ts'

// A dry run (`npm start -- … --shadow`) rolls each batch back. Its outcomes must still be those a real run gives when
// a memory changes again in a later batch, or an event is redelivered after its first dry batch: each dry batch sees
// what the earlier dry batches would have written (writer.ts replays them in its rolled-back transaction).

const at = (second: number) => `2025-01-01T00:00:${String(second).padStart(2, '0')}.000000Z`

function history(): { seed: MemoryEvent[]; batches: MemoryEvent[][] } {
  const seed = [0, 1, 2].map((i) => memoryEvent({ id: `x${i}`, version: 1, timestamp: at(1) }))
  const x0v2 = memoryEvent({ id: 'x0', version: 2, timestamp: at(2) })
  const y0v1 = memoryEvent({ id: 'y0', version: 1, timestamp: at(2) })
  const batches = [
    // An update, a delete, a new memory.
    [x0v2, memoryEvent({ id: 'x1', version: 2, op: 'delete', timestamp: at(2) }), y0v1],
    // x0 changed again, x0's last update redelivered, a stale upsert of the deleted x1, the new memory updated and
    // its first event redelivered.
    [
      memoryEvent({ id: 'x0', version: 3, timestamp: at(3) }),
      x0v2,
      memoryEvent({ id: 'x1', version: 1, timestamp: at(3) }),
      memoryEvent({ id: 'y0', version: 2, timestamp: at(3) }),
      y0v1
    ],
    // x1 re-created above its delete, an older y0, x2 untouched so far.
    [
      memoryEvent({ id: 'x1', version: 3, timestamp: at(4) }),
      memoryEvent({ id: 'y0', version: 1, timestamp: at(5) }),
      memoryEvent({ id: 'x2', version: 2, timestamp: at(4) })
    ]
  ]
  return { seed, batches }
}

const dryContext = { topology: 'test', branch: 'kv', signal: new AbortController().signal, dryRun: true }

test('dry batches report the outcomes a real run then gives, across batches, and write nothing', async (t) => {
  const { schema, pool: serverCheck } = await testSchema(t)
  const targets = await serverAndPglite(t, schema, 2)
  for (const { name, pool, prefix } of targets) {
    const { seed, batches } = history()
    const dry = memoriesSink({ pool, table: `${prefix}dry_memories` })
    const real = memoriesSink({ pool, table: `${prefix}real_memories` })
    t.after(() => Promise.all([dry.close(), real.close()]))
    for (const sink of [dry, real]) {
      const seeded = await sink.write(envelopes(seed))
      assert.deepEqual(seeded.outcomes, ['applied', 'applied', 'applied'], name)
    }

    const dryOutcomes: unknown[] = []
    for (const batch of batches) {
      const result = await dry.write(envelopes(batch), dryContext)
      assert.equal(result.failures?.length ?? 0, 0, name)
      dryOutcomes.push(result.outcomes)
    }
    const realOutcomes: unknown[] = []
    for (const batch of batches) realOutcomes.push((await real.write(envelopes(batch))).outcomes)

    assert.deepEqual(
      realOutcomes,
      [
        ['applied', 'applied', 'applied'],
        ['applied', 'duplicate', 'fenced', 'applied', 'duplicate'],
        ['applied', 'fenced', 'applied']
      ],
      `${name}: the real run`
    )
    assert.deepEqual(dryOutcomes, realOutcomes, `${name}: the dry run reports what the real run did`)

    const read = async (table: string) =>
      name === 'server'
        ? readMemories(serverCheck, `"${schema}".${table}`)
        : new Map(
            (
              await pool.query<{ id: string; version: string }>(
                `SELECT id, version::text FROM public.${table} ORDER BY id`
              )
            ).rows.map((r) => [r.id, r.version])
          )
    const dryTable = await read('dry_memories')
    assert.equal(dryTable.size, 3, `${name}: the dry table still holds the seed only`)
    if (name === 'server') {
      assert.deepEqual(dryTable, fold(seed), `${name}: the dry table equals the fold of the seed`)
      assert.deepEqual(await read('real_memories'), fold([...seed, ...batches.flat()]), `${name}: the real table`)
    } else {
      assert.deepEqual([...dryTable.values()], ['1', '1', '1'], `${name}: the dry table's versions are the seed's`)
    }
  }
})
