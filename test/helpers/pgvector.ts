import pg from 'pg'

/**
 * Why the tests of pgvector on a server PostgreSQL cannot run, or false when the server at DATABASE_URL offers the
 * extension. Debian 12 does not package pgvector: `npm run stack -- pgvector` (scripts/stack/pgvector.ts) builds it,
 * and .ci/run does that before the tests. An unreachable DATABASE_URL throws: that is a failure, not a skip.
 */
export async function serverPgvectorSkip(): Promise<string | false> {
  const url = process.env.DATABASE_URL
  if (url === undefined || url === '') return 'DATABASE_URL is not set'
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 })
  client.on('error', () => {})
  try {
    await client.connect()
    const { rows } = await client.query(`SELECT 1 FROM pg_available_extensions WHERE name = 'vector'`)
    if (rows.length > 0) return false
    return 'the PostgreSQL at DATABASE_URL has no pgvector: `npm run stack -- pgvector` builds and installs it'
  } finally {
    await client.end().catch(() => {})
  }
}
