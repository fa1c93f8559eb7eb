/**
 * Servers that do not answer, as a user meets them (issue 14, item 3): one line per server with its address, the
 * variable it came from and what to do; exit 2 at start; no stack trace, no AggregateError, no password.
 */
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { test } from 'node:test'
import { spawnNode, tempDataDir } from '../helpers/embedded-log.ts'

/** A loopback port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

function envWith(root: string, extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, SFM_DATA_DIR: join(root, 'data'), SFM_STACK_DIR: join(root, 'none') }
  for (const name of ['KAFKA_BROKERS', 'DATABASE_URL', 'QDRANT_URL', 'VECTOR_DATABASE_URL', 'SFM_TOPIC_PREFIX']) {
    delete env[name]
  }
  return { ...env, ...extra }
}

function assertNoDump(output: string): void {
  assert.doesNotMatch(output, /\n\s+at |AggregateError|MultipleErrors|failed \d+ times/)
  assert.doesNotMatch(output, /hunter2/)
}

test('npm start: unreachable Kafka and PostgreSQL give one line each and exit 2 at once', async (t) => {
  const root = tempDataDir(t, 'sfm-unreachable-')
  const [kafka, pg] = [await closedPort(), await closedPort()]
  const env = envWith(root, {
    KAFKA_BROKERS: `127.0.0.1:${kafka}`,
    DATABASE_URL: `postgres://sfm:hunter2@127.0.0.1:${pg}/sfm`
  })
  const run = spawnNode(['src/cli/start.ts', 'topologies/memory.ts', '--until-idle'], env)
  const { code } = await run.exited
  const stderr = run.stderr()
  assert.equal(code, 2, stderr)
  const errors = stderr.split('\n').filter((line) => line.startsWith('error: '))
  assert.deepEqual(
    errors.map((line) => line.replace(/ at \S+ \(/, ' at <address> (')),
    [
      'error: cannot reach Kafka at <address> (KAFKA_BROKERS): connection refused; start it, or fix KAFKA_BROKERS (unset it for the embedded stack)',
      'error: cannot reach PostgreSQL at <address> (DATABASE_URL): connection refused; start it, or fix DATABASE_URL (unset it for the embedded stack)'
    ],
    stderr
  )
  assert.match(errors[0]!, new RegExp(`at 127\\.0\\.0\\.1:${kafka} `))
  assert.match(errors[1]!, new RegExp(`127\\.0\\.0\\.1:${pg}/sfm`))
  assertNoDump(stderr)
})

test('npm run produce and topics: unreachable brokers give one line and exit 2', async (t) => {
  const root = tempDataDir(t, 'sfm-unreachable-cli-')
  const port = await closedPort()
  const env = envWith(root, { KAFKA_BROKERS: `127.0.0.1:${port},127.0.0.1:${await closedPort()}` })
  const file = join(root, 'lines.jsonl')
  await writeFile(file, '{"n":1}\n')
  const produce = spawnNode(['src/cli/produce.ts', '--topic', 'memory.events', '--file', file], env)
  const topics = spawnNode(['src/cli/topics.ts', 'apply'], env)
  for (const [name, run] of [
    ['produce', produce],
    ['topics', topics]
  ] as const) {
    const { code } = await run.exited
    const stderr = run.stderr()
    assert.equal(code, 2, stderr)
    assert.match(
      stderr,
      new RegExp(
        `^${name}: cannot reach Kafka at 127\\.0\\.0\\.1:${port},127\\.0\\.0\\.1:\\d+ \\(KAFKA_BROKERS\\): connection refused; start it, or fix KAFKA_BROKERS`,
        'm'
      )
    )
    assert.equal(stderr.trim().split('\n').length, 2, stderr) // what is used, then the one error line
    assertNoDump(stderr)
  }
})
