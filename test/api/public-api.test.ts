/**
 * The public API as a topology author sees it: everything is imported by the package name (package.json `exports`
 * resolves `somafractal-streams` to src/index.ts), and a small topology built from it runs on the embedded log.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { pipe } from 'rxjs'
import * as api from 'somafractal-streams'
import {
  branch,
  DeadLetterHeaders,
  decodeJson,
  dedupe,
  defineTopology,
  type Envelope,
  kafkaDeadLetter,
  keep,
  logSource,
  RetriableError,
  Runtime,
  retryStep,
  type Sink,
  validate,
  type WriteResult
} from 'somafractal-streams'
import * as memory from 'somafractal-streams/memory'
import * as fromSource from '../../src/index.ts'
import { openLog, readAll, tempDataDir } from '../helpers/embedded-log.ts'

interface Note {
  event_id: string
  text: string
}

const noteSchema = {
  type: 'object',
  required: ['event_id', 'text'],
  properties: { event_id: { type: 'string' }, text: { type: 'string' } }
}

/** A sink a topology author writes: keeps what it is given, acks everything. */
function collect(into: Note[]): Sink<Note> {
  return {
    kind: 'memory',
    async open() {},
    async write(batch: readonly Envelope<Note>[]): Promise<WriteResult> {
      for (const envelope of batch) into.push(envelope.value)
      return {}
    },
    async close() {}
  }
}

describe('public API (somafractal-streams)', () => {
  test('the package name resolves to src/index.ts (the same module instance, not a copy)', () => {
    assert.equal(api.defineTopology, fromSource.defineTopology)
    assert.equal(api.Envelope, fromSource.Envelope)
    for (const name of ['defineTopology', 'branch', 'decodeJson', 'validate', 'dedupe', 'batch', 'keep', 'retryStep']) {
      assert.equal(typeof (api as Record<string, unknown>)[name], 'function', name)
    }
    for (const name of [
      'kafkaSource',
      'embeddedLogSource',
      'logSource',
      'kafkaSink',
      'kafkaDeadLetter',
      'postgresSink',
      'vectorSink'
    ]) {
      assert.equal(typeof (api as Record<string, unknown>)[name], 'function', name)
    }
    for (const name of ['RetriableError', 'PoisonError', 'FatalError', 'SfmError']) {
      assert.equal(typeof (api as Record<string, unknown>)[name], 'function', name)
    }
    assert.equal('retry' in api, false, "no operator named retry: it would shadow RxJS's retry")
    assert.equal(typeof memory.materializeMemories, 'function')
    assert.equal(typeof memory.postgresSink, 'function')
    assert.equal(typeof memory.vectorSink, 'function')
  })

  test('a topology built only from the public API runs on the embedded log: decode, validate, dedupe, keep, retryStep, a custom sink, the DLQ', async (t) => {
    const dir = tempDataDir(t)
    const log = openLog(t, dir)
    for (const name of ['notes', 'notes.dlq']) log.createTopic({ name, partitions: 2 })
    const value = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v))
    const notes = Array.from({ length: 40 }, (_, i) => ({ event_id: `e${i}`, text: i % 10 === 0 ? '' : `note ${i}` }))
    log.append([
      ...notes.map((n) => ({ topic: 'notes', key: value(n.event_id), value: value(n) })),
      { topic: 'notes', key: value('e1'), value: value(notes[1]) }, // a duplicate
      { topic: 'notes', key: value('bad'), value: value('{not json') }, // poison: decode
      { topic: 'notes', key: value('invalid'), value: value({ event_id: 'x' }) } // poison: validate
    ])

    let failuresLeft = 3
    const stored: Note[] = []
    const options = { target: 'embedded', dataDir: dir } as const
    const topology = defineTopology<Note>({
      name: 'public-api-notes',
      source: logSource({ topics: ['notes'], groupId: 'notes', ...options }),
      pipeline: pipe(
        decodeJson({ maxBytes: 1 << 16, maxDepth: 16 }),
        validate<Note>(noteSchema),
        dedupe({ key: (e) => e.value.event_id }),
        keep((e) => e.value.text.length > 0),
        retryStep(
          async (e) => {
            if (failuresLeft > 0) {
              failuresLeft--
              throw new RetriableError('briefly unavailable')
            }
            return { ...e.value, text: e.value.text.toUpperCase() }
          },
          { initialDelayMs: 1, maxDelayMs: 5 }
        )
      ),
      branches: { notes: branch(collect(stored), { batch: { maxCount: 8, maxWaitMs: 10 } }) },
      deadLetter: kafkaDeadLetter({ topic: 'notes.dlq', ...options }),
      settings: { commitIntervalMs: 50, drainTimeoutMs: 5_000 }
    })
    const summary = await new Runtime(topology, { untilIdleMs: 300 }).run()

    assert.equal(summary.reason, 'idle')
    assert.equal(failuresLeft, 0, 'the retriable failures were retried')
    const expected = notes.filter((n) => n.text !== '').map((n) => ({ ...n, text: n.text.toUpperCase() }))
    const byId = (a: Note, b: Note) => a.event_id.localeCompare(b.event_id)
    assert.deepEqual(stored.sort(byId), expected.sort(byId), 'each valid, non-empty note once, transformed')
    assert.equal(summary.deadLettered, 2)
    const stages = readAll(log, 'notes.dlq')
      .map((r) => r.headers.get(DeadLetterHeaders.STAGE)?.toString())
      .sort()
    assert.deepEqual(stages, ['decode', 'validate'])
    assert.equal(summary.dropped, 5, 'four empty notes filtered by keep, one duplicate')
  })
})
