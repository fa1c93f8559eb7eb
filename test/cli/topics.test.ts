import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { describe, test } from 'node:test'
import { Admin } from '@platformatic/kafka'
import pg from 'pg'
import { runNodeScript } from '../helpers/cli.ts'
import { brokers, NO_KAFKA } from '../helpers/kafka.ts'

const skip = brokers() ? false : NO_KAFKA

const topicsCli = (args: string[], env: NodeJS.ProcessEnv = process.env) =>
  runNodeScript('src/cli/topics.ts', args, env)

describe('npm run topics', () => {
  test('apply, apply again, shrink refused: diff lines and exit codes', { skip, timeout: 60_000 }, async (t) => {
    const prefix = `t${randomUUID().slice(0, 8)}`
    t.after(async () => {
      const admin = new Admin({ clientId: 'sfm-topics-cli-test', bootstrapBrokers: brokers()! })
      const topics = (await admin.listTopics()).filter((n) => n.startsWith(`${prefix}.`))
      if (topics.length > 0) await admin.deleteTopics({ topics }).catch(() => {})
      await admin.close()
    })
    const dry = await topicsCli(['apply', '--dry-run', '--prefix', prefix, '--partitions', '2'])
    assert.equal(dry.code, 0, dry.stderr)
    assert.equal(dry.stdout.trim().split('\n').length, 6)
    assert.match(
      dry.stdout,
      new RegExp(`^\\+ create ${prefix}\\.memory\\.latest partitions=2 .*cleanup\\.policy=compact`, 'm')
    )
    assert.match(dry.stderr, /dry run/)

    const applied = await topicsCli(['apply', '--prefix', prefix, '--partitions', '2'])
    assert.equal(applied.code, 0, applied.stderr)
    assert.match(applied.stdout, new RegExp(`^\\+ create ${prefix}\\.memory\\.events partitions=2 `, 'm'))

    const again = await topicsCli(['apply', '--prefix', prefix], { ...process.env, SFM_EVENTS_PARTITIONS: '2' })
    assert.equal(again.code, 0, again.stderr)
    assert.deepEqual(
      again.stdout.trim().split('\n'),
      ['memory.events', 'memory.latest', 'memory.audit', 'embedding.requests', 'embedding.responses', 'memory.dlq'].map(
        (n) => `= ${prefix}.${n} up to date`
      )
    )

    const shrink = await topicsCli(['apply', '--prefix', prefix, '--partitions', '1'])
    assert.equal(shrink.code, 1)
    assert.match(shrink.stdout, new RegExp(`^! ${prefix}\\.memory\\.events: cannot shrink from 2 to 1 partitions`, 'm'))
    assert.match(shrink.stderr, /refused; nothing was changed/)
  })

  test('one prefix rule: SFM_TOPIC_PREFIX=P makes apply create P.memory.events, where the memory topology runs', {
    skip,
    timeout: 120_000
  }, async (t) => {
    const prefix = `t${randomUUID().slice(0, 8)}`
    t.after(async () => {
      const admin = new Admin({ clientId: 'sfm-topics-cli-test', bootstrapBrokers: brokers()! })
      const topics = (await admin.listTopics()).filter((n) => n.startsWith(`${prefix}.`))
      if (topics.length > 0) await admin.deleteTopics({ topics }).catch(() => {})
      await admin.close()
    })
    const env = { ...process.env, SFM_TOPIC_PREFIX: prefix }
    // The flag and the variable name the same topics.
    const [byFlag, byVariable] = await Promise.all([
      topicsCli(['print', '--prefix', prefix], { ...process.env, SFM_TOPIC_PREFIX: '' }),
      topicsCli(['print'], env)
    ])
    assert.equal(byVariable.stdout, byFlag.stdout)
    const applied = await topicsCli(['apply', '--partitions', '1'], env)
    assert.equal(applied.code, 0, applied.stderr)
    assert.match(applied.stdout, new RegExp(`^\\+ create ${prefix}\\.memory\\.events partitions=1 `, 'm'))

    // The topology reads SFM_TOPIC_PREFIX with the same rule: it finds the topics (a missing one stops it, exit 1).
    const table = `memories_${prefix}`
    const start = spawn(process.execPath, ['src/cli/start.ts', 'topologies/memory.ts', '--until-idle=1'], {
      env: { ...env, SFM_VECTORS: 'off', SFM_MEMORY_TABLE: table, SFM_MEMORY_GROUP: `g-${prefix}` },
      stdio: ['ignore', 'ignore', 'pipe']
    })
    let stderr = ''
    start.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr += c
    })
    const [code] = (await once(start, 'exit')) as [number | null]
    t.after(async () => {
      const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 1 })
      await pool.query(`DROP TABLE IF EXISTS "${table}"`).catch(() => {})
      await pool.end()
    })
    assert.equal(code, 0, stderr)
    assert.match(stderr, new RegExp(`source: .*${prefix}\\.memory\\.events`))
  })

  test('usage errors exit 2; a missing KAFKA_BROKERS is named; print needs no broker', async () => {
    const env = { ...process.env }
    delete env.KAFKA_BROKERS
    // Nor may the CLI find a local dev stack to fall back to.
    env.SFM_STACK_DIR = '/nonexistent/sfm-stack'
    const [help, none, unknown, badFlag, badPrefix, noBrokers, print] = await Promise.all([
      topicsCli(['--help'], env),
      topicsCli([], env),
      topicsCli(['destroy'], env),
      topicsCli(['apply', '--partitions', 'many'], env),
      topicsCli(['apply', '--prefix', 'a/b'], env),
      topicsCli(['apply'], env),
      topicsCli(['print', '--prefix', 'p1', '--replication-factor', '3'], env)
    ])
    assert.equal(help.code, 0)
    assert.match(help.stdout, /--replication-factor/)
    for (const run of [none, unknown, badFlag, badPrefix]) {
      assert.equal(run.code, 2, run.stderr)
      assert.match(run.stderr, /--help/)
    }
    assert.match(badFlag.stderr, /--partitions: expected a positive integer, got "many"/)
    assert.equal(noBrokers.code, 1)
    assert.match(noBrokers.stderr, /KAFKA_BROKERS is not set/)
    assert.equal(print.code, 0, print.stderr)
    const specs = JSON.parse(print.stdout) as Array<{
      name: string
      replicationFactor: number
      configs: Record<string, string>
    }>
    assert.equal(specs.length, 6)
    assert.ok(specs.every((s) => s.name.startsWith('p1.') && s.replicationFactor === 3))
    assert.ok(specs.every((s) => s.configs['min.insync.replicas'] === '2'))
  })
})
