/**
 * What a command runs against, as a user meets it (issue 14, item 1): a `stack.env` left by `npm run stack -- down`
 * must never win over the embedded default, an explicit `--data-dir` means the embedded stack, and the first line a
 * CLI prints says what was picked and why.
 */
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { test } from 'node:test'
import { spawnNode, tempDataDir } from '../helpers/embedded-log.ts'
import { brokers, NO_KAFKA, uniqueName } from '../helpers/kafka.ts'

/** A loopback port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** A state dir holding the `stack.env` that `npm run stack -- up` writes (the stack itself may be gone). */
async function stackDir(root: string, kafka: string, database: string): Promise<string> {
  const dir = join(root, 'stack')
  await mkdir(dir, { recursive: true })
  const port = (s: string) => /:(\d+)(?:\/|$)/.exec(s)?.[1] ?? '1'
  const lines = [`KAFKA_BROKERS=${kafka}`, `DATABASE_URL=${database}`, `KAFKA_PORT=${port(kafka)}`]
  await writeFile(
    join(dir, 'stack.env'),
    `${[...lines, 'KAFKA_CONTROLLER_PORT=1', `PG_PORT=${port(database)}`].join('\n')}\n`
  )
  return dir
}

/** The environment of a user with no variables set, in a folder whose local stack lives in `stack`. */
function userEnv(dataDir: string, stack: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, SFM_DATA_DIR: dataDir, SFM_STACK_DIR: stack, SFM_VECTORS: 'off' }
  for (const name of ['KAFKA_BROKERS', 'DATABASE_URL', 'QDRANT_URL', 'VECTOR_DATABASE_URL', 'SFM_TOPIC_PREFIX']) {
    delete env[name]
  }
  return env
}

function firstLine(stderr: string): string {
  return stderr.split('\n')[0] ?? ''
}

test('a stack.env left by a stopped stack is not used: npm start --demo runs on the embedded stack', async (t) => {
  const root = tempDataDir(t, 'sfm-stopped-stack-')
  const stack = await stackDir(
    root,
    `127.0.0.1:${await closedPort()}`,
    `postgres://postgres@127.0.0.1:${await closedPort()}/sfm`
  )
  const dataDir = join(root, 'data')
  const run = spawnNode(
    ['src/cli/start.ts', 'topologies/memory.ts', '--demo', '30', '--status-interval', '0'],
    userEnv(dataDir, stack)
  )
  const { code } = await run.exited
  const stderr = run.stderr()
  assert.equal(code, 0, stderr)
  assert.match(
    firstLine(stderr),
    /\[start\] using the embedded log .*log\.sqlite and PGlite .*pg: the local stack is stopped \(.*stack\.env is left from an earlier run; npm run stack -- up starts it\)$/
  )
  assert.doesNotMatch(stderr, /initProducerId|AggregateError/)
  assert.match(run.stdout(), /^events in +30 fed, 30 consumed/m)
  assert.ok(existsSync(join(dataDir, 'log.sqlite')))
})

test('--data-dir means the embedded stack even while the local stack runs', {
  skip: brokers() ? false : NO_KAFKA
}, async (t) => {
  const root = tempDataDir(t, 'sfm-data-dir-')
  // A running stack: the shared test stack's addresses, recorded as `npm run stack -- up` does.
  const stack = await stackDir(root, process.env.KAFKA_BROKERS!, process.env.DATABASE_URL!)
  const env = userEnv(join(root, 'default-data'), stack)
  const file = join(root, 'lines.jsonl')
  await writeFile(file, '{"n":1}\n{"n":2}\n')
  const dataDir = join(root, 'explicit')

  const produce = spawnNode(['src/cli/produce.ts', '--topic', 'memory.dlq', '--file', file, '--data-dir', dataDir], env)
  assert.equal((await produce.exited).code, 0, produce.stderr())
  assert.equal(
    firstLine(produce.stderr()),
    `produce: using the embedded log ${join(dataDir, 'log.sqlite')}: --data-dir given, so no local stack is used`
  )
  assert.match(produce.stdout(), /"sent":2/)
  assert.ok(existsSync(join(dataDir, 'log.sqlite')))

  // Without --data-dir the running stack is used, and the first line says where the address came from.
  const plan = spawnNode(['src/cli/topics.ts', 'plan', '--prefix', uniqueName('choice')], env)
  assert.equal((await plan.exited).code, 0, plan.stderr())
  assert.equal(
    firstLine(plan.stderr()),
    `topics: using Kafka ${process.env.KAFKA_BROKERS} (KAFKA_BROKERS from ${join(stack, 'stack.env')}, the running local stack)`
  )
  assert.match(plan.stdout(), /\+ create /)
})
