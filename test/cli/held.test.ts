/**
 * A sink held on the same error (issue 14, item 2): `npm start` names it in the status line and exports
 * sfm_sink_held_seconds, which the SfmSinkHeld alert reads (deploy/prometheus/alerts.yml).
 */
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { embeddedEnv, spawnNode, tempDataDir } from '../helpers/embedded-log.ts'

async function waitFor(what: string, check: () => boolean, output: () => string, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    assert.ok(Date.now() < deadline, `${what} did not happen:\n${output()}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

test('a sink retrying the same error past SFM_HELD_AFTER_SECONDS is shown as held: status line and metric', {
  timeout: 90_000
}, async (t) => {
  const dataDir = tempDataDir(t, 'sfm-held-')
  const env = embeddedEnv(dataDir, { SFM_HELD_AFTER_SECONDS: '2' })
  const file = join(dataDir, 'in.jsonl')
  await writeFile(file, '{"n":1}\n{"n":2}\n')
  const produce = spawnNode(['src/cli/produce.ts', '--topic', 'memory.events', '--file', file], env)
  assert.equal((await produce.exited).code, 0, produce.stderr())

  const runner = spawnNode(
    ['src/cli/start.ts', 'test/fixtures/held-sink.topology.ts', '--status-interval', '1', '--metrics-port', '0'],
    env
  )
  t.after(() => runner.child.kill('SIGKILL'))
  // Retrying, but not yet for 2 s: the status line does not say held.
  await waitFor('a first retry', () => /retries [1-9]/.test(runner.stderr()), runner.stderr)
  const early = runner
    .stderr()
    .split('\n')
    .filter((l) => /retries [1-9]/.test(l))
  assert.ok(
    early.every((l) => !l.includes('held:')),
    early.join('\n')
  )

  const held = /retries \d+ held: stuck — ENOENT: no such file or directory, open \.sfm-data\/stuck\.lock for (\d+)s$/m
  await waitFor('a held status line', () => held.test(runner.stderr()), runner.stderr)
  assert.ok(Number(held.exec(runner.stderr())![1]) >= 2)

  const port = /metrics: http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(runner.stderr())?.[1]
  assert.ok(port, runner.stderr())
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
  const sample = /^sfm_sink_held_seconds\{[^}]*branch="stuck"[^}]*\} ([\d.]+)/m.exec(text)
  assert.ok(sample, text)
  assert.ok(Number(sample[1]) >= 2, sample[0])

  runner.child.kill('SIGTERM')
  assert.equal((await runner.exited).code, 0, runner.stderr())
})
