/**
 * The legacy SomaFractalMemory `kv_store`: opening it with checks that say what to fix, and the kinds of its rows.
 *
 * `CREATE TABLE kv_store (key TEXT PRIMARY KEY, value JSONB NOT NULL)`. A memory is the row `{ns}:{repr(coord)}:data`;
 * the other rows of the table are not memories: `…:meta`, `{ns}:wal:{uuid4}`, `{data key}:version:{time_ns}` and the
 * uuid5 hex keys of a gRPC path.
 */
import pg from 'pg'
import { describeError, ErrorCodes, FatalError } from '../../errors.ts'
import { redact } from '../../logger.ts'
import { LEGACY_DATA_SUFFIX } from './memory-id.ts'

export const LEGACY_TABLE = 'kv_store'

/** What a `kv_store` row is. Only `memory` rows are memories. */
export const LegacyRowKinds = {
  MEMORY: 'memory',
  META: 'meta',
  WAL: 'wal',
  VERSION: 'version',
  UUID5: 'uuid5',
  OTHER: 'other'
} as const
export type LegacyRowKind = (typeof LegacyRowKinds)[keyof typeof LegacyRowKinds]

const VERSION_KEY = /:data:version:\d+$/
const WAL_KEY = /:wal:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const UUID5_KEY = /^[0-9a-f]{32}$/

/** The kind of a `kv_store` key. */
export function legacyRowKind(key: string): LegacyRowKind {
  if (key.endsWith(LEGACY_DATA_SUFFIX)) return LegacyRowKinds.MEMORY
  if (key.endsWith(':meta')) return LegacyRowKinds.META
  if (VERSION_KEY.test(key)) return LegacyRowKinds.VERSION
  if (WAL_KEY.test(key)) return LegacyRowKinds.WAL
  if (UUID5_KEY.test(key)) return LegacyRowKinds.UUID5
  return LegacyRowKinds.OTHER
}

/**
 * The namespace of a memory id (`{ns}:(…)`), or undefined when the id is not `{ns}:` followed by a tuple. A float
 * tuple's repr has no `:(`, so the last `:(` ends the namespace.
 */
export function namespaceOfMemoryId(id: string): string | undefined {
  const at = id.lastIndexOf(':(')
  if (at < 1 || !id.endsWith(')')) return undefined
  return id.slice(0, at)
}

/** A usage or configuration mistake about the legacy store: one line, exit 2. */
function configError(message: string, cause?: unknown): FatalError {
  return new FatalError(message, { code: ErrorCodes.CONFIG, ...(cause === undefined ? {} : { cause }) })
}

/**
 * Connects to the legacy store and checks its table: reachable, `kv_store` there, `key` text and `value` jsonb.
 * Each failure is a FatalError (configuration) with one line that says what to fix; the password is never printed.
 */
export async function openLegacyStore(url: string): Promise<pg.Client> {
  const where = redact(url)
  let client: pg.Client
  try {
    client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 })
  } catch (error) {
    throw configError(`--legacy-url is not a PostgreSQL connection string (${where}): ${describeError(error)}`, error)
  }
  client.on('error', () => {})
  try {
    await client.connect()
  } catch (error) {
    await client.end().catch(() => {})
    throw configError(
      `cannot connect to the legacy store at ${where}: ${describeError(error)} — check --legacy-url`,
      error
    )
  }
  try {
    const { rows } = await client.query<{ column_name: string; data_type: string }>(
      `SELECT a.attname AS column_name, format_type(a.atttypid, a.atttypmod) AS data_type
       FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`,
      [LEGACY_TABLE]
    )
    if (rows.length === 0) {
      throw configError(
        `no ${LEGACY_TABLE} table at ${where} (search_path: its schema must be on it) — point --legacy-url at the SomaFractalMemory database`
      )
    }
    const types = new Map(rows.map((r) => [r.column_name, r.data_type]))
    if (types.get('key') !== 'text') {
      throw configError(
        `${LEGACY_TABLE}.key at ${where} is ${types.get('key') ?? 'missing'}, expected text — not a SomaFractalMemory kv_store`
      )
    }
    if (types.get('value') !== 'jsonb') {
      throw configError(
        `${LEGACY_TABLE}.value at ${where} is ${types.get('value') ?? 'missing'}, expected jsonb — not a SomaFractalMemory kv_store (pickled values of old versions are not read)`
      )
    }
    return client
  } catch (error) {
    await client.end().catch(() => {})
    throw error instanceof FatalError
      ? error
      : configError(`reading ${LEGACY_TABLE} at ${where}: ${describeError(error)}`)
  }
}
