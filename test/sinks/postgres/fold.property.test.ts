import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import type { MemoryEvent } from '../../../src/memory/event.ts'
import { fold } from '../../../src/memory/fold.ts'
import { memoriesSink as postgresSink } from '../../../src/memory/memories.ts'
import { databaseUrl, envelopes, readMemories, testSchema } from './helpers.ts'

const RUNS = Number(process.env.SFM_PG_PROPERTY_RUNS ?? 1000)

/** An event before it gets its run-unique ids. (key, version, second, micro) is unique within a history. */
const abstractEvent = fc.record({
  key: fc.integer({ min: 0, max: 2 }),
  version: fc.integer({ min: 0, max: 3 }),
  // Absent version means 0: both spellings must fence alike.
  omitVersion: fc.boolean(),
  second: fc.integer({ min: 0, max: 4 }),
  micro: fc.constantFrom(0, 1, 999_999),
  // The same instant written in different zones must compare equal.
  zoneMinutes: fc.constantFrom(0, 60, -330, 845),
  op: fc.constantFrom('upsert', 'upsert', 'delete'),
  importance: fc.option(fc.double({ noNaN: true, noDefaultInfinity: true }), { nil: undefined }),
  text: fc.string({ maxLength: 12 }),
  copies: fc.integer({ min: 1, max: 5 })
})

const history = fc
  .uniqueArray(abstractEvent, {
    minLength: 1,
    maxLength: 8,
    selector: (e) => `${e.key}/${e.version}/${e.second}/${e.micro}`
  })
  .chain((events) => {
    const copies = events.flatMap((event, n) => Array.from({ length: event.copies }, () => ({ event, n })))
    return fc.record({
      events: fc.constant(events),
      arrival: fc.shuffledSubarray(copies, { minLength: copies.length, maxLength: copies.length }),
      batchSizes: fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 5 })
    })
  })

function timestamp(second: number, micro: number, zoneMinutes: number): string {
  const utc = Date.UTC(2025, 0, 1, 0, 0, second) + zoneMinutes * 60_000
  const local = new Date(utc).toISOString().slice(0, 19)
  const sign = zoneMinutes < 0 ? '-' : '+'
  const abs = Math.abs(zoneMinutes)
  const zone = `${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`
  return `${local}.${String(micro).padStart(6, '0')}${zone}`
}

function hex(n: number, width: number): string {
  return n.toString(16).padStart(width, '0')
}

test(`postgres sink: ${RUNS} generated histories end as fold(history)`, async (t) => {
  const { schema, pool } = await testSchema(t, 'sfm_pg_prop')
  const table = `${schema}.memories`
  const sink = postgresSink({ connectionString: databaseUrl(), table, poolSize: 2 })
  t.after(() => sink.close())
  await sink.open()
  let run = 0
  let batches = 0
  let writes = 0

  await fc.assert(
    fc.asyncProperty(history, async ({ events, arrival, batchSizes }) => {
      run++
      const prefix = `r${run}:`
      const concrete: MemoryEvent[] = events.map((e, n) => {
        const common = {
          event_id: `${hex(run, 8)}-${hex(n, 4)}-4000-8000-000000000000`,
          id: `${prefix}${e.key}`,
          namespace: `ns${e.key}`,
          timestamp: timestamp(e.second, e.micro, e.zoneMinutes),
          ...(e.omitVersion && e.version === 0 ? {} : { version: e.version })
        }
        return e.op === 'delete'
          ? { ...common, op: 'delete' as const }
          : {
              ...common,
              type: 'note',
              payload: { text: e.text, n },
              ...(e.importance === undefined ? {} : { importance: e.importance })
            }
      })
      const delivered = arrival.map(({ n }) => concrete[n]!)
      const appliedByEvent = new Map<string, number>()
      let offset = 0
      for (let b = 0; offset < delivered.length; b++) {
        const size = batchSizes[b % batchSizes.length]!
        const slice = delivered.slice(offset, offset + size)
        offset += size
        const result = await sink.write(envelopes(slice))
        batches++
        writes += slice.length
        assert.deepEqual(result.failures, [])
        result.outcomes.forEach((outcome, k) => {
          assert.ok(outcome !== undefined)
          if (outcome === 'applied') {
            const id = slice[k]!.event_id
            appliedByEvent.set(id, (appliedByEvent.get(id) ?? 0) + 1)
          }
        })
      }

      const expected = fold(concrete)
      const actual = await readMemories(pool, table, prefix)
      assert.deepEqual(actual, expected)
      // Each event is applied at most once, and every final winner exactly once.
      for (const count of appliedByEvent.values()) assert.equal(count, 1)
      for (const row of expected.values()) assert.equal(appliedByEvent.get(row.eventId), 1, `winner of ${row.id}`)
    }),
    { numRuns: RUNS }
  )
  t.diagnostic(`${run} histories, ${writes} events in ${batches} batches`)
})

const CONCURRENT_RUNS = Math.max(1, Math.floor(RUNS / 5))

test(`postgres sink: ${CONCURRENT_RUNS} histories written by two concurrent sinks end as fold(history)`, async (t) => {
  const { schema, pool } = await testSchema(t, 'sfm_pg_conc')
  const table = `${schema}.memories`
  const sinks = [0, 1].map(() => postgresSink({ connectionString: databaseUrl(), table, poolSize: 1 }))
  t.after(() => Promise.all(sinks.map((s) => s.close())))
  await Promise.all(sinks.map((s) => s.open()))
  let run = 0
  let retries = 0

  await fc.assert(
    fc.asyncProperty(history, fc.array(fc.boolean(), { minLength: 1, maxLength: 40 }), async (h, lanes) => {
      run++
      const prefix = `c${run}:`
      const concrete: MemoryEvent[] = h.events.map((e, n) => ({
        event_id: `${hex(run, 8)}-${hex(n, 4)}-4000-8000-000000000001`,
        id: `${prefix}${e.key}`,
        namespace: 'ns',
        timestamp: timestamp(e.second, e.micro, e.zoneMinutes),
        version: e.version,
        ...(e.op === 'delete' ? { op: 'delete' as const } : { type: 'note', payload: { text: e.text } })
      }))
      // Copies of one event may go to both sinks: a redelivery racing the first delivery (e.g. a rebalance).
      const streams: MemoryEvent[][] = [[], []]
      h.arrival.forEach(({ n }, k) => {
        streams[lanes[k % lanes.length] ? 1 : 0]!.push(concrete[n]!)
      })
      await Promise.all(
        streams.map(async (stream, s) => {
          for (let offset = 0; offset < stream.length; offset += 3) {
            const slice = stream.slice(offset, offset + 3)
            for (;;) {
              try {
                const result = await sinks[s]!.write(envelopes(slice))
                assert.deepEqual(result.failures, [])
                break
              } catch (error) {
                // What the runtime does with a retriable error (a deadlock between the two writers): retry.
                assert.equal((error as { kind?: string }).kind, 'retriable', String(error))
                retries++
              }
            }
          }
        })
      )
      assert.deepEqual(await readMemories(pool, table, prefix), fold(concrete))
    }),
    { numRuns: CONCURRENT_RUNS }
  )
  t.diagnostic(`${run} histories, ${retries} retried batches`)
})
