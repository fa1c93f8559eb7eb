import type { PGlite, QueryOptions, Transaction } from '@electric-sql/pglite'
import type { Pool } from 'pg'
import { binaryParameters, type Serializer } from '../../pglite/parameters.ts'

/**
 * The slice of `pg.Pool` the Postgres sink uses (migrate.ts, writer.ts, pool.ts `checkout`, materialize's read-back,
 * purge.ts), served by a PGlite: same SQL, same migrations, and the same error contract, since PGlite raises
 * PostgreSQL's own errors with their SQLSTATE `code` (errors.ts classifies both alike).
 *
 * - `query(text | {text, values}, values)` → `{ rows, rowCount }`. The statement name of a prepared query is
 *   ignored: PGlite runs in this process, there is no round trip to save.
 * - `connect()` leases the one session: PGlite runs `work` inside its transaction mutex, so nothing else (the vector
 *   store sharing the instance) interleaves with a checked-out client. The lease is a PGlite transaction; the
 *   client's own BEGIN is absorbed by it, COMMIT commits it (and ends the lease), ROLLBACK rolls it back, and
 *   `release(true)` rolls back whatever is open. A failed statement aborts the lease's transaction, as it would a pg
 *   transaction.
 * - `release(false)` commits the lease and, unlike pg's, returns that commit: it resolves once PGlite's COMMIT is done
 *   and rejects with its error (a deferred constraint, an I/O failure). Commit-after-write depends on it — a batch is
 *   acknowledged only after its COMMIT (writer.ts awaits it through pool.ts `checkout`).
 * - `on` / `off` ('error') accept listeners: an in-process database has no idle connection to lose.
 * - `end()` does not close the database, which belongs to its SharedPglite (src/pglite/shared.ts).
 */
interface Result<R> {
  rows: R[]
  rowCount: number
}

type QueryConfig = string | { text: string; values?: unknown[] | undefined; name?: string | undefined }

function statement(
  config: QueryConfig,
  values: unknown[] | undefined
): { text: string; params: unknown[] | undefined } {
  return typeof config === 'string' ? { text: config, params: values } : { text: config.text, params: config.values }
}

type Runner = Pick<Transaction, 'query' | 'exec'>

/** PostgreSQL's type OID of jsonb. */
const JSONB_OID = 3802

/**
 * A jsonb parameter in jsonb's binary format: the version byte 1, then the JSON text as UTF-8 (jsonb_recv parses it
 * as jsonb_in parses the text format). Why: PGlite's protocol writer (pg-protocol's `writeValues`) measures every
 * text parameter with a JavaScript loop over its characters, twice, before copying it; a batch's payloads were one
 * ~2 MB JSON text (now a binary jsonb[], below), and that loop was ~4% of the embedded memory topology's CPU. A byte view is
 * copied as is; `Buffer.write` encodes natively. PGlite types serializers as returning strings, hence the cast.
 */
function jsonbBinary(value: unknown): Uint8Array {
  // Non-strings as PGlite's own json serializer writes them (bigints as their decimal text).
  const text =
    typeof value === 'string' ? value : JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}` : v))
  const bytes = Buffer.allocUnsafe(1 + Buffer.byteLength(text))
  bytes[0] = 1
  bytes.write(text, 1)
  return bytes
}

/**
 * A statement with parameters goes through the extended protocol (`query`); one without may be several statements
 * (a migration file), which only the simple protocol (`exec`) accepts — pg's `query` does the same switch.
 */
async function run<R>(
  runner: Runner,
  text: string,
  params: unknown[] | undefined,
  options: QueryOptions
): Promise<Result<R>> {
  if (params === undefined || params.length === 0) {
    const results = await runner.exec(text)
    const last = results.at(-1)
    return { rows: (last?.rows ?? []) as R[], rowCount: last?.rowCount ?? last?.rows.length ?? 0 }
  }
  const result = await runner.query<R>(text, params, options)
  // rowCount is the command tag's count, as pg's: rows returned by a SELECT, rows changed by a DML statement.
  return { rows: result.rows, rowCount: result.rowCount ?? result.rows.length }
}

const TRANSACTION_CONTROL = /^\s*(BEGIN|COMMIT|ROLLBACK)\s*;?\s*$/i

class PgliteClient {
  readonly #tx: Transaction
  readonly #end: (rollback: boolean) => Promise<void>
  readonly #options: QueryOptions
  #released = false

  constructor(tx: Transaction, options: QueryOptions, end: (rollback: boolean) => Promise<void>) {
    this.#tx = tx
    this.#options = options
    this.#end = end
  }

  async query<R>(config: QueryConfig, values?: unknown[]): Promise<Result<R>> {
    if (this.#released) throw new Error('pglite client used after release')
    const { text, params } = statement(config, values)
    const control = TRANSACTION_CONTROL.exec(text)?.[1]?.toUpperCase()
    if (control === 'BEGIN') return { rows: [], rowCount: 0 }
    if (control === 'COMMIT' || control === 'ROLLBACK') {
      this.#released = true
      await this.#end(control === 'ROLLBACK')
      return { rows: [], rowCount: 0 }
    }
    return run<R>(this.#tx, text, params, this.#options)
  }

  on(): this {
    return this
  }

  off(): this {
    return this
  }

  /**
   * Ends the lease: commits (`broken` false or absent) or rolls back, and returns that end — pg's `release` returns
   * nothing, so pg-typed callers that ignore it lose nothing there, and pool.ts `checkout` awaits it. Released already
   * (after COMMIT or ROLLBACK): resolves.
   */
  release(broken?: boolean | Error): Promise<void> {
    if (this.#released) return Promise.resolve()
    this.#released = true
    return this.#end(broken !== undefined && broken !== false)
  }
}

export function pglitePool(db: PGlite): Pool {
  // Byte views (src/postgres/binary-array.ts) go as they are; other jsonb values in jsonb's binary format.
  const options = binaryParameters(db, { [JSONB_OID]: jsonbBinary as unknown as Serializer })
  const pool = {
    async query<R>(config: QueryConfig, values?: unknown[]): Promise<Result<R>> {
      const { text, params } = statement(config, values)
      return run<R>(db, text, params, options)
    },
    connect(): Promise<PgliteClient> {
      return new Promise<PgliteClient>((resolve, reject) => {
        let leased = false
        // Settles after PGlite's COMMIT (or ROLLBACK): the end of the lease, returned by the client's release.
        const finished: Promise<void> = db.transaction(
          (tx) =>
            new Promise<void>((done, fail) => {
              leased = true
              const end = (rollback: boolean): Promise<void> => {
                if (!rollback) done()
                // A transaction already aborted by a failed statement rolls back just the same.
                else tx.rollback().then(done, fail)
                return finished
              }
              resolve(new PgliteClient(tx, options, end))
            })
        )
        // Before the lease: connect fails. After it: the error is the client's release's to report.
        finished.catch((error: unknown) => {
          if (!leased) reject(error)
        })
      })
    },
    on() {
      return pool
    },
    off() {
      return pool
    },
    async end() {}
  }
  // The sink's modules are typed against pg.Pool; this object implements the part of it they call (above).
  return pool as unknown as Pool
}
