import { QdrantClient, type Schemas } from '@qdrant/js-client-rest'
import PQueue from 'p-queue'
import { ErrorCodes, FatalError, SfmError } from '../../errors.ts'
import { redact } from '../../logger.ts'
import type { FencePair } from '../../streams/fence.ts'
import { type VectorRequestMessage, vectorRequestChannel } from '../../telemetry/channels.ts'
import type {
  SearchHit,
  SearchOptions,
  StoredPoint,
  VectorDelete,
  VectorEvict,
  VectorRecord,
  VectorStore,
  VectorWriteReport
} from '../vector/types.ts'
import { statusOf, toQdrantError } from './errors.ts'
import { pointId } from './point-id.ts'

export interface QdrantStoreOptions {
  /** `http://host:6333`. */
  url: string
  /** Sent as the `api-key` header; never logged. */
  apiKey?: string
  /** Default `memories`. */
  collection: string
  /** Points per upsert or delete request. */
  pointsPerRequest: number
  /** Requests of one batch in flight at once. */
  maxParallelRequests: number
  /** Limit per request, ms. */
  timeoutMs: number
  /** A client to use instead of creating one (tests). */
  client?: QdrantClient
}

export const defaultQdrantStoreOptions = {
  collection: 'memories',
  pointsPerRequest: 128,
  maxParallelRequests: 4,
  timeoutMs: 30_000
} as const satisfies Partial<QdrantStoreOptions>

export type QdrantStoreInput = Partial<QdrantStoreOptions> & Pick<QdrantStoreOptions, 'url'>

/** Payload fields with a keyword index: the filters of recall. */
export const INDEXED_PAYLOAD_FIELDS = ['namespace', 'type'] as const

/** What a point's payload holds. `ts_micros` is the event timestamp in microseconds: the fence's second half. */
export interface MemoryPointPayload {
  id: string
  namespace: string
  type: string | null
  version: number
  importance: number | null
  model_revision: string
  timestamp: string
  ts_micros: number
  excerpt: string
  [key: string]: unknown
}

type Condition = Schemas['Condition']
type Filter = Schemas['Filter']

/**
 * Points whose stored `(version, ts_micros)` is less than `pair`: version < v, or version = v and ts < t. Points
 * written before the fields existed have neither and do not match; see `fenceFilter`.
 */
function olderThan(pair: FencePair): Filter {
  return {
    should: [
      { key: 'version', range: { lt: pair.version } },
      {
        must: [
          { key: 'version', match: { value: pair.version } },
          { key: 'ts_micros', range: { lt: Number(pair.micros) } }
        ]
      }
    ]
  }
}

/** Points whose stored `(version, ts_micros)` is at most `pair`: the re-embedding fence (`reembed`). */
function notNewerThan(pair: FencePair): Filter {
  return {
    should: [
      { key: 'version', range: { lt: pair.version } },
      {
        must: [
          { key: 'version', match: { value: pair.version } },
          { key: 'ts_micros', range: { lte: Number(pair.micros) } }
        ]
      }
    ]
  }
}

/**
 * The fence as one Qdrant filter: for each point of the request, "this id, and stored pair older than mine". Used
 * as `update_filter` of an upsert (Qdrant ≥ 1.16: existing points are overwritten only if they match; new points
 * are inserted) and as the selector of a delete, so stale writes never overwrite a newer point, server-side and in
 * the same request.
 */
export function fenceFilter(items: readonly { id: string; version: number; micros: bigint }[]): Filter {
  return {
    should: items.map((item): Condition => ({ must: [{ has_id: [pointId(item.id)] }, olderThan(item)] }))
  }
}

/** `fenceFilter` for re-embedding: "this id, and stored pair not newer than mine" (equal pairs match). */
export function reembedFilter(items: readonly { id: string; version: number; micros: bigint }[]): Filter {
  return {
    should: items.map((item): Condition => ({ must: [{ has_id: [pointId(item.id)] }, notNewerThan(item)] }))
  }
}

/** "This id, and stored pair exactly mine", per item: the selector of the reindex fill's `evict`. */
export function exactFilter(items: readonly VectorEvict[]): Filter {
  return {
    should: items.map(
      (item): Condition => ({
        must: [
          { has_id: [pointId(item.id)] },
          { key: 'version', match: { value: item.version } },
          { key: 'ts_micros', match: { value: Number(item.micros) } }
        ]
      })
    )
  }
}

/**
 * The vector index in Qdrant, via @qdrant/js-client-rest: a collection (Cosine, size from the embedder) with
 * keyword payload indexes on `namespace` and `type`; point id = UUIDv5 of the memory id (point-id.ts); payload id,
 * namespace, type, version, importance, model_revision, timestamp, ts_micros and an excerpt.
 *
 * Writes are batched (`pointsPerRequest`, 128 by default) and sent with bounded parallelism (p-queue) and
 * `wait=true`, so a batch is acked only once Qdrant has applied it. The fence runs server-side (`fenceFilter`).
 * Deletes remove the point (fenced too). Limit: a removed point keeps no tombstone, so an upsert older than an
 * already applied delete re-inserts the memory. Kafka keeps one memory's events in order (they share the key),
 * so this takes a producer that writes an id's history out of order across batches; pgvector keeps tombstones and
 * has no such gap.
 */
export class QdrantStore implements VectorStore {
  readonly kind = 'qdrant'
  readonly description: string
  readonly client: QdrantClient
  readonly #options: QdrantStoreOptions
  #dimensions: number | undefined
  /** A request answered 404: the collection was deleted under us; ensure it again before the next write. */
  #lost = false

  constructor(input: QdrantStoreInput) {
    const o: QdrantStoreOptions = { ...defaultQdrantStoreOptions, ...input }
    let url: URL
    try {
      url = new URL(o.url)
    } catch {
      throw new FatalError(`qdrant store: url is not a URL: ${redact(String(o.url))}`)
    }
    if (!/^[A-Za-z0-9_.-]{1,255}$/.test(o.collection)) {
      throw new FatalError(
        `qdrant store: collection must match [A-Za-z0-9_.-]{1,255}, got ${JSON.stringify(o.collection)}`
      )
    }
    if (!Number.isInteger(o.pointsPerRequest) || o.pointsPerRequest < 1 || o.pointsPerRequest > 1000) {
      throw new FatalError(`qdrant store: pointsPerRequest must be an integer in 1..1000, got ${o.pointsPerRequest}`)
    }
    if (!Number.isInteger(o.maxParallelRequests) || o.maxParallelRequests < 1 || o.maxParallelRequests > 64) {
      throw new FatalError(
        `qdrant store: maxParallelRequests must be an integer in 1..64, got ${o.maxParallelRequests}`
      )
    }
    this.#options = o
    this.client =
      o.client ??
      new QdrantClient({
        url: url.toString().replace(/\/$/, ''),
        ...(o.apiKey ? { apiKey: o.apiKey } : {}),
        timeout: o.timeoutMs,
        // Its check is a fire-and-forget request that warns on the console; compatibility is ours to test.
        checkCompatibility: false,
        maxConnections: o.maxParallelRequests
      })
    this.description = `qdrant at ${redact(o.url)}, collection ${o.collection}`
  }

  get collection(): string {
    return this.#options.collection
  }

  async open(dimensions: number): Promise<void> {
    const name = this.#options.collection
    const { exists } = await this.#call('collection exists', () => this.client.collectionExists(name))
    if (!exists) {
      try {
        await this.client.createCollection(name, { vectors: { size: dimensions, distance: 'Cosine' } })
      } catch (error) {
        // Another process created it in between (409): fine, it is checked below like any existing collection.
        if (statusOf(error) !== 409) throw toQdrantError(error, 'create collection')
      }
    }
    const info = await this.#call('get collection', () => this.client.getCollection(name))
    const vectors = info.config.params.vectors as { size?: number; distance?: string } | undefined
    if (vectors?.size !== dimensions || vectors.distance !== 'Cosine') {
      throw new FatalError(
        `qdrant store: collection ${name} has ${JSON.stringify(vectors)} (an unnamed vector is expected), the embedder makes ${dimensions} dimensions with Cosine: use another collection (SFM_QDRANT_COLLECTION) or reindex`,
        { code: ErrorCodes.CONFIG }
      )
    }
    for (const field of INDEXED_PAYLOAD_FIELDS) {
      if (info.payload_schema[field] !== undefined) continue
      await this.#call(`create payload index on ${field}`, () =>
        this.client.createPayloadIndex(name, { field_name: field, field_schema: 'keyword', wait: true })
      )
    }
    this.#dimensions = dimensions
    this.#lost = false
  }

  async fences(ids: readonly string[]): Promise<Map<string, FencePair>> {
    const out = new Map<string, FencePair>()
    const chunks = chunk(ids, this.#options.pointsPerRequest)
    await this.#parallel(chunks, async (part) => {
      const records = await this.#call('retrieve', () =>
        this.client.retrieve(this.#options.collection, {
          ids: part.map(pointId),
          with_payload: { include: ['id', 'version', 'ts_micros'] },
          with_vector: false
        })
      )
      for (const r of records) {
        const p = r.payload as Partial<MemoryPointPayload> | null | undefined
        if (typeof p?.id === 'string' && typeof p.version === 'number' && typeof p.ts_micros === 'number') {
          out.set(p.id, { version: p.version, micros: BigInt(p.ts_micros) })
        }
      }
    })
    return out
  }

  async points(ids: readonly string[]): Promise<Map<string, StoredPoint>> {
    const out = new Map<string, StoredPoint>()
    await this.#parallel(chunk(ids, this.#options.pointsPerRequest), async (part) => {
      const records = await this.#call('retrieve', () =>
        this.client.retrieve(this.#options.collection, {
          ids: part.map(pointId),
          with_payload: { include: ['id', 'version', 'ts_micros', 'model_revision'] },
          with_vector: false
        })
      )
      for (const r of records) {
        const p = r.payload as Partial<MemoryPointPayload> | null | undefined
        if (typeof p?.id === 'string' && typeof p.version === 'number' && typeof p.ts_micros === 'number') {
          out.set(p.id, {
            version: p.version,
            micros: BigInt(p.ts_micros),
            modelRevision: typeof p.model_revision === 'string' ? p.model_revision : null,
            deleted: false
          })
        }
      }
    })
    return out
  }

  /**
   * `update_mode: update_only` (in Qdrant's 1.19 API) keeps a point that was deleted meanwhile from coming back; the
   * `update_filter` lets only points whose stored pair is not newer than the record's be replaced.
   */
  async reembed(records: readonly VectorRecord[]): Promise<VectorWriteReport> {
    const dimensions = this.#dimensions
    if (dimensions === undefined) throw new FatalError('qdrant store: open() it first')
    if (this.#lost) await this.open(dimensions)
    const name = this.#options.collection
    const parts = chunk(records, this.#options.pointsPerRequest)
    await this.#parallel(parts, async (part) => {
      const points = part.map((r): Schemas['PointStruct'] => {
        if (r.vector.length !== dimensions) {
          throw new FatalError(`qdrant store: vector of ${r.vector.length} dimensions for a ${dimensions} collection`)
        }
        return { id: pointId(r.id), vector: Array.from(r.vector), payload: payloadOf(r) }
      })
      await this.#call('reembed', () =>
        this.client.upsert(name, { wait: true, points, update_mode: 'update_only', update_filter: reembedFilter(part) })
      )
      vectorRequestChannel.publish({ store: this.kind, points: part.length } satisfies VectorRequestMessage)
    })
    return { upserts: records.length, deletes: 0, requests: parts.length }
  }

  /** Removes the point (no tombstones here); the filter keeps a point written meanwhile. */
  async evict(points: readonly VectorEvict[]): Promise<VectorWriteReport> {
    if (this.#dimensions === undefined) throw new FatalError('qdrant store: open() it first')
    if (this.#lost) await this.open(this.#dimensions)
    const name = this.#options.collection
    const parts = chunk(points, this.#options.pointsPerRequest)
    await this.#parallel(parts, async (part) => {
      await this.#call('evict', () => this.client.delete(name, { wait: true, filter: exactFilter(part) }))
      vectorRequestChannel.publish({ store: this.kind, points: part.length } satisfies VectorRequestMessage)
    })
    return { upserts: 0, deletes: points.length, requests: parts.length }
  }

  /** `evict` left no tombstone to replace: the fenced upsert. */
  reinstate(records: readonly VectorRecord[]): Promise<VectorWriteReport> {
    return this.write(records, [])
  }

  async write(upserts: readonly VectorRecord[], deletes: readonly VectorDelete[]): Promise<VectorWriteReport> {
    const dimensions = this.#dimensions
    if (dimensions === undefined) throw new FatalError('qdrant store: open() it first')
    if (this.#lost) await this.open(dimensions)
    const name = this.#options.collection
    const size = this.#options.pointsPerRequest
    const tasks: Array<() => Promise<void>> = []
    for (const part of chunk(upserts, size)) {
      tasks.push(async () => {
        const points = part.map((u): Schemas['PointStruct'] => {
          if (u.vector.length !== dimensions) {
            throw new FatalError(`qdrant store: vector of ${u.vector.length} dimensions for a ${dimensions} collection`)
          }
          return { id: pointId(u.id), vector: Array.from(u.vector), payload: payloadOf(u) }
        })
        await this.#call('upsert', () =>
          this.client.upsert(name, { wait: true, points, update_filter: fenceFilter(part) })
        )
        vectorRequestChannel.publish({ store: this.kind, points: part.length } satisfies VectorRequestMessage)
      })
    }
    for (const part of chunk(deletes, size)) {
      tasks.push(async () => {
        await this.#call('delete', () => this.client.delete(name, { wait: true, filter: fenceFilter(part) }))
        vectorRequestChannel.publish({ store: this.kind, points: part.length } satisfies VectorRequestMessage)
      })
    }
    await this.#parallel(tasks, (task) => task())
    // Qdrant does not say which points the filter let through: report what was sent.
    return { upserts: upserts.length, deletes: deletes.length, requests: tasks.length }
  }

  async search(vector: Float32Array, options: SearchOptions): Promise<SearchHit[]> {
    const must: Condition[] = []
    if (options.namespace !== undefined) must.push({ key: 'namespace', match: { value: options.namespace } })
    if (options.type !== undefined) must.push({ key: 'type', match: { value: options.type } })
    const response = await this.#call('query', () =>
      this.client.query(this.#options.collection, {
        query: Array.from(vector),
        limit: options.k,
        with_payload: true,
        ...(must.length > 0 ? { filter: { must } } : {})
      })
    )
    return response.points.map((p) => {
      const payload = (p.payload ?? {}) as Partial<MemoryPointPayload>
      return {
        id: typeof payload.id === 'string' ? payload.id : String(p.id),
        score: p.score,
        namespace: payload.namespace ?? '',
        type: payload.type ?? null,
        version: payload.version ?? 0,
        importance: payload.importance ?? null,
        modelRevision: payload.model_revision ?? null,
        excerpt: payload.excerpt ?? null
      }
    })
  }

  async count(): Promise<number> {
    const result = await this.#call('count', () => this.client.count(this.#options.collection, { exact: true }))
    return result.count
  }

  async close(): Promise<void> {
    this.#dimensions = undefined
  }

  /** Runs `work` over `items` with at most `maxParallelRequests` at once; waits for all, then throws the first error. */
  async #parallel<T>(items: readonly T[], work: (item: T) => Promise<void>): Promise<void> {
    if (items.length === 0) return
    if (items.length === 1) return work(items[0]!)
    const queue = new PQueue({ concurrency: this.#options.maxParallelRequests })
    const results = await Promise.allSettled(items.map((item) => queue.add(() => work(item))))
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (failed) throw failed.reason
  }

  async #call<T>(what: string, request: () => Promise<T>): Promise<T> {
    try {
      return await request()
    } catch (error) {
      if (error instanceof SfmError) throw error
      if (statusOf(error) === 404) this.#lost = true
      throw toQdrantError(error, what)
    }
  }
}

function payloadOf(u: VectorRecord): MemoryPointPayload {
  return {
    id: u.id,
    namespace: u.namespace,
    type: u.type,
    version: u.version,
    importance: u.importance,
    model_revision: u.modelRevision,
    timestamp: u.timestamp,
    ts_micros: Number(u.micros),
    excerpt: u.excerpt
  }
}

function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}
