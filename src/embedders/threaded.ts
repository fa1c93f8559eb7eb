import { FatalError } from '../errors.ts'
import { WorkerRpc } from '../workers/rpc.ts'
import { LexicalEmbedder, type LexicalEmbedderOptions } from './lexical.ts'
import type { Embedder } from './types.ts'

/**
 * The lexical embedder on a worker thread of its own (threaded-worker.ts). Why: embedding is pure CPU, and on the
 * event loop it would compete with everything else the runner does — in embedded mode with PGlite and SQLite, which
 * run on that same thread (docs/BENCHMARKS.md, `vectors` and `embedded`, has the figures). On a worker it uses another core,
 * and the branch awaits it like any other I/O. The vectors are the inline embedder's, bit for bit (same code, same
 * options), and so is the revision: switching between inline and threaded never calls for a reindex.
 *
 * One worker, started on the first call; calls queue there in order. If the worker dies, the calls in flight fail
 * with a RetriableError (the runtime retries the batch) and the next call starts a new one (src/workers/rpc.ts).
 */
export class ThreadedEmbedder implements Embedder {
  readonly name: string
  readonly dimensions: number
  readonly revision: string
  readonly #rpc: WorkerRpc

  constructor(options: Partial<LexicalEmbedderOptions> = {}) {
    // Validated here, on the caller's thread, so a bad setting is a FatalError at start rather than a dead worker.
    const inline = new LexicalEmbedder(options)
    this.name = inline.name
    this.dimensions = inline.dimensions
    this.revision = inline.revision
    this.#rpc = new WorkerRpc(new URL('./threaded-worker.ts', import.meta.url), inline.options, 'embedder worker')
  }

  async embed(texts: readonly string[], signal?: AbortSignal): Promise<Float32Array[]> {
    if (texts.length === 0) return []
    const all = await this.#rpc.call<Float32Array>('embed', [texts], signal)
    const { dimensions } = this
    if (all.length !== texts.length * dimensions) {
      throw new FatalError(`embedder worker returned ${all.length} values for ${texts.length} texts`)
    }
    // Views into the one transferred buffer: no copy.
    const out = new Array<Float32Array>(texts.length)
    for (let i = 0; i < texts.length; i++) out[i] = all.subarray(i * dimensions, (i + 1) * dimensions)
    return out
  }

  /** CPU time of the worker thread so far (µs), undefined before the first call: for benchmarks. */
  threadCpuMicros(): Promise<number | undefined> {
    return this.#rpc.threadCpuMicros()
  }

  close(): Promise<void> {
    return this.#rpc.close()
  }
}
