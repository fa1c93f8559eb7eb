import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs'
import { hostname } from 'node:os'
import { ErrorCodes, FatalError } from '../errors.ts'

/**
 * An exclusive lock on a PGlite data folder: `<folder>.lock` holding `{ pid, host }`, created with O_EXCL.
 *
 * Why: PGlite is a single-user PostgreSQL with no lock of its own. Measured here: while one process upserted into a
 * folder, a second process opened it, read and closed it — and the first process's rows were gone on reopen. So a
 * folder has one owner process; everyone else refuses with the owner's pid instead of opening it.
 *
 * A lock left by a process that died (same host, pid no longer alive) is taken over. A lock from another host is
 * never taken over (a shared network folder): remove it by hand once sure its owner is gone.
 */
export interface FolderLock {
  readonly path: string
  release(): void
}

interface Owner {
  pid: number
  host: string
}

function readOwner(path: string): Owner | undefined {
  try {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as Partial<Owner>
    if (typeof parsed.pid === 'number' && typeof parsed.host === 'string') return { pid: parsed.pid, host: parsed.host }
  } catch {
    // Unreadable or half-written (the owner died between create and write): treated as stale below.
  }
  return undefined
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: the process exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Takes the lock of `folder` or throws a FatalError (code SFM_CONFIG) naming the owner. */
export function acquireFolderLock(folder: string, what = 'PGlite data folder'): FolderLock {
  const path = `${folder}.lock`
  const host = hostname()
  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number
    try {
      fd = openSync(path, 'wx', 0o644)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      const owner = readOwner(path)
      if (owner && owner.pid === process.pid && owner.host === host) {
        throw new FatalError(`${what} ${folder} is already open in this process`, { code: ErrorCodes.CONFIG })
      }
      if (owner && (owner.host !== host || alive(owner.pid))) {
        throw new FatalError(
          `${what} ${folder} is in use by process ${owner.pid} on ${owner.host} (lock ${path}); ` +
            'stop that process first, or use another SFM_DATA_DIR',
          { code: ErrorCodes.CONFIG, details: { pid: owner.pid, host: owner.host, lock: path } }
        )
      }
      // Stale: its owner is dead. Remove and retry the exclusive create (another process may win the race).
      try {
        unlinkSync(path)
      } catch {}
      continue
    }
    writeSync(fd, JSON.stringify({ pid: process.pid, host, since: new Date().toISOString() }))
    closeSync(fd)
    let released = false
    const release = (): void => {
      if (released) return
      released = true
      process.off('exit', release)
      const owner = readOwner(path)
      if (owner?.pid === process.pid && owner.host === host) {
        try {
          unlinkSync(path)
        } catch {}
      }
    }
    // A process that exits without closing (process.exit after a fatal error) still frees its folder.
    process.on('exit', release)
    return { path, release }
  }
  throw new FatalError(`${what} ${folder}: could not take the lock ${path}`, { code: ErrorCodes.CONFIG })
}
