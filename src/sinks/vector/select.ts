import { envInt } from '../../config.ts'
import { createLogger, type Logger } from '../../logger.ts'
import { pgDatabase, sharedPgliteDatabase } from '../pgvector/database.ts'
import { embeddedPgvectorStoreOptions, PgvectorStore } from '../pgvector/store.ts'
import { QdrantStore } from '../qdrant/store.ts'
import type { VectorStore } from './types.ts'

export const VectorStoreKinds = { QDRANT: 'qdrant', PGVECTOR: 'pgvector', PGLITE: 'pglite' } as const

/** Default data directory of the embedded stores. */
export const DEFAULT_DATA_DIR = './.sfm-data'

/**
 * The vector store the environment asks for, in this order:
 *
 * 1. `QDRANT_URL` → Qdrant (`QDRANT_API_KEY`, `SFM_QDRANT_COLLECTION` default `memories`,
 *    `SFM_QDRANT_POINTS_PER_REQUEST` default 128, `SFM_QDRANT_PARALLEL_REQUESTS` default 4).
 * 2. `VECTOR_DATABASE_URL` → pgvector in that PostgreSQL (it needs the extension), table `SFM_VECTOR_TABLE`.
 * 3. Neither → pgvector in the embedded PGlite of `SFM_DATA_DIR` (default `./.sfm-data`)/pg, shared with the KV
 *    sink and locked: one process at a time may open it (src/pglite/shared.ts).
 *
 * The choice is logged (without secrets).
 */
export async function vectorStoreFromEnv(
  env: NodeJS.ProcessEnv = process.env,
  log: Logger = createLogger('vectors')
): Promise<VectorStore> {
  const table = env.SFM_VECTOR_TABLE || undefined
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
    store = new PgvectorStore(pgDatabase({ connectionString: env.VECTOR_DATABASE_URL }), table ? { table } : {})
  } else {
    // Lighter HNSW build parameters than pgvector's defaults (see embeddedPgvectorStoreOptions).
    store = new PgvectorStore(await sharedPgliteDatabase(env.SFM_DATA_DIR || undefined), {
      ...embeddedPgvectorStoreOptions,
      ...(table ? { table } : {})
    })
  }
  log.info(`vector store: ${store.description}`)
  return store
}
