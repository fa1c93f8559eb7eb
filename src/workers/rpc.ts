/**
 * Calls into a worker thread: one request per call, answered by id, errors carried back with their kind (retriable /
 * poison / fatal) so the runtime treats a failure inside the worker exactly as it would on the calling thread.
 *
 * Used where CPU-bound work would otherwise sit on the runner's event loop: the lexical embedder
 * (src/embedders/threaded.ts) and, in embedded mode, the vector index's own PGlite (src/sinks/pgvector/threaded.ts).
 */
import { parentPort, Worker } from 'node:worker_threads'
import {
  type ErrorCode,
  ErrorCodes,
  type ErrorKind,
  ErrorKinds,
  errorMessage,
  FatalError,
  kindOf,
  PoisonError,
  RetriableError,
  SfmError
} from '../errors.ts'

/** A method every worker answers: its thread's CPU time in µs (WorkerRpc.threadCpuMicros). */
const THREAD_CPU = 'sfm:threadCpu'

interface Request {
  readonly id: number
  readonly method: string
  readonly args: readonly unknown[]
}

/**
 * An error carried back. The framework's own errors (SfmError) keep their kind and code. Any other error (a
 * database's, with its SQLSTATE `code`) comes back as a plain Error with its name, message and string fields, so the
 * caller classifies it exactly as it would on its own thread (src/postgres/errors.ts reads `code`).
 */
interface ErrorReply {
  readonly message: string
  readonly kind: ErrorKind
  readonly code?: string
  /** Set for an error that is not an SfmError: its own string fields (name, code, detail, constraint…). */
  readonly fields?: Record<string, string>
}

type Reply = { readonly id: number; readonly value: unknown } | { readonly id: number; readonly error: ErrorReply }

interface Pending {
  resolve(value: unknown): void
  reject(error: unknown): void
}

/** The calling side. The worker starts on the first call (and again on the call after it died). */
export class WorkerRpc {
  readonly #url: URL
  readonly #workerData: unknown
  readonly #what: string
  readonly #pending = new Map<number, Pending>()
  #worker: Worker | undefined
  #nextId = 0
  #closed = false

  /** `what` names the worker in errors ("embedder worker"). */
  constructor(url: URL, workerData: unknown, what: string) {
    this.#url = url
    this.#workerData = workerData
    this.#what = what
  }

  /** Whether a worker is running (a new one is started by the next call). */
  get running(): boolean {
    return this.#worker !== undefined
  }

  /**
   * Calls `method` in the worker. If the worker dies, every call in flight fails with a RetriableError and the next
   * call starts a new one. While a call is in flight the worker keeps the process alive; an idle one does not.
   */
  call<R>(method: string, args: readonly unknown[], signal?: AbortSignal): Promise<R> {
    if (this.#closed)
      return Promise.reject(new RetriableError(`${this.#what} is closed`, { code: ErrorCodes.SHUTDOWN }))
    if (signal?.aborted) return Promise.reject(signal.reason)
    const worker = this.#start()
    const id = this.#nextId++
    return new Promise<R>((resolve, reject) => {
      const onAbort = (): void => {
        // The worker still finishes the call; its answer is dropped.
        this.#settle(id)
        reject(signal?.reason)
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#pending.set(id, {
        resolve: (value) => {
          signal?.removeEventListener('abort', onAbort)
          resolve(value as R)
        },
        reject: (error) => {
          signal?.removeEventListener('abort', onAbort)
          reject(error)
        }
      })
      try {
        worker.postMessage({ id, method, args } satisfies Request)
      } catch (error) {
        // An argument that cannot be cloned (DataCloneError): nothing was sent, so nothing will answer.
        this.#settle(id)
        reject(error)
        return
      }
      worker.ref()
    })
  }

  /** CPU time the worker thread has used (user + system, µs), or undefined if none is running: for benchmarks. */
  async threadCpuMicros(): Promise<number | undefined> {
    if (this.#worker === undefined) return undefined
    return this.call<number>(THREAD_CPU, [])
  }

  /** Fails the calls in flight (retriable: the runtime holds their batches) and stops the worker. */
  async close(): Promise<void> {
    this.#closed = true
    const worker = this.#worker
    this.#worker = undefined
    this.#failAll(new RetriableError(`${this.#what} closed`, { code: ErrorCodes.SHUTDOWN }))
    if (worker) await worker.terminate()
  }

  #start(): Worker {
    if (this.#worker) return this.#worker
    const worker = new Worker(this.#url, { workerData: this.#workerData })
    worker.on('message', (reply: Reply) => this.#reply(reply))
    const lost = (why: string): void => {
      if (this.#worker !== worker) return
      this.#worker = undefined
      this.#failAll(new RetriableError(`${this.#what} ${why}`, { code: ErrorCodes.UNAVAILABLE }))
    }
    worker.on('error', (error) => lost(`failed: ${error.message}`))
    worker.on('exit', (code) => lost(`exited with code ${code}`))
    worker.unref()
    this.#worker = worker
    return worker
  }

  #reply(reply: Reply): void {
    const pending = this.#settle(reply.id)
    if (pending === undefined) return
    if ('error' in reply) pending.reject(rebuildError(reply.error))
    else pending.resolve(reply.value)
  }

  #settle(id: number): Pending | undefined {
    const pending = this.#pending.get(id)
    this.#pending.delete(id)
    if (this.#pending.size === 0) this.#worker?.unref()
    return pending
  }

  #failAll(error: Error): void {
    const pending = [...this.#pending.values()]
    this.#pending.clear()
    for (const p of pending) p.reject(error)
  }
}

/** An error's own string-valued fields (a database error's code, detail, constraint…) and its name. */
function stringFields(error: unknown): Record<string, string> {
  const fields: Record<string, string> = {}
  if (typeof error !== 'object' || error === null) return fields
  for (const [key, value] of Object.entries(error)) if (typeof value === 'string') fields[key] = value
  if (error instanceof Error) fields.name = error.name
  delete fields.message
  delete fields.stack
  return fields
}

function threadCpu(): number {
  const usage = process.threadCpuUsage()
  return usage.user + usage.system
}

function rebuildError(error: ErrorReply): Error {
  if (error.fields !== undefined) return Object.assign(new Error(error.message), error.fields)
  const options = error.code === undefined ? {} : { code: error.code as ErrorCode }
  if (error.kind === ErrorKinds.POISON) return new PoisonError(error.message, options)
  if (error.kind === ErrorKinds.RETRIABLE) return new RetriableError(error.message, options)
  return new FatalError(error.message, options)
}

/**
 * The worker side: answers each request with `handlers[method](...args)`. A typed array that is a whole buffer is
 * transferred rather than copied.
 */
export function serveRpc(handlers: Record<string, (...args: never[]) => unknown>): void {
  const port = parentPort
  if (port === null) throw new Error('serveRpc runs in a worker thread')
  port.on('message', async (request: Request) => {
    const handler = request.method === THREAD_CPU ? threadCpu : handlers[request.method]
    try {
      if (handler === undefined) throw new FatalError(`worker has no method ${JSON.stringify(request.method)}`)
      const value = await (handler as (...args: unknown[]) => unknown)(...request.args)
      const whole = ArrayBuffer.isView(value) && value.byteOffset === 0 && value.byteLength === value.buffer.byteLength
      port.postMessage({ id: request.id, value } satisfies Reply, whole ? [value.buffer as ArrayBuffer] : [])
    } catch (error) {
      const code = (error as { code?: unknown }).code
      const reply: ErrorReply = {
        message: errorMessage(error),
        kind: kindOf(error),
        ...(typeof code === 'string' ? { code } : {}),
        ...(error instanceof SfmError ? {} : { fields: stringFields(error) })
      }
      port.postMessage({ id: request.id, error: reply } satisfies Reply)
    }
  })
}
