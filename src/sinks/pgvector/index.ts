export { vectorArrayBinary, vectorBinary } from './binary.ts'
export {
  type PgDatabaseOptions,
  pgDatabase,
  pgliteDatabase,
  type QueryFn,
  type SqlDatabase,
  sharedPgliteDatabase
} from './database.ts'
export {
  DEFAULT_VECTOR_TABLE,
  defaultPgvectorStoreOptions,
  embeddedPgvectorStoreOptions,
  type PgvectorIndex,
  PgvectorIndexes,
  PgvectorStore,
  type PgvectorStoreOptions,
  pgvectorDescription
} from './store.ts'
export { ThreadedPgvectorStore, type ThreadedPgvectorStoreOptions } from './threaded.ts'
