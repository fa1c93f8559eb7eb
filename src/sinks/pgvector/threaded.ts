import { type FolderLock, type LockHolder, type LockRole, LockRoles, lockFolder } from '../../pglite/folder-lock.ts'
import { displayFolder, pgliteVectorFolder } from '../../pglite/shared.ts'
import type { FencePair } from '../../streams/fence.ts'
import { type VectorRequestMessage, vectorRequestChannel } from '../../telemetry/channels.ts'
import { WorkerRpc } from '../../workers/rpc.ts'
import type {
  SearchHit,
  SearchOptions,
  StoredPoint,
  VectorDelete,
  VectorEvict,
  VectorRecord,
  VectorStore,
  VectorWriteReport
} from '../vector/types.ts'
import {
  defaultPgvectorStoreOptions,
  embeddedPgvectorStoreOptions,
  type PgvectorIndex,
  type PgvectorStoreOptions,
  pgvectorDescription
} from './store.ts'

export interface ThreadedPgvectorStoreOptions {
  /** Data directory (default SFM_DATA_DIR or ./.sfm-data); the index lives in `<dataDir>/vectors`. */
  dataDir?: string
  /** Over embeddedPgvectorStoreOptions (exact search unless `index: 'hnsw'`). */
  store?: Partial<PgvectorStoreOptions>
  /**
   * How this process holds the folder (src/pglite/folder-lock.ts): `owner` (a topology, the default) waits for a
   * reader to finish; `reader` (npm run recall) refuses at once when a topology has it.
   */
  role?: LockRole
}

/** How long an owner waits for a reader (npm run recall) to finish, and a reader for another reader. */
const LOCK_WAIT_MS = { [LockRoles.OWNER]: 60_000, [LockRoles.READER]: 10_000 } as const

/**
 * The embedded vector index: pgvector in a PGlite of its own (`<dataDir>/vectors`), run by a worker thread
 * (threaded-worker.ts), the same PgvectorStore as everywhere else behind a message port.
 *
 * Why a thread and a folder of its own: PGlite executes every statement in WebAssembly on the thread that opened it,
 * and the runner's thread already runs the memories' PGlite, the embedded log and the pipeline: in the memories'
 * PGlite the vector statements would take that thread's CPU from the KV writes (docs/BENCHMARKS.md, `embedded`); here
 * they run on another core, beside them. One PGlite cannot be shared across threads, hence the second folder. The
 * folder is locked by this process (src/pglite/folder-lock.ts) before the worker opens it — by a topology at start
 * (`lock`, from vectorStoreFromEnv), before anything else is opened — so other processes (`npm run recall`) refuse
 * with this process's pid rather than open it, and a recall that got there first is waited for, never the cause of
 * the topology's failure.
 *
 * If the worker dies, the calls in flight fail retriable (the runtime retries their batches) and the next call
 * starts a new worker, which opens the index again.
 */
export class ThreadedPgvectorStore implements VectorStore {
  readonly kind = 'pgvector'
  readonly description: string
  readonly index: PgvectorIndex
  readonly folder: string
  readonly #rpc: WorkerRpc
  readonly #role: LockRole
  #lock: FolderLock | undefined
  #locking: Promise<FolderLock> | undefined
  #dimensions: number | undefined

  constructor(options: ThreadedPgvectorStoreOptions = {}) {
    const store = { ...defaultPgvectorStoreOptions, ...embeddedPgvectorStoreOptions, ...options.store }
    this.folder = pgliteVectorFolder(options.dataDir)
    this.index = store.index
    this.#role = options.role ?? LockRoles.OWNER
    this.description = pgvectorDescription(`pgvector in PGlite at ${displayFolder(this.folder)} (own thread)`, store)
    this.#rpc = new WorkerRpc(
      new URL('./threaded-worker.ts', import.meta.url),
      { folder: this.folder, options: store },
      'vector index worker'
    )
  }

  /**
   * Takes the folder's lock now (open takes it otherwise), waiting for a holder the role allows waiting for;
   * `onWait` hears once that it waits. A FatalError (SFM_CONFIG) naming the holder otherwise.
   */
  async lock(onWait?: (holder: LockHolder | undefined) => void): Promise<void> {
    if (this.#lock !== undefined) return
    this.#locking ??= lockFolder(this.folder, {
      what: 'PGlite vector folder',
      role: this.#role,
      waitMs: LOCK_WAIT_MS[this.#role],
      ...(onWait === undefined ? {} : { onWait })
    }).finally(() => {
      this.#locking = undefined
    })
    this.#lock = await this.#locking
  }

  async open(dimensions: number, signal?: AbortSignal): Promise<void> {
    await this.lock()
    await this.#rpc.call('open', [dimensions], signal)
    this.#dimensions = dimensions
  }

  fences(ids: readonly string[], signal?: AbortSignal): Promise<Map<string, FencePair>> {
    return this.#call('fences', [ids], signal)
  }

  points(ids: readonly string[], signal?: AbortSignal): Promise<Map<string, StoredPoint>> {
    return this.#call('points', [ids], signal)
  }

  write(
    upserts: readonly VectorRecord[],
    deletes: readonly VectorDelete[],
    signal?: AbortSignal
  ): Promise<VectorWriteReport> {
    return this.#statement('write', [upserts, deletes], upserts.length + deletes.length, signal)
  }

  reembed(records: readonly VectorRecord[], signal?: AbortSignal): Promise<VectorWriteReport> {
    return this.#statement('reembed', [records], records.length, signal)
  }

  reinstate(records: readonly VectorRecord[], signal?: AbortSignal): Promise<VectorWriteReport> {
    return this.#statement('reinstate', [records], records.length, signal)
  }

  evict(points: readonly VectorEvict[], signal?: AbortSignal): Promise<VectorWriteReport> {
    return this.#statement('evict', [points], points.length, signal)
  }

  search(vector: Float32Array, options: SearchOptions, signal?: AbortSignal): Promise<SearchHit[]> {
    return this.#call('search', [vector, options.k, options.namespace, options.type], signal)
  }

  count(): Promise<number> {
    return this.#call('count', [])
  }

  /** CPU time of the worker thread so far (µs), undefined while none runs: for benchmarks. */
  threadCpuMicros(): Promise<number | undefined> {
    return this.#rpc.threadCpuMicros()
  }

  async close(): Promise<void> {
    try {
      if (this.#rpc.running) await this.#rpc.call('close', []).catch(() => {})
      await this.#rpc.close()
    } finally {
      // A lock still being taken is released once taken.
      if (this.#locking !== undefined) await this.#locking.catch(() => {})
      this.#lock?.release()
      this.#lock = undefined
    }
  }

  /** A call into the worker; a worker started after one died opens the index first. */
  async #call<R>(method: string, args: readonly unknown[], signal?: AbortSignal): Promise<R> {
    if (!this.#rpc.running && this.#dimensions !== undefined) await this.#rpc.call('open', [this.#dimensions], signal)
    return this.#rpc.call<R>(method, args, signal)
  }

  /**
   * A write statement. The store reports it on the telemetry channel in the worker, where nothing listens: report it
   * here, on the runner's thread, as PgvectorStore does (one statement per call when there is anything to write).
   */
  async #statement(
    method: string,
    args: readonly unknown[],
    points: number,
    signal?: AbortSignal
  ): Promise<VectorWriteReport> {
    const report = await this.#call<VectorWriteReport>(method, args, signal)
    if (report.requests > 0) vectorRequestChannel.publish({ store: this.kind, points } satisfies VectorRequestMessage)
    return report
  }
}
