/**
 * The two integration examples of docs/PRODUCERS.md (clients/python/examples) run as written against the real
 * PostgreSQL (a schema of the test's own) and broker.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import pg from 'pg'
import { REPO_ROOT } from '../../scripts/stack/config.ts'
import { brokers, createTopics, NO_KAFKA, readTopic, uniqueName } from '../helpers/kafka.ts'

const PYTHON = join(REPO_ROOT, '.venv', 'bin', 'python')
const EXAMPLES = join(REPO_ROOT, 'clients', 'python', 'examples')
const databaseUrl = process.env.DATABASE_URL
const skip =
  (brokers() && databaseUrl ? false : `${NO_KAFKA}; DATABASE_URL too`) ||
  (existsSync(PYTHON) ? false : 'no .venv with sfm_events: run `npm run python-setup`')

describe('Python integration examples', { skip }, () => {
  test('outbox_write.py writes kv_store and the outbox row together; dual_write.py writes kv_store then publishes', {
    timeout: 120_000
  }, async (t) => {
    const schema = uniqueName('examples').replace(/[^a-z0-9_]/gi, '_')
    const prefix = `${uniqueName('ex')}.`
    await createTopics(t, [`${prefix}memory.events`], 1)
    const db = new pg.Client({ connectionString: databaseUrl })
    await db.connect()
    await db.query(`CREATE SCHEMA "${schema}"`)
    t.after(async () => {
      await db.query(`DROP SCHEMA "${schema}" CASCADE`)
      await db.end()
    })
    const url = new URL(databaseUrl!)
    url.searchParams.set('options', `-csearch_path=${schema}`)
    const env = {
      ...process.env,
      DATABASE_URL: url.toString(),
      KAFKA_BROKERS: brokers()!.join(','),
      SFM_TOPIC_PREFIX: prefix
    }
    const run = (script: string, ...args: string[]) => {
      const result = spawnSync(PYTHON, [join(EXAMPLES, script), ...args], { env, encoding: 'utf8' })
      assert.equal(result.status, 0, result.stderr)
      return result.stdout.trim()
    }

    assert.equal(run('outbox_write.py', 'ns', '1,2', 'via the outbox'), 'ns:(1.0, 2.0)')
    const outbox = await db.query<{ key: string; event: { id: string; payload: { text: string } } }>(
      `SELECT key, event FROM "${schema}".sfm_outbox`
    )
    assert.equal(outbox.rows.length, 1)
    assert.equal(outbox.rows[0]!.key, 'ns:(1.0, 2.0)')
    assert.equal(outbox.rows[0]!.event.payload.text, 'via the outbox')

    assert.equal(run('dual_write.py', 'ns', '0.5', 'dual-written'), 'ns:(0.5,)')
    const kv = await db.query<{ key: string }>(`SELECT key FROM "${schema}".kv_store ORDER BY key`)
    assert.deepEqual(
      kv.rows.map((r) => r.key),
      ['ns:(0.5,):data', 'ns:(1.0, 2.0):data']
    )
    const [message] = await readTopic(`${prefix}memory.events`, 1)
    assert.equal(message?.key, 'ns:(0.5,)')
    assert.equal((JSON.parse(message!.value!) as { payload: { text: string } }).payload.text, 'dual-written')
  })
})
