import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'

const ROOT = new URL('../../', import.meta.url)

/** The embedded stack only, as a user without servers runs it: no stack, no vector variables, data in `dataDir`. */
function embeddedEnv(dataDir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    SFM_DATA_DIR: dataDir,
    SFM_STACK_DIR: join(dataDir, 'no-stack'),
    LOG_LEVEL: 'info'
  }
  for (const name of ['KAFKA_BROKERS', 'DATABASE_URL', 'QDRANT_URL', 'VECTOR_DATABASE_URL', 'SFM_TOPIC_PREFIX']) {
    delete env[name]
  }
  return env
}

interface Launched {
  readonly child: ChildProcess
  stdout(): string
  stderr(): string
  exited(): Promise<number | null>
}

function launch(args: string[], env: NodeJS.ProcessEnv): Launched {
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString()
  })
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString()
  })
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  return { child, stdout: () => out, stderr: () => err, exited: () => exit }
}

async function waitFor(what: string, check: () => boolean, runner: Launched, ms = 120_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    assert.equal(runner.child.exitCode, null, `the runner exited while waiting for ${what}:\n${runner.stderr()}`)
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}:\n${runner.stderr()}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** A recall's answer: a result table (or `no memories found`), or one line refusing, naming the runner. */
function assertClearAnswer(recall: Launched, code: number | null, runnerPid: number): 'answered' | 'refused' {
  if (code === 0) {
    assert.match(recall.stdout(), /^(no memories found|score +id +namespace\/type +excerpt)\n/, recall.stderr())
    return 'answered'
  }
  assert.equal(code, 2, `recall: ${recall.stderr()}`)
  const lines = recall.stderr().trimEnd().split('\n')
  assert.equal(lines.length, 1, `one line, got:\n${recall.stderr()}`)
  assert.match(
    lines[0]!,
    new RegExp(`^error \\(fatal\\): PGlite vector folder .* is in use by a running topology, process ${runnerPid} on `)
  )
  assert.match(lines[0]!, /stop the topology first/)
  return 'refused'
}

const START = ['src/cli/start.ts', 'topologies/memory.ts', '--status-interval', '0']

test('npm run recall during the runner start: the runner keeps running, each recall answers or refuses in one line', {
  timeout: 300_000
}, async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'sfm-recall-start-'))
  t.after(() => rm(dataDir, { recursive: true, force: true }))
  const env = embeddedEnv(dataDir)

  // A recall already holding the vector folder when the runner starts (a real process holding the reader lock, as a
  // slow recall would): the runner waits for it instead of failing, and starts once it is gone.
  const reader = launch(['test/fixtures/folder-lock-opener.ts', join(dataDir, 'vectors'), 'reader'], env)
  t.after(() => reader.child.kill('SIGKILL'))
  while (!reader.stdout().includes('ready')) await new Promise((resolve) => setTimeout(resolve, 50))
  reader.child.stdin!.write('go\n')
  while (!reader.stdout().includes('won')) await new Promise((resolve) => setTimeout(resolve, 50))
  const runner = launch(START, env)
  t.after(() => runner.child.kill('SIGKILL'))
  await waitFor(
    'the runner to wait for the reader',
    () => /waiting for .*vectors: in use by process \d+ \(reader\)/.test(runner.stderr()),
    runner
  )
  reader.child.stdin!.end()
  assert.equal(await reader.exited(), 0)
  await waitFor('the runner to start', () => /assigned \d+ partition/.test(runner.stderr()), runner)

  // Recalls fired while a second runner start is under way, from its first moment until it runs.
  runner.child.kill('SIGTERM')
  assert.equal(await runner.exited(), 0, runner.stderr())
  const second = launch(START, env)
  t.after(() => second.child.kill('SIGKILL'))
  const outcomes: string[] = []
  const started = () => /assigned \d+ partition/.test(second.stderr())
  for (let round = 0; !started() || round < 3; round++) {
    const recall = launch(['src/cli/recall.ts', 'what did Ada say about the cache'], env)
    const code = await recall.exited()
    outcomes.push(assertClearAnswer(recall, code, second.child.pid!))
    assert.equal(second.child.exitCode, null, `the runner stopped after a recall:\n${second.stderr()}`)
    assert.ok(round < 60, `the runner did not start:\n${second.stderr()}`)
  }
  t.diagnostic(`recalls during and after the start: ${outcomes.join(', ')}`)
  // Once the runner runs, a recall meets it and refuses.
  assert.equal(outcomes.at(-1), 'refused')
  assert.doesNotMatch(second.stderr(), /configuration error|ERROR/)
  second.child.kill('SIGTERM')
  assert.equal(await second.exited(), 0, second.stderr())
})
