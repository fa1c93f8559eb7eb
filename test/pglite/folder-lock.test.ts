import assert from 'node:assert/strict'
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { ErrorCodes, FatalError } from '../../src/errors.ts'
import { acquireFolderLock, LockRoles, lockFolder } from '../../src/pglite/folder-lock.ts'

async function folder(t: import('node:test').TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sfm-lock-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  return join(dir, 'pg')
}

interface Opener {
  readonly child: ChildProcessWithoutNullStreams
  /** Resolves with the opener's first line after `ready`: `won <pid>` or `lost <message>`. */
  readonly result: Promise<string>
  readonly ready: Promise<void>
}

/** A real process that takes one shot at the lock of `dir` when sent a line (test/fixtures/folder-lock-opener.ts). */
function opener(dir: string, role: string = LockRoles.OWNER): Opener {
  const child = spawn(process.execPath, ['test/fixtures/folder-lock-opener.ts', dir, role], { stdio: 'pipe' })
  let out = ''
  let err = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    err += chunk
  })
  let onReady!: () => void
  let onResult!: (line: string) => void
  let onFailure!: (error: Error) => void
  const ready = new Promise<void>((resolve) => {
    onReady = resolve
  })
  const result = new Promise<string>((resolve, reject) => {
    onResult = resolve
    onFailure = reject
  })
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk
    const lines = out.split('\n')
    if (lines.includes('ready')) onReady()
    const answer = lines.find((line) => line.startsWith('won ') || line.startsWith('lost '))
    if (answer !== undefined) onResult(answer)
  })
  child.once('exit', (code, signal) =>
    onFailure(new Error(`opener exited (${code ?? signal}) before answering: ${err}`))
  )
  return { child, ready, result }
}

async function stop(child: ChildProcessWithoutNullStreams): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGKILL')
  await exited
}

test('a second taker in the same process is refused; after release the folder can be taken again', async (t) => {
  const dir = await folder(t)
  const lock = acquireFolderLock(dir)
  const owner = JSON.parse(await readFile(`${dir}.owner.json`, 'utf8')) as { pid: number; host: string; role: string }
  assert.deepEqual([owner.pid, owner.host, owner.role], [process.pid, hostname(), 'owner'])
  assert.throws(() => acquireFolderLock(dir), /already open in this process/)
  await assert.rejects(lockFolder(dir, { waitMs: 1000 }), /already open in this process/)
  lock.release()
  // The owner record goes; the lock file stays (deleting it would let two processes lock two different files).
  assert.equal(existsSync(`${dir}.owner.json`), false)
  assert.equal(existsSync(`${dir}.lock`), true)
  acquireFolderLock(dir).release()
})

test('50 processes open one folder at once: exactly one wins, every round; a killed owner frees it at once', {
  timeout: 300_000
}, async (t) => {
  const dir = await folder(t)
  const rounds = Number(process.env.SFM_LOCK_ROUNDS ?? 3)
  for (let round = 0; round < rounds; round++) {
    const openers = Array.from({ length: 50 }, () => opener(dir))
    t.after(() => Promise.all(openers.map((o) => stop(o.child))))
    await Promise.all(openers.map((o) => o.ready))
    for (const o of openers) o.child.stdin.write('go\n')
    const results = await Promise.all(openers.map((o) => o.result))
    const winners = results.filter((r) => r.startsWith('won '))
    assert.equal(winners.length, 1, `round ${round}: ${winners.length} winners`)
    const winner = openers[results.indexOf(winners[0]!)]!
    for (const r of results) {
      if (r.startsWith('lost ')) assert.match(r, /^lost PGlite data folder .* is in use by /)
    }
    // Nobody else gets it while the winner lives, this process included.
    assert.throws(
      () => acquireFolderLock(dir),
      (error: unknown) =>
        error instanceof FatalError &&
        error.code === ErrorCodes.CONFIG &&
        error.message.includes(`process ${winner.child.pid}`)
    )
    // Killed -9: the kernel drops its lock with it, the next taker needs no clean-up and no guess.
    await Promise.all(openers.map((o) => stop(o.child)))
    const lock = acquireFolderLock(dir)
    lock.release()
  }
})

test('no stale-lock guess: an owner record naming this very pid (a restarted container) does not block', async (t) => {
  const dir = await folder(t)
  // What a runner that was pid 1 and got killed leaves behind, met by the new pid 1 — here, by this process.
  await writeFile(`${dir}.owner.json`, JSON.stringify({ pid: process.pid, host: hostname(), role: 'owner' }))
  const lock = await lockFolder(dir)
  lock.release()
  // And a live holder is never taken over, whatever its record says (here: that its pid is dead).
  const holder = opener(dir)
  t.after(() => stop(holder.child))
  await holder.ready
  holder.child.stdin.write('go\n')
  assert.match(await holder.result, /^won /)
  await writeFile(`${dir}.owner.json`, JSON.stringify({ pid: 999_999_999, host: hostname(), role: 'owner' }))
  assert.throws(() => acquireFolderLock(dir), /in use by a running topology, process 999999999/)
})

test('roles: a reader refuses a running owner at once; an owner waits for a reader, then takes the folder', async (t) => {
  const dir = await folder(t)
  const owner = opener(dir, LockRoles.OWNER)
  t.after(() => stop(owner.child))
  await owner.ready
  owner.child.stdin.write('go\n')
  assert.match(await owner.result, /^won /)
  const started = Date.now()
  await assert.rejects(
    lockFolder(dir, { role: LockRoles.READER, waitMs: 30_000 }),
    new RegExp(`in use by a running topology, process ${owner.child.pid} .*read only while no topology runs`)
  )
  assert.ok(Date.now() - started < 10_000, 'the reader refused without waiting out its 30 s')
  // A second owner is refused too: two runners on one folder is a mistake, not a wait.
  await assert.rejects(lockFolder(dir, { waitMs: 30_000 }), /in use by a running topology/)
  await stop(owner.child)

  const reader = opener(dir, LockRoles.READER)
  t.after(() => stop(reader.child))
  await reader.ready
  reader.child.stdin.write('go\n')
  assert.match(await reader.result, /^won /)
  let waitedFor: number | undefined
  const taking = lockFolder(dir, {
    waitMs: 30_000,
    onWait: (holder) => {
      waitedFor = holder?.pid
    }
  })
  await new Promise((resolve) => setTimeout(resolve, 300))
  assert.equal(waitedFor, reader.child.pid)
  // The reader ends (stdin closed: a clean exit); the owner, which waited, has the folder.
  reader.child.stdin.end()
  const lock = await taking
  lock.release()
})

test('a lock file that is not a lock database (an older version wrote JSON there) is refused with what to do', async (t) => {
  const dir = await folder(t)
  await writeFile(`${dir}.lock`, JSON.stringify({ pid: 1, host: hostname() }))
  assert.throws(() => acquireFolderLock(dir), /cannot take the lock .*older version.*remove it once no process uses/)
})

test('the data folder is created when missing; one that cannot be is a configuration error, not a wait', async (t) => {
  const dir = await folder(t)
  const nested = join(dir, 'not', 'yet', 'vectors')
  const lock = await lockFolder(nested)
  assert.ok(existsSync(`${nested}.lock`))
  lock.release()
  await writeFile(`${dir}.file`, '')
  await assert.rejects(
    lockFolder(join(`${dir}.file`, 'vectors'), { waitMs: 60_000 }),
    (error: unknown) =>
      error instanceof FatalError &&
      error.code === ErrorCodes.CONFIG &&
      /cannot create its data folder/.test(error.message)
  )
})
