import { isUtf8 } from 'node:buffer'
import { existsSync, mkdirSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite'
import { ErrorCodes, FatalError } from '../errors.ts'
import { toLogError } from './errors.ts'
import { type SyncMode, syncMode } from './options.ts'
import { partitionForKey } from './partitioner.ts'
import { migrate } from './schema.ts'
import { type EmbeddedTopicConfig, knownTopicConfig } from './topics.ts'

/** One record to append. No partition: by key hash (Kafka's partitioner), round-robin without a key. */
export interface AppendRecord {
  readonly topic: string
  readonly partition?: number | undefined
  readonly key?: Buffer | undefined
  /** `null`: a tombstone. */
  readonly value: Buffer | null
  readonly headers?: ReadonlyMap<string, Buffer> | undefined
  /** Milliseconds since the epoch; default now. */
  readonly timestamp?: number | undefined
}

export interface AppendedRecord {
  readonly topic: string
  readonly partition: number
  readonly offset: bigint
}

export interface StoredRecord {
  readonly topic: string
  readonly partition: number
  readonly offset: bigint
  readonly key: Buffer | undefined
  /** `null`: a tombstone. */
  readonly value: Buffer | null
  readonly headers: ReadonlyMap<string, Buffer>
  readonly timestamp: bigint
  /** Set when the stored headers were not in the documented form; the readable ones are in `headers`. */
  readonly headerError?: string
  /** Key + value bytes. */
  readonly size: number
}

export interface PartitionState {
  readonly partition: number
  /** The next offset to be assigned (Kafka's high watermark / log end offset). */
  readonly end: bigint
  /** Key + value bytes currently stored. */
  readonly bytes: number
}

export interface EmbeddedLogOptions {
  /** The SQLite file. */
  path: string
  /** `PRAGMA synchronous` (default `SFM_LOG_SYNC` or FULL; see `syncMode`). */
  sync?: SyncMode
  /** How long a statement waits for another process's write lock before failing retriably, ms. */
  busyTimeoutMs?: number
  /** Environment for topic specs (`SFM_EVENTS_PARTITIONS`, `SFM_TOPIC_PREFIX`). */
  env?: NodeJS.ProcessEnv
}

export const defaultEmbeddedLogOptions = {
  busyTimeoutMs: 10_000
} satisfies Partial<EmbeddedLogOptions>

/** Headers larger than this are not parsed (they come from other programs too). */
const MAX_HEADERS_CHARS = 1024 * 1024

type Row = Record<string, unknown>

const READ_RECORDS = `SELECT offset, key, value, headers, timestamp FROM records
  WHERE topic = ? AND partition = ? AND offset >= ? ORDER BY offset LIMIT ?`

/** Columns of one row in `insertRecords`. */
const INSERT_COLUMNS = 7

/**
 * Multi-row INSERTs of records with their offsets (the schema's triggers check and advance them), largest first:
 * an append takes the largest that fits the rest, so at most four statements per handle are ever prepared.
 */
const INSERT_RECORDS: ReadonlyArray<readonly [rows: number, sql: string]> = [64, 16, 4, 1].map((rows) => [
  rows,
  `INSERT INTO records (topic, partition, offset, key, value, headers, timestamp) VALUES ${new Array<string>(rows)
    .fill('(?, ?, ?, ?, ?, ?, ?)')
    .join(', ')}`
])

const NO_HEADERS: { headers: ReadonlyMap<string, Buffer>; error?: string } = { headers: new Map() }

const toBuffer = (v: unknown): Buffer | undefined => {
  if (v === null || v === undefined) return undefined
  if (typeof v === 'string') return Buffer.from(v, 'utf8')
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength)
  return Buffer.from(String(v), 'utf8')
}

/**
 * Headers are stored as one JSON object, `{"name": "UTF-8 text"}`; a value that is not valid UTF-8 is stored as
 * `{"name": {"base64": "…"}}`. Readable from Python or `sqlite3` without a decoder for the common case.
 */
export function encodeHeaders(headers: ReadonlyMap<string, Buffer> | undefined): string | null {
  if (!headers || headers.size === 0) return null
  // Null prototype: on a plain object a header named `__proto__` would set the prototype (or be ignored) instead
  // of becoming a key, and vanish from the stored JSON.
  const out: Record<string, string | { base64: string }> = Object.create(null)
  for (const [k, v] of headers) out[k] = isUtf8(v) ? v.toString('utf8') : { base64: v.toString('base64') }
  return JSON.stringify(out)
}

export function decodeHeaders(text: unknown): { headers: Map<string, Buffer>; error?: string } {
  const headers = new Map<string, Buffer>()
  if (text === null || text === undefined) return { headers }
  if (typeof text !== 'string') return { headers, error: 'headers is not TEXT' }
  if (text.length > MAX_HEADERS_CHARS) return { headers, error: `headers over ${MAX_HEADERS_CHARS} characters` }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    return { headers, error: 'headers is not JSON' }
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return { headers, error: 'headers is not a JSON object' }
  }
  let error: string | undefined
  for (const [k, v] of Object.entries(parsed)) {
    if (typeof v === 'string') headers.set(k, Buffer.from(v, 'utf8'))
    else if (typeof v === 'object' && v !== null && typeof (v as { base64?: unknown }).base64 === 'string') {
      headers.set(k, Buffer.from((v as { base64: string }).base64, 'base64'))
    } else error ??= `header "${k}" is neither a string nor {"base64": "…"}`
  }
  return error === undefined ? { headers } : { headers, error }
}

/**
 * A durable, multi-process log of topics and partitions in one SQLite file (WAL mode): the stand-in for Kafka when
 * no brokers are configured. Table layout and the rules for other writers: src/log/schema.ts and
 * docs/EMBEDDED-LOG.md.
 *
 * Every call is synchronous (node:sqlite) and short; a transaction never spans an `await`, so handles in one
 * process never wait on each other. Processes do: SQLite allows one writer at a time and the others wait up to
 * `busyTimeoutMs` (readers never wait, WAL). One handle per file per process is shared (`openEmbeddedLog`).
 */
export class EmbeddedLog {
  readonly path: string
  readonly #db: DatabaseSync
  readonly #env: NodeJS.ProcessEnv
  readonly #listeners = new Set<(topics: ReadonlySet<string>) => void>()
  readonly #roundRobin = new Map<string, number>()
  readonly #statements = new Map<string, StatementSync>()
  #refs = 1
  #closed = false

  constructor(options: EmbeddedLogOptions) {
    const path = resolve(options.path)
    this.path = path
    this.#env = options.env ?? process.env
    const sync = syncMode(options.sync, this.#env)
    const busy = options.busyTimeoutMs ?? defaultEmbeddedLogOptions.busyTimeoutMs
    if (!Number.isInteger(busy) || busy < 0) {
      throw new FatalError(`embedded log: busyTimeoutMs must be an integer ≥ 0, got ${busy}`, {
        code: ErrorCodes.CONFIG
      })
    }
    try {
      mkdirSync(dirname(path), { recursive: true })
      this.#db = new DatabaseSync(path)
    } catch (error) {
      throw toLogError(error, 'cannot open', path)
    }
    try {
      this.#db.exec(`PRAGMA busy_timeout = ${busy}`)
      // Only takes effect on a new, empty file, and only before the switch to WAL: lets `retain` give freed pages
      // back to the file system (PRAGMA incremental_vacuum) instead of leaving the file at its largest size.
      this.#db.exec('PRAGMA auto_vacuum = INCREMENTAL')
      const mode = (this.#db.prepare('PRAGMA journal_mode = WAL').get() as { journal_mode: string }).journal_mode
      if (mode.toLowerCase() !== 'wal') {
        throw new FatalError(
          `embedded log ${path}: SQLite cannot use WAL mode here (got "${mode}"); put SFM_DATA_DIR on a local disk`,
          { code: ErrorCodes.CONFIG }
        )
      }
      this.#db.exec(`PRAGMA synchronous = ${sync}`)
      // After a checkpoint, cut the WAL back to 64 MiB instead of keeping it at its largest.
      this.#db.exec('PRAGMA journal_size_limit = 67108864')
      migrate(this.#db, path)
    } catch (error) {
      this.#db.close()
      throw toLogError(error, 'cannot open', path)
    }
  }

  /** The connection, for the group and retention functions of this module. Not for callers outside src/log. */
  get db(): DatabaseSync {
    if (this.#closed) throw new FatalError(`embedded log ${this.path} is closed`, { code: ErrorCodes.INTERNAL })
    return this.#db
  }

  /** A cached prepared statement. */
  statement(sql: string): StatementSync {
    let statement = this.#statements.get(sql)
    if (!statement) {
      statement = this.db.prepare(sql)
      this.#statements.set(sql, statement)
    }
    return statement
  }

  /** Runs `fn` in `BEGIN IMMEDIATE … COMMIT` (rolled back if it throws); SQLite errors become SfmErrors. */
  transaction<T>(what: string, fn: () => T): T {
    const db = this.db
    try {
      db.exec('BEGIN IMMEDIATE')
    } catch (error) {
      throw toLogError(error, what, this.path)
    }
    try {
      const result = fn()
      db.exec('COMMIT')
      return result
    } catch (error) {
      if (db.isTransaction) db.exec('ROLLBACK')
      throw toLogError(error, what, this.path)
    }
  }

  /** Runs a read outside a transaction, turning SQLite errors into SfmErrors. */
  query<T>(what: string, fn: () => T): T {
    try {
      return fn()
    } catch (error) {
      throw toLogError(error, what, this.path)
    }
  }

  // --- topics ----------------------------------------------------------------------------------------------------

  topic(name: string): EmbeddedTopicConfig | undefined {
    const row = this.query('reading topics', () => this.statement('SELECT * FROM topics WHERE name = ?').get(name)) as
      | Row
      | undefined
    if (!row) return undefined
    return {
      name: String(row.name),
      partitions: Number(row.partitions),
      cleanupPolicy: row.cleanup_policy as EmbeddedTopicConfig['cleanupPolicy'],
      retentionMs: row.retention_ms === null ? null : Number(row.retention_ms),
      retentionBytes: row.retention_bytes === null ? null : Number(row.retention_bytes),
      deleteRetentionMs: Number(row.delete_retention_ms)
    }
  }

  topics(): EmbeddedTopicConfig[] {
    const names = this.query('reading topics', () =>
      this.statement('SELECT name FROM topics ORDER BY name').all()
    ) as Row[]
    return names.map((r) => this.topic(String(r.name))).filter((t) => t !== undefined)
  }

  /** Creates a topic, or grows its partitions (never shrinks them, as Kafka). Returns the stored config. */
  createTopic(config: Pick<EmbeddedTopicConfig, 'name' | 'partitions'> & Partial<EmbeddedTopicConfig>) {
    if (!config.name || config.name.length > 249) {
      throw new FatalError(`embedded log: invalid topic name "${config.name}"`, { code: ErrorCodes.CONFIG })
    }
    if (!Number.isInteger(config.partitions) || config.partitions < 1 || config.partitions > 10_000) {
      throw new FatalError(`embedded log: topic ${config.name}: partitions must be 1…10000, got ${config.partitions}`, {
        code: ErrorCodes.CONFIG
      })
    }
    this.transaction(`creating topic ${config.name}`, () => this.#createTopic(config))
    return this.topic(config.name)!
  }

  #createTopic(config: Pick<EmbeddedTopicConfig, 'name' | 'partitions'> & Partial<EmbeddedTopicConfig>): number {
    const existing = this.statement('SELECT partitions FROM topics WHERE name = ?').get(config.name) as Row | undefined
    if (existing) {
      const current = Number(existing.partitions)
      if (config.partitions > current) {
        this.statement('UPDATE topics SET partitions = ? WHERE name = ?').run(config.partitions, config.name)
        return config.partitions
      }
      return current
    }
    this.statement(
      `INSERT INTO topics (name, partitions, cleanup_policy, retention_ms, retention_bytes, delete_retention_ms)
       VALUES (?, ?, ?, ?, ?, ?)`
    ).run(
      config.name,
      config.partitions,
      config.cleanupPolicy ?? 'delete',
      config.retentionMs ?? null,
      config.retentionBytes ?? null,
      config.deleteRetentionMs ?? 86_400_000
    )
    return config.partitions
  }

  /**
   * The partition count of each topic, creating the framework's topics (src/kafka/topics.ts) on first use. Any
   * other missing topic is a configuration error, as an unknown topic is on a cluster.
   */
  ensureTopics(names: Iterable<string>): Map<string, number> {
    const out = new Map<string, number>()
    const missing: string[] = []
    for (const name of new Set(names)) {
      const t = this.topic(name)
      if (t) out.set(name, t.partitions)
      else missing.push(name)
    }
    if (missing.length === 0) return out
    this.transaction('creating topics', () => {
      for (const name of missing) out.set(name, this.#partitionsOrCreate(name))
    })
    return out
  }

  #partitionsOrCreate(name: string): number {
    const row = this.statement('SELECT partitions FROM topics WHERE name = ?').get(name) as Row | undefined
    if (row) return Number(row.partitions)
    const known = knownTopicConfig(name, this.#env)
    if (!known) throw unknownTopic(name, this.path)
    return this.#createTopic(known)
  }

  partitions(topic: string): PartitionState[] {
    const rows = this.query('reading partitions', () =>
      this.statement('SELECT partition, next_offset, bytes FROM partitions WHERE topic = ? ORDER BY partition').all(
        topic
      )
    ) as Row[]
    return rows.map((r) => ({
      partition: Number(r.partition),
      end: BigInt(r.next_offset as number),
      bytes: Number(r.bytes)
    }))
  }

  /** The first offset still stored (Kafka's log start offset); the end offset when the partition is empty. */
  startOffset(topic: string, partition: number): bigint {
    return this.query('reading offsets', () => {
      const first = this.statement(
        'SELECT offset FROM records WHERE topic = ? AND partition = ? ORDER BY offset LIMIT 1'
      ).get(topic, partition) as Row | undefined
      if (first) return BigInt(first.offset as number)
      const end = this.statement('SELECT next_offset FROM partitions WHERE topic = ? AND partition = ?').get(
        topic,
        partition
      ) as Row | undefined
      return BigInt((end?.next_offset as number | undefined) ?? 0)
    })
  }

  // --- records ---------------------------------------------------------------------------------------------------

  /**
   * Appends records in one transaction: all or none become visible, each partition's offsets dense and in the
   * order given. Topics the framework knows are created on first use; others must exist.
   *
   * Inside `BEGIN IMMEDIATE` this handle is the only writer of the file, so each touched partition's `next_offset`
   * is read once and the offsets are counted here; the rows then go in multi-row INSERTs (up to 64 rows a
   * statement). The schema's triggers still check every row's offset against `next_offset` and advance it, so a
   * wrong count could only fail the append, never store a gap or a duplicate. This is cheaper per record than one
   * `INSERT … SELECT next_offset … RETURNING` per row (docs/BENCHMARKS.md, `embedded`).
   */
  append(records: readonly AppendRecord[]): AppendedRecord[] {
    if (records.length === 0) return []
    const topics = new Set(records.map((r) => r.topic))
    const nextOffset = this.statement('SELECT next_offset FROM partitions WHERE topic = ? AND partition = ?')
    const out = this.transaction('appending', () => {
      const partitionsOf = new Map<string, number>()
      for (const topic of topics) partitionsOf.set(topic, this.#partitionsOrCreate(topic))
      const appended = new Array<AppendedRecord>(records.length)
      // Next offset per partition, by topic then partition number (no string key per record).
      const offsets = new Map<string, number[]>()
      const now = Date.now()
      const row = new Array<unknown>(records.length * INSERT_COLUMNS)
      for (let i = 0; i < records.length; i++) {
        const r = records[i]!
        const partitions = partitionsOf.get(r.topic)!
        const partition = r.partition ?? this.#choosePartition(r.topic, r.key, partitions)
        if (!Number.isInteger(partition) || partition < 0 || partition >= partitions) {
          throw new FatalError(`embedded log: topic ${r.topic} has ${partitions} partition(s), not ${partition}`, {
            code: ErrorCodes.CONFIG
          })
        }
        let next = offsets.get(r.topic)
        if (next === undefined) {
          next = []
          offsets.set(r.topic, next)
        }
        let offset = next[partition]
        if (offset === undefined) {
          const stored = nextOffset.get(r.topic, partition) as Row | undefined
          if (stored === undefined) {
            throw new FatalError(`embedded log ${this.path}: topic ${r.topic} has no partition row ${partition}`, {
              code: ErrorCodes.INTERNAL
            })
          }
          offset = Number(stored.next_offset)
        }
        next[partition] = offset + 1
        const at = i * INSERT_COLUMNS
        row[at] = r.topic
        row[at + 1] = partition
        row[at + 2] = offset
        row[at + 3] = r.key ?? null
        row[at + 4] = r.value
        row[at + 5] = encodeHeaders(r.headers)
        row[at + 6] = r.timestamp ?? now
        appended[i] = { topic: r.topic, partition, offset: BigInt(offset) }
      }
      for (let from = 0; from < records.length; ) {
        const [rows, sql] = INSERT_RECORDS.find(([n]) => n <= records.length - from)!
        this.statement(sql).run(
          ...(row.slice(from * INSERT_COLUMNS, (from + rows) * INSERT_COLUMNS) as SQLInputValue[])
        )
        from += rows
      }
      return appended
    })
    for (const listener of this.#listeners) listener(topics)
    return out
  }

  #choosePartition(topic: string, key: Buffer | undefined, partitions: number): number {
    if (key !== undefined) return partitionForKey(key, partitions)
    const next = this.#roundRobin.get(topic) ?? 0
    this.#roundRobin.set(topic, next + 1)
    return next % partitions
  }

  /**
   * Records of one partition from offset `from` on, in offset order: at most `maxRecords`, and stopping once
   * `maxBytes` is reached (but always at least one record, as a Kafka fetch does).
   */
  read(topic: string, partition: number, from: bigint, maxRecords: number, maxBytes: number): StoredRecord[] {
    const out: StoredRecord[] = []
    let bytes = 0
    this.query('reading records', () => {
      let statement = this.#statements.get(READ_RECORDS)
      if (!statement) {
        statement = this.db.prepare(READ_RECORDS)
        // Rows as arrays: no property map per row, cheaper on the read path (docs/BENCHMARKS.md, figures table).
        statement.setReturnArrays(true)
        this.#statements.set(READ_RECORDS, statement)
      }
      for (const row of statement.iterate(topic, partition, from, maxRecords) as Iterable<unknown[]>) {
        const key = toBuffer(row[1])
        const value = toBuffer(row[2]) ?? null
        const size = (key === undefined ? 0 : key.length) + (value === null ? 0 : value.length)
        const decoded = row[3] === null ? NO_HEADERS : decodeHeaders(row[3])
        const record: StoredRecord = {
          topic,
          partition,
          offset: BigInt(row[0] as number),
          key,
          value,
          // One shared empty map for the (common) records without headers: readers never change them.
          headers: decoded.headers,
          timestamp: BigInt(row[4] as number),
          size
        }
        out.push(decoded.error === undefined ? record : { ...record, headerError: decoded.error })
        bytes += size
        if (bytes >= maxBytes) break
      }
    })
    return out
  }

  // --- in-process notification ---------------------------------------------------------------------------------

  /** Called after every append through this handle (other processes are seen by polling). Returns an unsubscribe. */
  onAppend(listener: (topics: ReadonlySet<string>) => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  // --- lifetime --------------------------------------------------------------------------------------------------

  /** Another user of this handle in the same process. */
  retain(): this {
    this.#refs++
    return this
  }

  get closed(): boolean {
    return this.#closed
  }

  /** Releases this user's reference; the connection closes with the last one. */
  close(): void {
    if (this.#closed) return
    if (--this.#refs > 0) return
    this.#closed = true
    shared.delete(this.path)
    this.#statements.clear()
    this.#listeners.clear()
    this.#db.close()
  }
}

function unknownTopic(name: string, path: string): FatalError {
  return new FatalError(
    `topic ${name} does not exist in the embedded log at ${path} (KAFKA_BROKERS is not set, so the embedded log ` +
      'stands in for Kafka): only the topics of src/kafka/topics.ts are created on first use',
    { code: ErrorCodes.CONFIG }
  )
}

const shared = new Map<string, EmbeddedLog>()

/**
 * The process's handle on the log at `path`, opened on first use (creating the file) and shared afterwards. Call
 * `close()` once per `openEmbeddedLog`.
 */
export function openEmbeddedLog(options: EmbeddedLogOptions): EmbeddedLog {
  const path = resolve(options.path)
  const existing = shared.get(path)
  if (existing && !existing.closed) return existing.retain()
  const log = new EmbeddedLog({ ...options, path })
  shared.set(path, log)
  return log
}

/** Whether a log file exists at `path` (so a caller can refuse to create one for a mistyped topic). */
export function embeddedLogExists(path: string): boolean {
  return existsSync(resolve(path))
}
