import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { LexicalEmbedder } from '../../../src/embedders/lexical.ts'
import { ErrorCodes, ErrorKinds, kindOf, SfmError } from '../../../src/errors.ts'
import { PgvectorIndexes, ThreadedPgvectorStore } from '../../../src/sinks/pgvector/index.ts'
import type { VectorRecord } from '../../../src/sinks/vector/types.ts'
import { vectorRequestChannel } from '../../../src/telemetry/channels.ts'
import { textCorpus } from '../../helpers/vectors.ts'

function record(id: string, vector: Float32Array, version = 1): VectorRecord {
  return {
    id,
    namespace: id.startsWith('a') ? 'a' : 'b',
    type: 'semantic',
    importance: 0.5,
    version,
    micros: 1_700_000_000_000_000n + BigInt(version),
    timestamp: `2023-11-14T22:13:20.${String(version).padStart(6, '0')}Z`,
    modelRevision: 'rev',
    vector,
    excerpt: `excerpt of ${id}`
  }
}

test('the embedded vector index on its own thread and folder: writes, fences, searches; survives a reopen', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sfm-threaded-store-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const embedder = new LexicalEmbedder({ dimensions: 64 })
  const texts = textCorpus(300, 5)
  const vectors = await embedder.embed(texts)

  const requests: unknown[] = []
  const onRequest = (message: unknown) => requests.push(message)
  vectorRequestChannel.subscribe(onRequest)
  t.after(() => vectorRequestChannel.unsubscribe(onRequest))

  const store = new ThreadedPgvectorStore({ dataDir: dir, store: { index: PgvectorIndexes.EXACT } })
  assert.equal(store.folder, join(dir, 'vectors'))
  await store.open(64)
  const report = await store.write(
    vectors.map((v, i) => record(`${i % 2 ? 'a' : 'b'}-${i}`, v)),
    [{ id: 'never-written', namespace: 'a', version: 1, micros: 5n, timestamp: '1970-01-01T00:00:00.000005Z' }]
  )
  assert.deepEqual(report, { upserts: 300, deletes: 1, requests: 1 })
  // The statement is reported on this thread's telemetry channel (the worker's has no listener).
  assert.deepEqual(requests, [{ store: 'pgvector', points: 301 }])

  const fences = await store.fences(['a-1', 'b-0', 'missing'])
  assert.deepEqual([...fences.keys()].sort(), ['a-1', 'b-0'])
  assert.deepEqual(fences.get('a-1'), { version: 1, micros: 1_700_000_000_000_001n })
  const points = await store.points(['never-written'])
  assert.equal(points.get('never-written')?.deleted, true, 'a delete leaves a tombstone')
  // A stale write loses the fence inside the worker exactly as in process.
  assert.equal((await store.write([record('a-1', vectors[0]!, 0)], [])).upserts, 0)

  const hits = await store.search(vectors[7]!, { k: 3, namespace: 'a' })
  assert.equal(hits[0]?.id, 'a-7')
  assert.ok(hits.every((h) => h.namespace === 'a'))
  assert.equal(await store.count(), 300)

  // A second store on the same folder in this process is refused: the folder has one owner.
  const second = new ThreadedPgvectorStore({ dataDir: dir })
  await assert.rejects(second.open(64), (error: unknown) => {
    return (
      error instanceof SfmError &&
      error.code === ErrorCodes.CONFIG &&
      /already open in this process/.test(error.message)
    )
  })
  await second.close()

  // A value the database refuses comes back as the same kind of error it is in process: poison, for bisection.
  await assert.rejects(
    store.write(
      [
        record(
          'a-nan',
          Float32Array.from({ length: 64 }, () => Number.NaN),
          3
        )
      ],
      []
    ),
    (error: unknown) => {
      return kindOf(error) === ErrorKinds.POISON && /NaN/.test(String((error as Error).message))
    }
  )
  await store.close()

  // Durable: a new store (a restarted runner) finds everything, and the lock was released.
  const reopened = new ThreadedPgvectorStore({ dataDir: dir })
  t.after(() => reopened.close())
  await reopened.open(64)
  assert.equal(await reopened.count(), 300)
  assert.equal((await reopened.search(vectors[8]!, { k: 1 }))[0]?.id, 'b-8')
})
