import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { ErrorCodes, FatalError } from '../../src/errors.ts'
import { acquireFolderLock } from '../../src/pglite/folder-lock.ts'

async function folder(t: import('node:test').TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sfm-lock-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  return join(dir, 'pg')
}

test('the lock holds pid and host, refuses a second taker, and is gone after release', async (t) => {
  const dir = await folder(t)
  const lock = acquireFolderLock(dir)
  const owner = JSON.parse(await readFile(`${dir}.lock`, 'utf8')) as { pid: number; host: string }
  assert.equal(owner.pid, process.pid)
  assert.equal(owner.host, hostname())
  assert.throws(() => acquireFolderLock(dir), /already open in this process/)
  lock.release()
  assert.equal(existsSync(`${dir}.lock`), false)
  acquireFolderLock(dir).release()
})

test('a live owner is named in the refusal; a dead owner on this host is taken over', async (t) => {
  const dir = await folder(t)
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { stdio: 'ignore' })
  t.after(() => child.kill('SIGKILL'))
  await writeFile(`${dir}.lock`, JSON.stringify({ pid: child.pid, host: hostname() }))
  assert.throws(
    () => acquireFolderLock(dir),
    (error: unknown) =>
      error instanceof FatalError &&
      error.code === ErrorCodes.CONFIG &&
      error.message.includes(`in use by process ${child.pid}`)
  )
  child.kill('SIGKILL')
  await new Promise((resolve) => child.once('exit', resolve))
  const lock = acquireFolderLock(dir)
  assert.equal((JSON.parse(await readFile(`${dir}.lock`, 'utf8')) as { pid: number }).pid, process.pid)
  lock.release()
})

test('a lock from another host is never taken over; a half-written lock file is', async (t) => {
  const dir = await folder(t)
  await writeFile(`${dir}.lock`, JSON.stringify({ pid: 1, host: `not-${hostname()}` }))
  assert.throws(() => acquireFolderLock(dir), /in use by process 1 on not-/)
  await writeFile(`${dir}.lock`, '{"pid":')
  acquireFolderLock(dir).release()
})
