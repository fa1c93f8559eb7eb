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
  PgvectorStore,
  type PgvectorStoreOptions,
  vectorLiteral
} from './store.ts'
