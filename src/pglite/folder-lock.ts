import { readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { hostname } from 'node:os'
import { dirname } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { ErrorCodes, FatalError } from '../errors.ts'

/**
 * An exclusive lock on a PGlite data folder, held by one process at a time and released by the kernel when that
 * process ends, however it ends (kill -9 included).
 *
 * Why: PGlite is a single-user PostgreSQL with no lock of its own. Measured here: while one process upserted into a
 * folder, a second process opened it, read and closed it — and the first process's rows were gone on reopen. So a
 * folder has one owner process; everyone else waits or refuses instead of opening it.
 *
 * How: `<folder>.lock` is an SQLite database (node:sqlite, as the embedded log) in which the holder keeps a
 * `BEGIN IMMEDIATE` transaction open, i.e. SQLite's RESERVED lock: a POSIX record lock on one byte of the file, which
 * at most one connection can hold and the kernel drops with the process. Taking it is one non-blocking attempt, so
 * of many processes racing for a free folder exactly one wins (no stale-lock guessing: no pid liveness test, no
 * take-over, so a pid reused after a container restart changes nothing). The file is never deleted: a deleted lock
 * file would let one process lock the old inode and another a new one. Nothing else in the process may open it
 * (closing any descriptor of a file drops the process's record locks on it).
 *
 * `<folder>.owner.json` says who holds it (pid, host, role, since) for the messages of those who wait or refuse.
 * It is written by the holder after taking the lock and removed on release; it is information only: a holder killed
 * -9 leaves it behind, and the next holder overwrites it.
 *
 * Roles: the runner opens a folder as its `owner`; a short-lived `reader` (npm run recall) must never take an owner's
 * place. A reader that meets an owner refuses at once; one that meets another reader waits for it. An owner waits
 * for a reader to finish (up to `waitMs`) and refuses at once to share with another owner.
 */
export interface FolderLock {
  readonly path: string
  release(): void
}

export const LockRoles = { OWNER: 'owner', READER: 'reader' } as const
export type LockRole = (typeof LockRoles)[keyof typeof LockRoles]

/** What `<folder>.owner.json` says of the process holding the lock. */
export interface LockHolder {
  readonly pid: number
  readonly host: string
  readonly role: LockRole
  readonly since: string
}

export interface FolderLockOptions {
  /** What the folder is, for messages (default "PGlite data folder"). */
  what?: string
  /** Default owner. */
  role?: LockRole
  /** How long to wait for a holder that may be waited for (see the roles above); 0, the default: refuse at once. */
  waitMs?: number
  /** Called once when the lock is busy and this call starts waiting, with what is known of the holder. */
  onWait?: (holder: LockHolder | undefined) => void
}

/** SQLite primary result codes (the low byte of `errcode`). */
const SQLITE_BUSY = 5
const SQLITE_NOTADB = 26
const POLL_MS = 50

/** Locks held by this process, by lock path: a second taker in the same process is a bug, named as one. */
const held = new Set<string>()

function ownerPath(folder: string): string {
  return `${folder}.owner.json`
}

function readHolder(folder: string): LockHolder | undefined {
  try {
    const parsed = JSON.parse(readFileSync(ownerPath(folder), 'utf8')) as Partial<LockHolder>
    if (typeof parsed.pid === 'number' && typeof parsed.host === 'string') {
      return {
        pid: parsed.pid,
        host: parsed.host,
        role: parsed.role === LockRoles.READER ? LockRoles.READER : LockRoles.OWNER,
        since: typeof parsed.since === 'string' ? parsed.since : ''
      }
    }
  } catch {
    // Missing (the holder is between taking the lock and writing it) or unreadable: unknown.
  }
  return undefined
}

function sqliteCode(error: unknown): number | undefined {
  const code = (error as { errcode?: unknown } | null)?.errcode
  return typeof code === 'number' ? code & 0xff : undefined
}

/** One non-blocking attempt: the connection holding the lock, or undefined when another connection holds it. */
function attempt(path: string, what: string, folder: string): DatabaseSync | undefined {
  let db: DatabaseSync
  try {
    db = new DatabaseSync(path, { timeout: 0 })
  } catch (error) {
    throw new FatalError(`${what} ${folder}: cannot open its lock file ${path}: ${(error as Error).message}`, {
      code: ErrorCodes.CONFIG,
      cause: error
    })
  }
  try {
    db.exec('BEGIN IMMEDIATE')
    return db
  } catch (error) {
    db.close()
    const code = sqliteCode(error)
    if (code === SQLITE_BUSY) return undefined
    const hint =
      code === SQLITE_NOTADB
        ? ' (a lock file of an older version): remove it once no process uses the folder'
        : `: ${(error as Error).message}`
    throw new FatalError(`${what} ${folder}: cannot take the lock ${path}${hint}`, {
      code: ErrorCodes.CONFIG,
      cause: error
    })
  }
}

function describe(holder: LockHolder | undefined): string {
  if (holder === undefined) return 'another process'
  const who = holder.role === LockRoles.READER ? 'a reader (npm run recall)' : 'a running topology'
  return `${who}, process ${holder.pid} on ${holder.host}`
}

function busyError(folder: string, path: string, what: string, role: LockRole, holder: LockHolder | undefined) {
  const advice =
    role === LockRoles.READER && holder?.role !== LockRoles.READER
      ? 'it can be read only while no topology runs on it: stop the topology first, or use another SFM_DATA_DIR'
      : 'stop that process first, or use another SFM_DATA_DIR'
  return new FatalError(`${what} ${folder} is in use by ${describe(holder)} (lock ${path}); ${advice}`, {
    code: ErrorCodes.CONFIG,
    details: { lock: path, ...(holder === undefined ? {} : { pid: holder.pid, host: holder.host, role: holder.role }) }
  })
}

function take(folder: string, path: string, db: DatabaseSync, role: LockRole): FolderLock {
  held.add(path)
  const owner = ownerPath(folder)
  const token = `${process.pid}.${Date.now()}.${Math.random().toString(36).slice(2)}`
  const record = JSON.stringify({ pid: process.pid, host: hostname(), role, since: new Date().toISOString(), token })
  try {
    const temporary = `${owner}.${token}`
    writeFileSync(temporary, record)
    renameSync(temporary, owner)
  } catch {
    // Information only: the lock holds without it (waiters then name "another process").
  }
  let released = false
  const release = (): void => {
    if (released) return
    released = true
    process.off('exit', release)
    try {
      // Removed before the lock is released: a later holder's record is never removed by this one.
      if ((JSON.parse(readFileSync(owner, 'utf8')) as { token?: unknown }).token === token) unlinkSync(owner)
    } catch {}
    try {
      db.exec('ROLLBACK')
    } catch {}
    db.close()
    held.delete(path)
  }
  // The kernel frees the lock with the process anyway; this only tidies the owner record on a plain exit.
  process.on('exit', release)
  return { path, release }
}

/**
 * One attempt, no waiting: the lock of `folder`, or a FatalError (code SFM_CONFIG) naming the holder.
 */
export function acquireFolderLock(folder: string, what = 'PGlite data folder', role: LockRole = LockRoles.OWNER) {
  const path = `${folder}.lock`
  if (held.has(path))
    throw new FatalError(`${what} ${folder} is already open in this process`, { code: ErrorCodes.CONFIG })
  const db = attempt(path, what, folder)
  if (db === undefined) throw busyError(folder, path, what, role, readHolder(folder))
  return take(folder, path, db, role)
}

/**
 * The lock of `folder`, waiting for its holder when the roles allow it (see above) for up to `waitMs`; a FatalError
 * (code SFM_CONFIG) naming the holder when it is not to be waited for or the wait ran out. The folder's parent (the
 * data folder) is created if missing; one that cannot be is a FatalError too: waiting would not heal it.
 */
export async function lockFolder(folder: string, options: FolderLockOptions = {}): Promise<FolderLock> {
  const what = options.what ?? 'PGlite data folder'
  const role = options.role ?? LockRoles.OWNER
  const path = `${folder}.lock`
  if (held.has(path))
    throw new FatalError(`${what} ${folder} is already open in this process`, { code: ErrorCodes.CONFIG })
  try {
    await mkdir(dirname(folder), { recursive: true })
  } catch (error) {
    throw new FatalError(`${what} ${folder}: cannot create its data folder: ${(error as Error).message}`, {
      code: ErrorCodes.CONFIG,
      cause: error
    })
  }
  const deadline = Date.now() + (options.waitMs ?? 0)
  let waiting = false
  let seenOwner: number | undefined
  for (;;) {
    const db = attempt(path, what, folder)
    if (db !== undefined) return take(folder, path, db, role)
    const holder = readHolder(folder)
    // An owner is never waited for (by a reader: it never ends by itself; by an owner: two owners is a mistake). The
    // record is read twice, a poll apart, before refusing: a holder killed -9 leaves its record to the next one.
    if (holder?.role === LockRoles.OWNER) {
      if (seenOwner === holder.pid) throw busyError(folder, path, what, role, holder)
      seenOwner = holder.pid
    } else {
      seenOwner = undefined
    }
    if (Date.now() >= deadline && seenOwner === undefined) throw busyError(folder, path, what, role, holder)
    if (!waiting && seenOwner === undefined) {
      waiting = true
      options.onWait?.(holder)
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS))
  }
}
