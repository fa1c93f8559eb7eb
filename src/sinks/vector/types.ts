import type { PoisonError } from '../../errors.ts'
import type { FencedEvent, FencePair } from '../../streams/fence.ts'

/** The latest upsert of a memory, embedded: one point of the vector index. */
export interface VectorRecord extends FencePair {
  readonly id: string
  readonly namespace: string
  readonly type: string | null
  readonly importance: number | null
  /** Canonical UTC timestamp text (`YYYY-MM-DDTHH:MM:SS.ffffffZ`). */
  readonly timestamp: string
  readonly modelRevision: string
  readonly vector: Float32Array
  /** Start of the embedded text, for recall output. */
  readonly excerpt: string
}

/** The delete of a memory: its point leaves the index. */
export interface VectorDelete extends FencePair {
  readonly id: string
  readonly namespace: string
  readonly timestamp: string
}

/** A point the reindex fill removes (topologies/reindex.ts): its id and the exact pair the store was seen holding. */
export interface VectorEvict extends FencePair {
  readonly id: string
}

/** What the index holds for one memory id: the fence pair, the revision its vector was made by, and whether deleted. */
export interface StoredPoint extends FencePair {
  readonly modelRevision: string | null
  /** A tombstone (pgvector keeps them; Qdrant removes the point, so its deleted memories are simply absent). */
  readonly deleted: boolean
}

export interface SearchOptions {
  /** Number of hits. */
  readonly k: number
  readonly namespace?: string
  readonly type?: string
}

export interface SearchHit {
  readonly id: string
  /** Cosine similarity, 1 = same direction. */
  readonly score: number
  readonly namespace: string
  readonly type: string | null
  readonly version: number
  readonly importance: number | null
  readonly modelRevision: string | null
  readonly excerpt: string | null
}

export interface VectorWriteReport {
  /** Points written (upserts that passed the fence as far as the store can tell) and deletes applied. */
  readonly upserts: number
  readonly deletes: number
  /** Requests or statements it took. */
  readonly requests: number
}

/**
 * A vector index the vector sink writes to: pgvector (PGlite or a server PostgreSQL) or Qdrant. Implementations
 * apply the fence rule — a write changes a memory only if its `(version, timestamp)` is greater than what the
 * store holds — as far as the store allows (see each store's notes), throw RetriableError while the store is
 * unavailable and FatalError for configuration problems.
 */
export interface VectorStore {
  readonly kind: string
  /** Where it writes, without secrets; printed at start. */
  readonly description: string
  /** Creates the table or collection for vectors of `dimensions` if needed; checks an existing one matches. */
  open(dimensions: number, signal?: AbortSignal): Promise<void>
  /** The stored fence pairs of these ids (deleted ones included where the store keeps tombstones). */
  fences(ids: readonly string[], signal?: AbortSignal): Promise<Map<string, FencePair>>
  /** What the index holds for these ids (tombstones included where the store keeps them); absent ids are left out. */
  points(ids: readonly string[], signal?: AbortSignal): Promise<Map<string, StoredPoint>>
  /** Upserts and deletes, one entry per id at most (the sink reduces the batch first). Resolves once durable. */
  write(
    upserts: readonly VectorRecord[],
    deletes: readonly VectorDelete[],
    signal?: AbortSignal
  ): Promise<VectorWriteReport>
  /**
   * Re-embedding (topologies/reindex.ts): replaces the vector of each record's point only if the point exists, is
   * not deleted and its stored `(version, timestamp)` is not newer than the record's — equal included, which is
   * how a re-embedding of the same version gets in. Never inserts, never undoes a delete: which memories the index
   * holds stays the vector branch's decision. One entry per id at most. `upserts` in the report: points replaced
   * (Qdrant: points sent, it does not say which the filter let through).
   */
  reembed(records: readonly VectorRecord[], signal?: AbortSignal): Promise<VectorWriteReport>
  /**
   * The reindex fill's delete (its pass met a tombstone in memory.latest): each id's point goes only if it is live
   * and its stored `(version, timestamp)` is exactly the given pair, so a point written or deleted meanwhile stays.
   * pgvector leaves a tombstone at that same pair — a later run meeting the memory's older state (still in the
   * topic's uncompacted head, before the tombstone) finds it fenced and does not insert it again; Qdrant removes
   * the point. `deletes` in the report: points removed (Qdrant: points sent, it does not say which matched).
   */
  evict(points: readonly VectorEvict[], signal?: AbortSignal): Promise<VectorWriteReport>
  /**
   * Undoes an `evict` of the same pass: a memory deleted and created again has [old state, tombstone, new state] in
   * memory.latest until compaction, and the tombstone may have evicted the new state (written by an earlier run);
   * when the pass then reaches that state, it goes back over the tombstone `evict` left at its exact pair. pgvector:
   * replaces only a tombstone at exactly the record's pair; Qdrant (no tombstones): the fenced upsert of `write`.
   * `upserts` in the report: points written.
   */
  reinstate(records: readonly VectorRecord[], signal?: AbortSignal): Promise<VectorWriteReport>
  search(vector: Float32Array, options: SearchOptions, signal?: AbortSignal): Promise<SearchHit[]>
  /** Live (not deleted) points; for tests and progress output. */
  count(): Promise<number>
  close(): Promise<void>
}

/**
 * One value checked for the vector index (`VectorLayout.prepare`): the point it becomes — its id, fence pair and the
 * fields stored beside the vector — or, with `deleted`, the point it removes; and where the vector comes from: `text`
 * to embed, or a `vector` the value carries (made by `modelRevision`). `eventId` identifies the value itself: a
 * repeat in one batch is written once, and it is the request id of a remote embedding.
 */
export interface VectorItem extends FencedEvent {
  /** Position in the batch (failures are reported by it). */
  readonly index: number
  readonly namespace: string
  readonly type: string | null
  readonly importance: number | null
  /** Canonical UTC timestamp text of the fence pair's time (`YYYY-MM-DDTHH:MM:SS.ffffffZ`). */
  readonly timestamp: string
  readonly deleted: boolean
  /** Text to embed: set for upserts without a carried vector. */
  readonly text: string | undefined
  /** A vector the value carries, of the index's dimensions: written as it is. */
  readonly vector: Float32Array | undefined
  /** The revision that made a carried vector. */
  readonly modelRevision: string | undefined
  /** Start of the text, stored for recall output. */
  readonly excerpt: string
}

/**
 * What the vector sink needs to know of the values it indexes, given by its caller (the memories' layout is
 * `memoryVectorLayout`, src/memory/vectors/prepare.ts): how one value becomes a point or a delete.
 */
export interface VectorLayout<T> {
  /**
   * Checks one value and says which point it writes or deletes, and what to embed. A PoisonError sends this item
   * alone to the DLQ. `dimensions` is the index's vector length (a carried vector must have it).
   */
  readonly prepare: (value: T, index: number, dimensions: number) => VectorItem | PoisonError
}
