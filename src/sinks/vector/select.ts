import { envInt } from '../../config.ts'
import { ErrorCodes, FatalError } from '../../errors.ts'
import { DEFAULT_DATA_DIR } from '../../log/options.ts'
import { createLogger, type Logger } from '../../logger.ts'
import type { LockRole } from '../../pglite/folder-lock.ts'
import { displayFolder } from '../../pglite/shared.ts'
import { pgDatabase } from '../pgvector/database.ts'
import {
  embeddedPgvectorStoreOptions,
  type PgvectorIndex,
  PgvectorIndexes,
  PgvectorStore,
  type PgvectorStoreOptions
} from '../pgvector/store.ts'
import { ThreadedPgvectorStore } from '../pgvector/threaded.ts'
import { QdrantStore } from '../qdrant/store.ts'
import type { VectorStore } from './types.ts'

export const VectorStoreKinds = { QDRANT: 'qdrant', PGVECTOR: 'pgvector', PGLITE: 'pglite' } as const

/** Default data directory of the embedded stores: the embedded log's (src/log/options.ts). */
export { DEFAULT_DATA_DIR }

export interface VectorStoreFromEnvOptions {
  /**
   * The embedded store only: take its folder's lock now, as `owner` (a topology: at start, before anything else is
   * opened, waiting for a reader that has it) or `reader` (npm run recall: refusing at once when a topology has it).
   * Unset: the lock is taken as owner when the store is opened.
   */
  lock?: LockRole
}

/**
 * The vector store the environment asks for, in this order:
 *
 * 1. `QDRANT_URL` → Qdrant (`QDRANT_API_KEY`, `SFM_QDRANT_COLLECTION` default `memories`,
 *    `SFM_QDRANT_POINTS_PER_REQUEST` default 128, `SFM_QDRANT_PARALLEL_REQUESTS` default 4).
 * 2. `VECTOR_DATABASE_URL` → pgvector in that PostgreSQL (it needs the extension), table `SFM_VECTOR_TABLE`, an
 *    HNSW index unless `SFM_VECTOR_INDEX=exact`.
 * 3. Neither → pgvector in an embedded PGlite of its own, `SFM_DATA_DIR` (default `./.sfm-data`)/vectors, on a
 *    worker thread of this process and locked: one process at a time may open it (src/sinks/pgvector/threaded.ts);
 *    exact search unless `SFM_VECTOR_INDEX=hnsw` (why: embeddedPgvectorStoreOptions).
 *
 * The choice is logged (without secrets).
 */
export async function vectorStoreFromEnv(
  env: NodeJS.ProcessEnv = process.env,
  log: Logger = createLogger('vectors'),
  options: VectorStoreFromEnvOptions = {}
): Promise<VectorStore> {
  const table = env.SFM_VECTOR_TABLE || undefined
  const index = pgvectorIndexFromEnv(env)
  const pgvectorOptions: Partial<PgvectorStoreOptions> = { ...(table ? { table } : {}), ...(index ? { index } : {}) }
  let store: VectorStore
  if (env.QDRANT_URL) {
    store = new QdrantStore({
      url: env.QDRANT_URL,
      ...(env.QDRANT_API_KEY ? { apiKey: env.QDRANT_API_KEY } : {}),
      ...(env.SFM_QDRANT_COLLECTION ? { collection: env.SFM_QDRANT_COLLECTION } : {}),
      pointsPerRequest: envInt('SFM_QDRANT_POINTS_PER_REQUEST', 128, env),
      maxParallelRequests: envInt('SFM_QDRANT_PARALLEL_REQUESTS', 4, env)
    })
  } else if (env.VECTOR_DATABASE_URL) {
    store = new PgvectorStore(pgDatabase({ connectionString: env.VECTOR_DATABASE_URL }), pgvectorOptions)
  } else {
    // Exact search, or lighter HNSW build parameters than pgvector's defaults (see embeddedPgvectorStoreOptions).
    const embedded = new ThreadedPgvectorStore({
      ...(env.SFM_DATA_DIR ? { dataDir: env.SFM_DATA_DIR } : {}),
      store: { ...embeddedPgvectorStoreOptions, ...pgvectorOptions },
      ...(options.lock === undefined ? {} : { role: options.lock })
    })
    if (options.lock !== undefined) {
      await embedded.lock((holder) =>
        log.info(
          `waiting for ${displayFolder(embedded.folder)}: in use by ${holder ? `process ${holder.pid} (${holder.role})` : 'another process'}`
        )
      )
    }
    store = embedded
  }
  const hint =
    (store instanceof PgvectorStore || store instanceof ThreadedPgvectorStore) && index === undefined
      ? ` (SFM_VECTOR_INDEX=${store.index === PgvectorIndexes.HNSW ? PgvectorIndexes.EXACT : PgvectorIndexes.HNSW} to change)`
      : ''
  log.info(`vector store: ${store.description}${hint}`)
  return store
}

/** `SFM_VECTOR_INDEX` (pgvector stores only): `hnsw` or `exact`; unset: the store's default. */
export function pgvectorIndexFromEnv(env: NodeJS.ProcessEnv = process.env): PgvectorIndex | undefined {
  const value = env.SFM_VECTOR_INDEX
  if (value === undefined || value === '') return undefined
  const allowed: readonly string[] = Object.values(PgvectorIndexes)
  if (!allowed.includes(value)) {
    throw new FatalError(`SFM_VECTOR_INDEX must be ${allowed.join(' or ')}, got ${JSON.stringify(value)}`, {
      code: ErrorCodes.CONFIG
    })
  }
  return value as PgvectorIndex
}
