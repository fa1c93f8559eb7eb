/**
 * `npm run bench -- vectors`: the vector branch without Kafka, in one process. Measures the built-in lexical
 * embedder (texts/s), the vector sink into pgvector on PGlite (events/s: embed + fenced upsert + HNSW insert), and
 * the vector sink into the Qdrant store's request path against a local HTTP endpoint that answers like Qdrant
 * (events/s: embed + JSON encoding + batched, parallel HTTP requests; no vector search work on the other side).
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { parseArgs } from 'node:util'
import { LexicalEmbedder } from '../src/embedders/lexical.ts'
import type { MemoryEvent } from '../src/memory/event.ts'
import { memoryVectorSink } from '../src/memory/vectors/sink.ts'
import { PgvectorStore, pgliteDatabase } from '../src/sinks/pgvector/index.ts'
import { QdrantStore } from '../src/sinks/qdrant/index.ts'
import type { VectorStore } from '../src/sinks/vector/index.ts'
import { Delivery, Envelope } from '../src/streams/envelope.ts'
import { type BenchResult, progress, type Requirement, round } from './lib/benchmark.ts'

export const description = 'lexical embedder texts/s; vector branch events/s into pgvector (PGlite) and Qdrant requests'
export const requires: readonly Requirement[] = []
export const usage = `Usage: npm run bench -- vectors [--events N] [--batch N] [--dimensions N]

  --events N       memories per store (default 3000)
  --batch N        events per sink write (default 500)
  --dimensions N   lexical embedder dimensions (default 384)

Last stdout line:
  {"bench":"vectors","embed_texts_per_s":…,"pgvector_pglite_events_per_s":…,"qdrant_events_per_s":…,
   "qdrant_points_per_request":…,"ratio":null}
`

const host = { done() {}, deadLetter() {}, dropped() {} }

function envelopes(events: readonly MemoryEvent[]): Envelope<MemoryEvent>[] {
  return events.map((event, i) => {
    const raw = Buffer.from(JSON.stringify(event))
    const delivery = new Delivery(host, {
      origin: { topic: 'bench', partition: 0, offset: BigInt(i), leaderEpoch: 0, timestamp: 0n },
      key: Buffer.from(event.id),
      raw,
      headers: new Map()
    })
    return new Envelope(delivery, event)
  })
}

const WORDS =
  'memory agent kafka vector index fence stream batch commit offset broker partition replica query recall embed token model graph node edge topic latency throughput'.split(
    ' '
  )

function events(n: number, prefix: string): MemoryEvent[] {
  let seed = 7
  const random = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff
    return seed / 0x7fffffff
  }
  return Array.from({ length: n }, (_, i) => ({
    event_id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
    id: `${prefix}-${i}`,
    namespace: 'bench',
    type: 'semantic',
    timestamp: '2026-01-01T00:00:00Z',
    version: 1,
    payload: { text: `${Array.from({ length: 12 }, () => WORDS[Math.floor(random() * WORDS.length)]).join(' ')} #${i}` }
  }))
}

async function throughput(store: VectorStore, embedder: LexicalEmbedder, list: MemoryEvent[], batch: number) {
  const sink = memoryVectorSink({ embedder, store, owns: false })
  await sink.open()
  const started = performance.now()
  for (let i = 0; i < list.length; i += batch) await sink.write(envelopes(list.slice(i, i + batch)))
  const seconds = (performance.now() - started) / 1000
  await sink.close()
  return list.length / seconds
}

/** Answers the Qdrant operations the store uses, without validation or state: the cost is on our side only. */
async function qdrantEndpoint(dimensions: number) {
  let points = 0
  let requests = 0
  const server = createServer(async (req, res) => {
    let size = 0
    for await (const c of req) size += (c as Buffer).length
    const path = (req.url ?? '').split('?')[0]!
    let result: unknown = { operation_id: 1, status: 'completed' }
    if (path.endsWith('/exists')) result = { exists: true }
    else if (req.method === 'GET') {
      result = {
        status: 'green',
        optimizer_status: 'ok',
        segments_count: 1,
        config: {
          params: { vectors: { size: dimensions, distance: 'Cosine' } },
          hnsw_config: { m: 16, ef_construct: 100, full_scan_threshold: 10000 },
          optimizer_config: { default_segment_number: 0, flush_interval_sec: 5 }
        },
        payload_schema: { namespace: { data_type: 'keyword' }, type: { data_type: 'keyword' } }
      }
    } else if (req.method === 'POST' && path.endsWith('/points')) result = []
    else if (req.method === 'PUT' && path.endsWith('/points')) {
      requests++
      points += size
    }
    const body = JSON.stringify({ time: 0, status: 'ok', result })
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stats: () => ({ requests, bytes: points }),
    close: () => {
      server.closeAllConnections()
      return new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

export async function run(args: string[]): Promise<BenchResult> {
  const { values } = parseArgs({
    args,
    options: {
      events: { type: 'string', default: '3000' },
      batch: { type: 'string', default: '500' },
      dimensions: { type: 'string', default: '384' }
    }
  })
  const n = Number(values.events)
  const batch = Number(values.batch)
  const dimensions = Number(values.dimensions)
  if (![n, batch, dimensions].every((x) => Number.isInteger(x) && x > 0)) throw new Error(usage)
  const embedder = new LexicalEmbedder({ dimensions })

  const texts = events(20_000, 'e').map((e) => (e.payload as { text: string }).text)
  const started = performance.now()
  await embedder.embed(texts)
  const embedPerSecond = texts.length / ((performance.now() - started) / 1000)
  progress('vectors', `lexical embedder: ${round(embedPerSecond)} texts/s`)

  const pg = new PgvectorStore(await pgliteDatabase(), { hnswM: 12, hnswEfConstruction: 40 })
  const pgPerSecond = await throughput(pg, embedder, events(n, 'pg'), batch)
  await pg.close()
  progress('vectors', `pgvector (PGlite): ${round(pgPerSecond)} events/s`)

  const endpoint = await qdrantEndpoint(dimensions)
  const qdrant = new QdrantStore({ url: endpoint.url, collection: 'bench' })
  const qdrantPerSecond = await throughput(qdrant, embedder, events(n * 4, 'q'), batch)
  const { requests } = endpoint.stats()
  await endpoint.close()
  progress('vectors', `qdrant request path: ${round(qdrantPerSecond)} events/s in ${requests} upsert requests`)

  return {
    bench: 'vectors',
    events: n,
    dimensions,
    embed_texts_per_s: round(embedPerSecond),
    pgvector_pglite_events_per_s: round(pgPerSecond),
    qdrant_events_per_s: round(qdrantPerSecond),
    qdrant_points_per_request: round((n * 4) / Math.max(1, requests), 1),
    // No baseline to compare with in one process: the figures stand alone.
    ratio: null
  }
}
