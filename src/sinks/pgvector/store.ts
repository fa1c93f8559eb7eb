import { ErrorCodes, FatalError, SfmError } from '../../errors.ts'
import {
  boolArrayBinary,
  float8ArrayBinary,
  int8ArrayBinary,
  textArrayBinary,
  timestamptzArrayBinary
} from '../../postgres/binary-array.ts'
import { toSinkError } from '../../postgres/errors.ts'
import { derivedName, displayName, parseTableName, quoteIdent, quoteQualified } from '../../postgres/identifiers.ts'
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
import { vectorArrayBinary, vectorBinary } from './binary.ts'
import type { SqlDatabase } from './database.ts'

export const DEFAULT_VECTOR_TABLE = 'memory_vectors'

/**
 * How searches find the nearest vectors:
 * - `hnsw`: an HNSW index (approximate; fast searches at any size, but every insert pays for the graph);
 * - `exact`: no ANN index, each search compares the query with every live vector (exact; inserts cost only the row).
 */
export const PgvectorIndexes = { HNSW: 'hnsw', EXACT: 'exact' } as const
export type PgvectorIndex = (typeof PgvectorIndexes)[keyof typeof PgvectorIndexes]

export interface PgvectorStoreOptions {
  /** `name` or `schema.name`, taken literally. Default `memory_vectors`. */
  table: string
  /**
   * `hnsw` (default) or `exact`. Open makes the table match: `hnsw` builds the index if it is missing (over the rows
   * already there), `exact` drops it if present (an index is derived data; switching back rebuilds it).
   */
  index: PgvectorIndex
  /** HNSW build parameters (pgvector's defaults). */
  hnswM: number
  hnswEfConstruction: number
  /** Candidates an HNSW search keeps; raised to 2·k for larger k. */
  efSearch: number
}

export const defaultPgvectorStoreOptions = {
  table: DEFAULT_VECTOR_TABLE,
  index: PgvectorIndexes.HNSW,
  hnswM: 16,
  hnswEfConstruction: 64,
  efSearch: 100
} as const satisfies PgvectorStoreOptions

/**
 * The embedded store (pgvector in PGlite) searches exactly by default: there every statement runs in WebAssembly on
 * the runner's own thread, and maintaining HNSW there would cap the whole memory topology far below its speed
 * without vectors, while an exact search stays affordable for tens of thousands of live vectors (figures:
 * docs/BENCHMARKS.md, `embedded`). With
 * SFM_VECTOR_INDEX=hnsw it keeps an HNSW index with build parameters lighter than pgvector's defaults (16/64): the
 * lexical embedder's self-recall stays ≥ 99% on 5,000 memories (test/sinks/pgvector).
 */
export const embeddedPgvectorStoreOptions = {
  index: PgvectorIndexes.EXACT,
  hnswM: 12,
  hnswEfConstruction: 40
} as const satisfies Partial<PgvectorStoreOptions>

interface FenceRow {
  id: string
  version: string
  micros: string
}

interface PointRow extends FenceRow {
  model_revision: string | null
  deleted: boolean
}

interface HitRow {
  id: string
  namespace: string
  type: string | null
  version: string
  importance: number | null
  model_revision: string | null
  excerpt: string | null
  score: number
}

/** `<database>, table <name>, <how it searches>`: what the runner prints at start. */
export function pgvectorDescription(database: string, options: Partial<PgvectorStoreOptions> = {}): string {
  const o: PgvectorStoreOptions = { ...defaultPgvectorStoreOptions, ...options }
  const search =
    o.index === PgvectorIndexes.HNSW
      ? `HNSW index (m ${o.hnswM}, ef_construction ${o.hnswEfConstruction})`
      : 'exact search (no ANN index)'
  return `${database}, table ${displayName(parseTableName(o.table, 'pgvector table'))}, ${search}`
}

/** PostgreSQL text refuses NUL; an excerpt is for display only, so NULs are dropped rather than poisoning a memory. */
function cleanText(text: string): string {
  return text.includes('\u0000') ? text.replaceAll('\u0000', '') : text
}

/**
 * The vector index in PostgreSQL with pgvector: a `memory_vectors` table, one row per memory id, an HNSW index
 * (cosine distance) on the embedding. Works the same on PGlite and on a server PostgreSQL with the extension.
 *
 * Fence: one INSERT … ON CONFLICT DO UPDATE … WHERE (version, event_ts) < (new pair) per batch, as the memories
 * table does, so a stale or repeated event never overwrites a newer vector. A delete keeps the row as a tombstone
 * (embedding NULL, `deleted_at` set): HNSW skips NULL vectors, searches skip tombstones, and a late older upsert
 * cannot resurrect the memory.
 */
export class PgvectorStore implements VectorStore {
  readonly kind = 'pgvector'
  readonly #db: SqlDatabase
  readonly #options: PgvectorStoreOptions
  readonly #table: string
  readonly #names: { embeddingIndex: string; qualifiedEmbeddingIndex: string; namespaceIndex: string }
  #dimensions: number | undefined
  /** The `vector` type's OID in this database (binary vector[] parameters name it: binary.ts). */
  #vectorOid = 0
  #iterativeScan = false

  constructor(db: SqlDatabase, options: Partial<PgvectorStoreOptions> = {}) {
    const o: PgvectorStoreOptions = { ...defaultPgvectorStoreOptions, ...options }
    for (const key of ['hnswM', 'hnswEfConstruction', 'efSearch'] as const) {
      if (!Number.isInteger(o[key]) || o[key] < 2 || o[key] > 1000) {
        throw new FatalError(`pgvector store: ${key} must be an integer in 2..1000, got ${o[key]}`)
      }
    }
    if (!Object.values(PgvectorIndexes).includes(o.index)) {
      throw new FatalError(
        `pgvector store: index must be ${Object.values(PgvectorIndexes).join(' or ')}, got ${JSON.stringify(o.index)}`,
        { code: ErrorCodes.CONFIG }
      )
    }
    const name = parseTableName(o.table, 'pgvector table')
    this.#db = db
    this.#options = o
    this.#table = quoteQualified(name)
    const embeddingIndex = derivedName(name.name, 'embedding_idx')
    this.#names = {
      embeddingIndex: quoteIdent(embeddingIndex),
      qualifiedEmbeddingIndex: quoteQualified({ schema: name.schema, name: embeddingIndex }),
      namespaceIndex: quoteIdent(derivedName(name.name, 'namespace_idx'))
    }
    this.description = pgvectorDescription(db.description, o)
  }

  readonly description: string

  /** How searches find the nearest vectors (PgvectorIndexes). */
  get index(): PgvectorIndex {
    return this.#options.index
  }

  get database(): SqlDatabase {
    return this.#db
  }

  async open(dimensions: number): Promise<void> {
    if (!Number.isInteger(dimensions) || dimensions < 1 || dimensions > 16_000) {
      throw new FatalError(`pgvector store: dimensions must be an integer in 1..16000, got ${dimensions}`)
    }
    const { hnswM, hnswEfConstruction } = this.#options
    try {
      await this.#db.exec('CREATE EXTENSION IF NOT EXISTS vector')
    } catch (error) {
      const wrapped = toSinkError(error, 'pgvector store: CREATE EXTENSION vector')
      if (wrapped.kind === 'retriable') throw wrapped
      throw new FatalError(
        `pgvector store: the pgvector extension is not available in ${this.#db.description} (install it, e.g. the postgresql-<major>-pgvector package, or use the embedded PGlite store): ${wrapped.message}`,
        { cause: error }
      )
    }
    const ddl = `
CREATE TABLE IF NOT EXISTS ${this.#table} (
  id text PRIMARY KEY,
  namespace text NOT NULL,
  type text,
  importance double precision,
  version bigint NOT NULL CHECK (version >= 0),
  event_ts timestamptz NOT NULL,
  model_revision text,
  embedding vector(${dimensions}),
  excerpt text,
  deleted_at timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now()
);
${
  this.#options.index === PgvectorIndexes.HNSW
    ? `CREATE INDEX IF NOT EXISTS ${this.#names.embeddingIndex} ON ${this.#table}
  USING hnsw (embedding vector_cosine_ops) WITH (m = ${hnswM}, ef_construction = ${hnswEfConstruction});`
    : `DROP INDEX IF EXISTS ${this.#names.qualifiedEmbeddingIndex};`
}
CREATE INDEX IF NOT EXISTS ${this.#names.namespaceIndex} ON ${this.#table} (namespace) WHERE deleted_at IS NULL;`
    await this.#run('create table', () => this.#db.exec(ddl))
    const [column] = await this.#run('check table', () =>
      this.#db.query<{ dims: number; oid: number }>(
        `SELECT atttypmod AS dims, atttypid::int4 AS oid FROM pg_attribute
           WHERE attrelid = $1::regclass AND attname = 'embedding'`,
        [this.#table]
      )
    )
    if (!column) throw new FatalError(`pgvector store: ${this.description} has no embedding column`)
    if (column.dims !== dimensions) {
      throw new FatalError(
        `pgvector store: ${this.description} holds vectors of ${column.dims} dimensions, the embedder makes ${dimensions}: use another table (SFM_VECTOR_TABLE) or drop it and reindex`,
        { code: ErrorCodes.CONFIG }
      )
    }
    const [ext] = await this.#run('check extension', () =>
      this.#db.query<{ v: string }>(`SELECT extversion AS v FROM pg_extension WHERE extname = 'vector'`)
    )
    const [major = 0, minor = 0] = (ext?.v ?? '0.0').split('.').map(Number)
    // Iterative index scans (pgvector 0.8) keep filtered searches from returning fewer than k rows.
    this.#iterativeScan = major > 0 || minor >= 8
    this.#vectorOid = column.oid
    this.#dimensions = dimensions
  }

  async fences(ids: readonly string[]): Promise<Map<string, FencePair>> {
    const out = new Map<string, FencePair>()
    if (ids.length === 0) return out
    const rows = await this.#run('read fences', () =>
      this.#db.query<FenceRow>(
        `SELECT id, version::text AS version, ((extract(epoch FROM event_ts) * 1000000)::int8)::text AS micros
           FROM ${this.#table} WHERE id = ANY($1::text[])`,
        [textArrayBinary(ids)]
      )
    )
    for (const row of rows) out.set(row.id, { version: Number(row.version), micros: BigInt(row.micros) })
    return out
  }

  async points(ids: readonly string[]): Promise<Map<string, StoredPoint>> {
    const out = new Map<string, StoredPoint>()
    if (ids.length === 0) return out
    const rows = await this.#run('read points', () =>
      this.#db.query<PointRow>(
        `SELECT id, version::text AS version, ((extract(epoch FROM event_ts) * 1000000)::int8)::text AS micros,
             model_revision, deleted_at IS NOT NULL AS deleted
           FROM ${this.#table} WHERE id = ANY($1::text[])`,
        [textArrayBinary(ids)]
      )
    )
    for (const row of rows) {
      out.set(row.id, {
        version: Number(row.version),
        micros: BigInt(row.micros),
        modelRevision: row.model_revision,
        deleted: row.deleted
      })
    }
    return out
  }

  /** `<=` rather than the write fence's `<`: re-embedding the stored version is the point; newer rows are never touched. */
  async reembed(records: readonly VectorRecord[]): Promise<VectorWriteReport> {
    return this.#update(
      'reembed',
      records,
      'm.deleted_at IS NULL AND (m.version, m.event_ts) <= (i.version, i.event_ts)'
    )
  }

  /** Only a tombstone at exactly the record's pair: the one `evict` left (a real delete is never at a state's pair). */
  async reinstate(records: readonly VectorRecord[]): Promise<VectorWriteReport> {
    return this.#update(
      'reinstate',
      records,
      'm.deleted_at IS NOT NULL AND (m.version, m.event_ts) = (i.version, i.event_ts)'
    )
  }

  /** The row becomes a tombstone at the pair it held (see VectorStore.evict for why that pair). */
  async evict(points: readonly VectorEvict[]): Promise<VectorWriteReport> {
    if (points.length === 0) return { upserts: 0, deletes: 0, requests: 0 }
    this.#requireOpen()
    // Live rows at exactly the pair `points` read, compared through the same micros expression.
    const rows = await this.#run('evict', () =>
      this.#db.query<{ id: string }>(
        `UPDATE ${this.#table} AS m SET
           model_revision = NULL, embedding = NULL, excerpt = NULL, deleted_at = now(), updated_at = now()
         FROM unnest($1::text[], $2::int8[], $3::int8[]) AS i(id, version, micros)
         WHERE m.id = i.id AND m.deleted_at IS NULL AND m.version = i.version
           AND ((extract(epoch FROM m.event_ts) * 1000000)::int8) = i.micros
         RETURNING m.id`,
        [points.map((p) => p.id), points.map((p) => p.version), points.map((p) => p.micros.toString())]
      )
    )
    vectorRequestChannel.publish({ store: this.kind, points: points.length } satisfies VectorRequestMessage)
    return { upserts: 0, deletes: rows.length, requests: 1 }
  }

  /**
   * An UPDATE of existing rows to the records' state and vector where `condition` holds (on `m`, the row, and `i`,
   * the record): a missing row stays missing. One statement.
   */
  async #update(what: string, records: readonly VectorRecord[], condition: string): Promise<VectorWriteReport> {
    const n = records.length
    if (n === 0) return { upserts: 0, deletes: 0, requests: 0 }
    this.#requireOpen()
    // An UPDATE, not an upsert: a missing row stays missing. The parameters are write's first nine.
    const rows = await this.#run(what, () =>
      this.#db.query<{ id: string }>(
        `UPDATE ${this.#table} AS m SET
           namespace = i.namespace, type = i.type, importance = i.importance, version = i.version,
           event_ts = i.event_ts, model_revision = i.model_revision, embedding = i.embedding,
           excerpt = i.excerpt, deleted_at = NULL, updated_at = now()
         FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::int8[], $6::timestamptz[], $7::text[],
           $8::vector[], $9::text[])
           AS i(id, namespace, type, importance, version, event_ts, model_revision, embedding, excerpt)
         WHERE m.id = i.id AND ${condition}
         RETURNING m.id`,
        this.#parameters(records, []).slice(0, 9)
      )
    )
    vectorRequestChannel.publish({ store: this.kind, points: n } satisfies VectorRequestMessage)
    return { upserts: rows.length, deletes: 0, requests: 1 }
  }

  /**
   * The columns of `upserts` then `deletes` as binary array parameters, in write's order: id, namespace, type,
   * importance, version, event_ts (from the exact microseconds), model_revision, embedding, excerpt, deleted.
   * Binary (src/postgres/binary-array.ts, binary.ts): PostgreSQL's text array parser was most of PGlite's
   * work for this statement.
   */
  #parameters(upserts: readonly VectorRecord[], deletes: readonly VectorDelete[]): Buffer[] {
    const n = upserts.length + deletes.length
    const id = new Array<string>(n)
    const namespace = new Array<string>(n)
    const type = new Array<string | null>(n)
    const importance = new Array<number | null>(n)
    const version = new Array<number>(n)
    const micros = new Array<bigint>(n)
    const revision = new Array<string | null>(n)
    const embedding = new Array<Float32Array | null>(n)
    const excerptText = new Array<string | null>(n)
    const deleted = new Array<boolean>(n)
    let k = 0
    for (const u of upserts) {
      if (u.vector.length !== this.#dimensions) {
        throw new FatalError(`pgvector store: vector of ${u.vector.length} dimensions for a ${this.#dimensions} index`)
      }
      id[k] = u.id
      namespace[k] = u.namespace
      type[k] = u.type
      importance[k] = u.importance
      version[k] = u.version
      micros[k] = u.micros
      revision[k] = u.modelRevision
      embedding[k] = u.vector
      excerptText[k] = cleanText(u.excerpt)
      deleted[k] = false
      k++
    }
    for (const d of deletes) {
      id[k] = d.id
      namespace[k] = d.namespace
      type[k] = null
      importance[k] = null
      version[k] = d.version
      micros[k] = d.micros
      revision[k] = null
      embedding[k] = null
      excerptText[k] = null
      deleted[k] = true
      k++
    }
    return [
      textArrayBinary(id),
      textArrayBinary(namespace),
      textArrayBinary(type),
      float8ArrayBinary(importance),
      int8ArrayBinary(version),
      timestamptzArrayBinary(micros),
      textArrayBinary(revision),
      vectorArrayBinary(embedding, this.#vectorOid),
      textArrayBinary(excerptText),
      boolArrayBinary(deleted)
    ]
  }

  async write(upserts: readonly VectorRecord[], deletes: readonly VectorDelete[]): Promise<VectorWriteReport> {
    const n = upserts.length + deletes.length
    if (n === 0) return { upserts: 0, deletes: 0, requests: 0 }
    this.#requireOpen()
    const rows = await this.#run('write', () =>
      this.#db.query<{ deleted: boolean }>(
        `INSERT INTO ${this.#table} AS m
           (id, namespace, type, importance, version, event_ts, model_revision, embedding, excerpt, deleted_at, updated_at)
         SELECT i.id, i.namespace, i.type, i.importance, i.version, i.event_ts, i.model_revision, i.embedding,
           i.excerpt, CASE WHEN i.deleted THEN i.event_ts END, now()
         FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::int8[], $6::timestamptz[], $7::text[],
           $8::vector[], $9::text[], $10::bool[])
           AS i(id, namespace, type, importance, version, event_ts, model_revision, embedding, excerpt, deleted)
         ON CONFLICT (id) DO UPDATE SET
           namespace = EXCLUDED.namespace, type = EXCLUDED.type, importance = EXCLUDED.importance,
           version = EXCLUDED.version, event_ts = EXCLUDED.event_ts, model_revision = EXCLUDED.model_revision,
           embedding = EXCLUDED.embedding, excerpt = EXCLUDED.excerpt, deleted_at = EXCLUDED.deleted_at,
           updated_at = EXCLUDED.updated_at
         WHERE (m.version, m.event_ts) < (EXCLUDED.version, EXCLUDED.event_ts)
         RETURNING m.deleted_at IS NOT NULL AS deleted`,
        this.#parameters(upserts, deletes)
      )
    )
    vectorRequestChannel.publish({ store: this.kind, points: n } satisfies VectorRequestMessage)
    let written = 0
    for (const row of rows) if (!row.deleted) written++
    return { upserts: written, deletes: rows.length - written, requests: 1 }
  }

  async search(vector: Float32Array, options: SearchOptions): Promise<SearchHit[]> {
    this.#requireOpen()
    const k = options.k
    if (!Number.isInteger(k) || k < 1 || k > 1000) throw new FatalError(`search: k must be in 1..1000, got ${k}`)
    if (vector.length !== this.#dimensions) {
      throw new FatalError(`search: vector of ${vector.length} dimensions for a ${this.#dimensions} index`)
    }
    const params: unknown[] = [vectorBinary(vector), k]
    let where = 'deleted_at IS NULL'
    if (options.namespace !== undefined) {
      params.push(options.namespace)
      where += ` AND namespace = $${params.length}`
    }
    if (options.type !== undefined) {
      params.push(options.type)
      where += ` AND type = $${params.length}`
    }
    const efSearch = Math.min(1000, Math.max(this.#options.efSearch, 2 * k))
    const filtered = options.namespace !== undefined || options.type !== undefined
    const rows = await this.#run('search', () =>
      this.#db.transaction(async (query) => {
        await query(`SET LOCAL hnsw.ef_search = ${efSearch}`)
        if (filtered && this.#iterativeScan) await query(`SET LOCAL hnsw.iterative_scan = relaxed_order`)
        return query<HitRow>(
          `SELECT id, namespace, type, version::text AS version, importance, model_revision, excerpt,
             1 - (embedding <=> $1::vector) AS score
           FROM ${this.#table} WHERE ${where}
           ORDER BY embedding <=> $1::vector LIMIT $2`,
          params
        )
      })
    )
    // relaxed_order may return rows slightly out of order: sort the few we got.
    return rows
      .map((r) => ({
        id: r.id,
        score: Number(r.score),
        namespace: r.namespace,
        type: r.type,
        version: Number(r.version),
        importance: r.importance,
        modelRevision: r.model_revision,
        excerpt: r.excerpt
      }))
      .sort((a, b) => b.score - a.score)
  }

  async count(): Promise<number> {
    const [row] = await this.#run('count', () =>
      this.#db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${this.#table} WHERE deleted_at IS NULL`)
    )
    return row?.n ?? 0
  }

  async close(): Promise<void> {
    await this.#db.close()
  }

  #requireOpen(): void {
    if (this.#dimensions === undefined) throw new FatalError('pgvector store: open() it first')
  }

  async #run<T>(what: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work()
    } catch (error) {
      if (error instanceof SfmError) throw error
      throw toSinkError(error, `pgvector store: ${what}`)
    }
  }
}
