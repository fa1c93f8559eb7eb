import { mkdir } from 'node:fs/promises'
import { join, relative, resolve } from 'node:path'
import type { PGlite } from '@electric-sql/pglite'
import { DEFAULT_DATA_DIR } from '../log/options.ts'
import { type FolderLock, lockFolder } from './folder-lock.ts'

/**
 * One PGlite per data folder per process, shared by the KV sink (`memories`) and the vector store: PGlite is a
 * single-user database, so two instances on one folder — even in one process — would corrupt it. The folder is
 * `<data dir>/pg`, locked for the lifetime of the instance (folder-lock.ts). Reference-counted: the last `release`
 * closes the database and frees the lock.
 */
export interface SharedPglite {
  readonly db: PGlite
  /** Absolute path of the database folder. */
  readonly folder: string
  release(): Promise<void>
}

interface Entry {
  opening: Promise<{ db: PGlite; lock: FolderLock }>
  refs: number
}

const instances = new Map<string, Entry>()
/** Closes in progress: a new acquire waits for them, so it never meets its own process's lock. */
const closing = new Map<string, Promise<void>>()

/** `<dataDir>/pg`, absolute; `dataDir` defaults to SFM_DATA_DIR or ./.sfm-data. */
export function pgliteFolder(dataDir: string | undefined = process.env.SFM_DATA_DIR || undefined): string {
  return resolve(join(dataDir ?? DEFAULT_DATA_DIR, 'pg'))
}

/**
 * `<dataDir>/vectors`, absolute: the embedded vector index's own PGlite, opened by a worker thread of the process that
 * holds its lock (src/sinks/pgvector/threaded.ts), so its statements run beside the memories' PGlite, not after them.
 */
export function pgliteVectorFolder(dataDir: string | undefined = process.env.SFM_DATA_DIR || undefined): string {
  return resolve(join(dataDir ?? DEFAULT_DATA_DIR, 'vectors'))
}

/** The folder as printed at start: relative to the working directory when inside it. */
export function displayFolder(folder: string): string {
  const rel = relative(process.cwd(), folder)
  return rel.startsWith('..') || rel === '' ? folder : rel
}

async function open(folder: string): Promise<{ db: PGlite; lock: FolderLock }> {
  await mkdir(resolve(folder, '..'), { recursive: true })
  // The runner is this folder's owner: it waits for a short-lived reader, if any, and refuses another owner.
  const lock = await lockFolder(folder, { waitMs: 60_000 })
  try {
    // Loaded on demand: the WebAssembly module costs memory and start-up time that server setups never pay.
    const { PGlite } = await import('@electric-sql/pglite')
    const { vector } = await import('@electric-sql/pglite-pgvector')
    const db = await PGlite.create({ dataDir: folder, extensions: { vector } })
    return { db, lock }
  } catch (error) {
    lock.release()
    throw error
  }
}

/** Opens (or joins) the PGlite of `<dataDir>/pg`; throws a FatalError naming the owner if another process has it. */
export async function acquirePglite(dataDir?: string): Promise<SharedPglite> {
  const folder = pgliteFolder(dataDir)
  await closing.get(folder)
  let entry = instances.get(folder)
  if (entry === undefined) {
    entry = { opening: open(folder), refs: 0 }
    instances.set(folder, entry)
    entry.opening.catch(() => instances.delete(folder))
  }
  entry.refs++
  const current = entry
  let opened: { db: PGlite; lock: FolderLock }
  try {
    opened = await current.opening
  } catch (error) {
    current.refs--
    throw error
  }
  let released = false
  return {
    db: opened.db,
    folder,
    async release() {
      if (released) return
      released = true
      current.refs--
      if (current.refs > 0) return
      instances.delete(folder)
      const done = (async () => {
        try {
          if (!opened.db.closed) await opened.db.close()
        } finally {
          opened.lock.release()
          closing.delete(folder)
        }
      })()
      closing.set(folder, done)
      await done
    }
  }
}
