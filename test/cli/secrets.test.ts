import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, test } from 'node:test'
import pg from 'pg'
import { embeddedEnv, spawnNode, tempDataDir } from '../helpers/embedded-log.ts'

const DATABASE_URL = process.env.DATABASE_URL
const skip = DATABASE_URL
  ? false
  : 'DATABASE_URL is not set: run `npm test` (it starts the stack) or `npm run stack -- up`'

/**
 * Every place pg accepts a password in a connection string, built from the real DATABASE_URL so that each one
 * connects. Under `trust` (no password in DATABASE_URL) a stand-in is placed there: the server ignores it.
 */
function passwordPositions(url: URL): { secret: string; urls: Record<string, string> } {
  const secret = url.password ? decodeURIComponent(url.password) : `not-the-password-${randomBytes(4).toString('hex')}`
  const user = decodeURIComponent(url.username) || 'postgres'
  const { hostname: host, port, pathname } = url
  const db = pathname.slice(1)
  const s = encodeURIComponent(secret)
  return {
    secret,
    urls: {
      'user:pass@': `postgres://${user}:${s}@${host}:${port}/${db}`,
      '?password=': `postgres://${user}@${host}:${port}/${db}?password=${s}`,
      '?user=&password=': `postgresql://${host}:${port}/${db}?user=${user}&password=${s}&sslmode=disable`,
      'user:pass@ with ?host=&port=': `postgres://${user}:${s}@/${db}?host=${host}&port=${port}`
    }
  }
}

describe('no password in the logs', { skip }, () => {
  test('memory topology start-up (KV and pgvector in PostgreSQL), password in each position pg accepts', {
    timeout: 180_000
  }, async (t) => {
    const url = new URL(DATABASE_URL!)
    const { secret, urls } = passwordPositions(url)
    const table = `sec_${randomBytes(5).toString('hex')}`
    const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 1 })
    t.after(async () => {
      for (const name of [table, `${table}_events_processed`, `schema_migrations_${table}`, `${table}_vectors`]) {
        await pool.query(`DROP TABLE IF EXISTS "${name}" CASCADE`).catch(() => {})
      }
      await pool.end()
    })
    const address = `${url.hostname}:${url.port}/${url.pathname.slice(1)}`
    for (const [position, connectionString] of Object.entries(urls)) {
      const dir = tempDataDir(t, 'sfm-secrets-')
      const env = embeddedEnv(dir, {
        DATABASE_URL: connectionString,
        VECTOR_DATABASE_URL: connectionString,
        SFM_MEMORY_TABLE: table,
        SFM_VECTOR_TABLE: `${table}_vectors`,
        SFM_VECTOR_INDEX: 'exact',
        LOG_LEVEL: 'debug'
      })
      const run = spawnNode(['src/cli/start.ts', 'topologies/memory.ts', '--until-idle=1', '--demo', '20'], env)
      const { code } = await run.exited
      const output = run.stdout() + run.stderr()
      assert.ok(!output.includes(secret), `${position}: the password is in the output:\n${output}`)
      assert.ok(!output.includes(encodeURIComponent(secret)), `${position}: the encoded password is in the output`)
      assert.equal(code, 0, `${position}: ${output}`)
      assert.match(output, /rows|applied|done 2\d/, `${position}: the run did work:\n${output}`)
      assert.ok(output.includes(address), `${position}: the address ${address} is shown:\n${output}`)
    }
  })

  test('schemas CLI and an unreachable registry: the error names host, port and path only', async () => {
    const secret = `reg-${randomBytes(4).toString('hex')}`
    const run = spawnNode(
      ['src/cli/schemas.ts', 'check', '--registry', '--url', `http://127.0.0.1:9/apis/ccompat/v7?token=${secret}`],
      { ...process.env, LOG_LEVEL: 'debug' }
    )
    const { code } = await run.exited
    const output = run.stdout() + run.stderr()
    assert.notEqual(code, 0)
    assert.ok(!output.includes(secret), output)
    assert.match(output, /127\.0\.0\.1:9\/apis\/ccompat\/v7/)
  })
})
