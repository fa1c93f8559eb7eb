import assert from 'node:assert/strict'
import { test } from 'node:test'
import { LexicalEmbedder } from '../../../src/embedders/lexical.ts'
import type { EmbeddingRequest } from '../../../src/embedders/messages.ts'
import type { Embedder } from '../../../src/embedders/types.ts'
import { ErrorKinds, kindOf, PoisonError, RetriableError } from '../../../src/errors.ts'
import { memoryVectorSink } from '../../../src/memory/vectors/sink.ts'
import { PgvectorStore, pgliteDatabase } from '../../../src/sinks/pgvector/index.ts'
import { memoryEnvelopes, remove, upsert } from '../../helpers/vectors.ts'

/** The lexical embedder behind a gate that refuses some texts or is down, as an embedding server may be. */
class GatedEmbedder implements Embedder {
  readonly name = 'gated'
  readonly inner = new LexicalEmbedder({ dimensions: 16 })
  readonly dimensions = 16
  readonly revision = 'gated-1'
  calls: number[] = []
  down = false
  async embed(texts: readonly string[]): Promise<Float32Array[]> {
    this.calls.push(texts.length)
    if (this.down) throw new RetriableError('embedding server unavailable')
    if (texts.some((t) => t.includes('REFUSE'))) throw new PoisonError('input refused')
    return this.inner.embed(texts)
  }
}

test('a text the embedder refuses is isolated by bisection; the rest is indexed', async (t) => {
  const embedder = new GatedEmbedder()
  const store = new PgvectorStore(await pgliteDatabase())
  const sink = memoryVectorSink({ embedder, store })
  t.after(() => sink.close())
  const events = Array.from({ length: 8 }, (_, i) => upsert(`e-${i}`, i === 5 ? 'please REFUSE me' : `text ${i}`))
  const result = await sink.write(memoryEnvelopes(events))
  assert.deepEqual(
    result.failures?.map((f) => [f.index, kindOf(f.error)]),
    [[5, ErrorKinds.POISON]]
  )
  assert.equal(await store.count(), 7)
  assert.equal(embedder.calls[0], 8, 'one call for the whole batch first')

  embedder.down = true
  const error = await sink.write(memoryEnvelopes([upsert('x', 'anything')])).catch((e: unknown) => e)
  assert.equal(kindOf(error), ErrorKinds.RETRIABLE, 'an unavailable embedder holds the batch')
})

test('remote mode publishes requests for upserts and writes deletes and carried embeddings itself', async (t) => {
  const embedder = new GatedEmbedder()
  const store = new PgvectorStore(await pgliteDatabase())
  const published: EmbeddingRequest[] = []
  const sink = memoryVectorSink({
    embedder,
    store,
    requests: {
      async publish(requests) {
        published.push(...requests)
      }
    }
  })
  t.after(() => sink.close())
  const carried = { ...upsert('c', 'carried'), embedding: Array.from({ length: 16 }, (_, i) => i + 1) }
  const first = upsert('a', 'to embed', { version: 1 })
  const events = [first, upsert('a', 'newer, to embed', { version: 2 }), carried, remove('d', { version: 3 })]
  assert.deepEqual(await sink.write(memoryEnvelopes(events)), {})
  assert.deepEqual(embedder.calls, [], 'nothing embedded in the branch')
  assert.equal(published.length, 1, 'one request: the winner of id a')
  assert.deepEqual(
    { ...published[0], request_id: undefined },
    {
      request_id: undefined,
      id: 'a',
      namespace: 'ns',
      text: 'newer, to embed',
      model: 'gated-1',
      type: 'semantic',
      version: 2,
      timestamp: '2026-01-01T00:00:00.000000Z',
      importance: null,
      excerpt: 'newer, to embed'
    }
  )
  assert.equal(await store.count(), 1, 'the carried embedding is indexed; d is a tombstone')
  assert.notEqual(published[0]!.request_id, first.event_id)
})

test('a dry run (shadow) counts upserts and deletes, embeds nothing and leaves the store as it is', async (t) => {
  const embedder = new GatedEmbedder()
  const store = new PgvectorStore(await pgliteDatabase())
  const live = memoryVectorSink({ embedder, store })
  t.after(() => live.close())
  await live.write(memoryEnvelopes([upsert('kept', 'stays')]))
  const calls = embedder.calls.length

  const dry = memoryVectorSink({ embedder, store })
  const signal = new AbortController().signal
  const context = { topology: 't', branch: 'vectors', signal, dryRun: true }
  await dry.open(context)
  const events = [upsert('a', 'one'), upsert('b', 'two'), remove('kept'), upsert('c', '')]
  const result = await dry.write(memoryEnvelopes(events), context)
  assert.deepEqual(result.dryRun, { upserts: 2, deletes: 1 })
  assert.deepEqual(
    result.failures?.map((f) => [f.index, kindOf(f.error)]),
    [[3, ErrorKinds.POISON]],
    'nothing to embed: refused as in a real run'
  )
  assert.equal(embedder.calls.length, calls, 'nothing embedded')
  assert.equal(await store.count(), 1, 'the store is unchanged: the delete was not applied')
})
