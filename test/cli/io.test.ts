import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { test } from 'node:test'

const root = new URL('../../', import.meta.url)

/**
 * Runs a command line tool whose stdout reader is gone before it writes (as with `… | head -1` once head has
 * exited): its first write fails with EPIPE.
 */
function runWithClosedStdout(script: string, args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    child.stdout.destroy()
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk
    })
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stderr }))
  })
}

for (const [script, args] of [
  ['scripts/stack.ts', ['--help']],
  ['src/cli/schemas.ts', ['--help']],
  ['src/cli/topics.ts', ['--help']],
  ['src/cli/produce.ts', ['--help']],
  ['src/cli/recall.ts', ['--help']]
] as const) {
  test(`${script} ${args.join(' ')} ends quietly when its stdout is closed`, async () => {
    const { code, stderr } = await runWithClosedStdout(script, [...args])
    assert.doesNotMatch(stderr, /EPIPE|Unhandled 'error' event/)
    assert.equal(code, 0)
  })
}
