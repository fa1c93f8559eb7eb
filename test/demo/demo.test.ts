import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { demoHistory } from '../../src/demo/events.ts'
import { fold } from '../../src/memory/fold.ts'
import { acquirePglite } from '../../src/pglite/shared.ts'
import { pglitePool } from '../../src/sinks/postgres/pglite-pool.ts'
import { readMemories } from '../sinks/postgres/helpers.ts'

const ROOT = new URL('../../', import.meta.url)
const N = 300

/** The embedded stack only: no servers, no local dev stack, data in `dataDir`. */
function embeddedEnv(dataDir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, SFM_DATA_DIR: dataDir, SFM_STACK_DIR: join(dataDir, 'no-stack') }
  for (const name of ['KAFKA_BROKERS', 'DATABASE_URL', 'QDRANT_URL', 'VECTOR_DATABASE_URL', 'SFM_TOPIC_PREFIX']) {
    delete env[name]
  }
  return env
}

function launch(args: string[], env: NodeJS.ProcessEnv): ChildProcess & { output(): string } {
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let text = ''
  child.stdout!.on('data', (d: Buffer) => {
    text += d.toString()
  })
  child.stderr!.on('data', (d: Buffer) => {
    text += d.toString()
  })
  return Object.assign(child, { output: () => text })
}

async function run(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; output: string }> {
  const child = launch(args, env)
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  return { code, output: child.output() }
}

/** A number from the report line that starts with `label`. */
function figure(output: string, label: string, pattern = /(\d+)/): number {
  const line = output.split('\n').find((l) => l.startsWith(label))
  assert.ok(line, `report line "${label}" missing in:\n${output}`)
  const match = pattern.exec(line.slice(label.length))
  assert.ok(match, `no figure in "${line}"`)
  return Number(match[1])
}

async function waitForStart(runner: ReturnType<typeof launch>): Promise<void> {
  const deadline = Date.now() + 60_000
  while (!/assigned \d+ partition/.test(runner.output())) {
    assert.ok(Date.now() < deadline && runner.exitCode === null, `runner did not start:\n${runner.output()}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

async function readTable(dataDir: string) {
  const shared = await acquirePglite(dataDir)
  try {
    return await readMemories(pglitePool(shared.db), 'public.memories')
  } finally {
    await shared.release()
  }
}

test('npm start -- topologies/memory.ts --demo N on the embedded stack; a rerun applies nothing; one owner', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'sfm-demo-'))
  t.after(() => rm(dataDir, { recursive: true, force: true }))
  const env = embeddedEnv(dataDir)
  const history = demoHistory(N)
  const expected = fold(history.events)
  const live = [...expected.values()].filter((r) => r.deletedAt === null).length
  const demo = ['src/cli/start.ts', 'topologies/memory.ts', '--demo', String(N), '--status-interval', '0']

  const first = await run(demo, env)
  assert.equal(first.code, 0, first.output)
  assert.match(first.output, /KV: PGlite at .*pg \(set DATABASE_URL for a PostgreSQL server\)/)
  assert.equal(figure(first.output, 'events in'), N)
  assert.equal(figure(first.output, 'rows in memories'), expected.size)
  assert.equal(figure(first.output, 'rows in memories', /\((\d+) live/), live)
  assert.equal(figure(first.output, 'vectors indexed'), live)
  assert.equal(figure(first.output, 'dead letters'), history.invalid)
  assert.ok(figure(first.output, 'throughput') > 0)
  // The receipt-to-done figure of a burst is named for what it is, not printed as a latency.
  assert.match(first.output, /^burst wait +p50 [\d.]+ ms, p99 [\d.]+ ms from receipt to done, all \d+ queued at once/m)
  assert.doesNotMatch(first.output, /^latency /m)
  assert.match(first.output, /recall "[^"]+":\n {2}\d\.\d{3} {2}mem-\d+ /)
  assert.deepEqual(await readTable(dataDir), expected)

  // Same history again: consumed from the committed offsets on (only the new copy), nothing applied.
  const second = await run(demo, env)
  assert.equal(second.code, 0, second.output)
  assert.equal(figure(second.output, 'events in', /, (\d+) consumed/), N)
  assert.equal(figure(second.output, 'kv outcomes', /applied (\d+)/), 0)
  assert.equal(figure(second.output, 'rows in memories'), expected.size)
  assert.deepEqual(await readTable(dataDir), expected)

  // One owner: while a runner has the folder, a second runner and recall refuse, naming it.
  const runner = launch(['src/cli/start.ts', 'topologies/memory.ts', '--status-interval', '0'], env)
  t.after(() => runner.kill('SIGKILL'))
  await waitForStart(runner)
  assert.ok(existsSync(join(dataDir, 'pg.lock')))
  const owner = new RegExp(`in use by a running topology, process ${runner.pid} on `)
  const rival = await run(['src/cli/start.ts', 'topologies/memory.ts', '--status-interval', '0'], env)
  assert.equal(rival.code, 2, rival.output)
  assert.match(rival.output, owner)
  const busyRecall = await run(['src/cli/recall.ts', 'cache latency'], env)
  assert.equal(busyRecall.code, 2, busyRecall.output)
  assert.match(busyRecall.output, owner)

  runner.kill('SIGTERM')
  assert.equal(await new Promise((resolve) => runner.once('exit', resolve)), 0, runner.output())
  // The owner record goes with a clean stop; the lock file stays (src/pglite/folder-lock.ts).
  assert.equal(existsSync(join(dataDir, 'pg.owner.json')), false)
  const recall = await run(['src/cli/recall.ts', 'latency after the cache was resized'], env)
  assert.equal(recall.code, 0, recall.output)
  assert.match(recall.output, /mem-\d+/)
  assert.deepEqual(await readTable(dataDir), expected)

  // A runner killed with -9: the kernel released its locks with it; only its owner record is left, which names a
  // process that is gone and is not needed to take the folder.
  const killed = launch(['src/cli/start.ts', 'topologies/memory.ts', '--status-interval', '0'], env)
  t.after(() => killed.kill('SIGKILL'))
  await waitForStart(killed)
  killed.kill('SIGKILL')
  await new Promise((resolve) => killed.once('exit', resolve))
  assert.ok(existsSync(join(dataDir, 'pg.owner.json')))
  const after = await run(['src/cli/recall.ts', 'latency after the cache was resized'], env)
  assert.equal(after.code, 0, after.output)
  assert.deepEqual(await readTable(dataDir), expected)
})
