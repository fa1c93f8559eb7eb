import type { Pool } from 'pg'
import { ErrorCodes, ErrorKinds, errorMessage, PoisonError, RetriableError, SfmError } from '../../errors.ts'
import { toSinkError } from '../../postgres/errors.ts'
import type { ItemFailure } from '../types.ts'
import type { ReducedItem } from './buffer.ts'
import { compareIndex, reduceBatch } from './buffer.ts'
import { ClaimModes, type WriteStatement, writeParameters, writeStatement } from './dialect.ts'
import type { ResolvedLayout } from './layout.ts'
import { checkout } from './pool.ts'
import { type Outcome, Outcomes, type PostgresTableNames, type PreparedRow } from './types.ts'

/**
 * Batches in a row whose outcomes hold no duplicate after which the writer claims ledger ids with a plain INSERT
 * (dialect.ts, `ClaimModes.INSERT`). A duplicate means redeliveries (a restart, a rebalance, a replayed range) that
 * usually come in runs: the plain INSERT would fail and the batch run twice, so the writer keeps skipping
 * duplicates until batches are clean again.
 */
const CLEAN_BATCHES_FOR_PLAIN_CLAIM = 3

/** The one row of the write statement (dialect.ts): rows written, and the items whose outcome was not the default. */
interface WriteResultRow {
  readonly applied: number
  readonly ords: number[] | null
  readonly outcomes: Outcome[] | null
}

const internal = { code: ErrorCodes.INTERNAL }

/** PostgreSQL's unique_violation: the plain claim met a ledger id already processed (or being processed). */
function isUniqueViolation(error: unknown): boolean {
  return !(error instanceof SfmError) && (error as { code?: unknown } | null)?.code === '23505'
}

export interface WriterReport {
  /** Outcome per batch index, for every event this call wrote. */
  readonly outcomes: Map<number, Outcome>
  readonly failures: ItemFailure[]
}

function shutdownError(): RetriableError {
  return new RetriableError('postgres sink: shutting down, write abandoned', { code: ErrorCodes.SHUTDOWN })
}

/**
 * Resolves with `promise`, or rejects as soon as `signal` aborts; `abandon` then cleans up whatever the promise
 * later yields. pg has no AbortSignal support (its `cancel` is internal), so on abort the caller closes the
 * connection. A statement already running may still commit (PostgreSQL notices a vanished client only when it next
 * talks to it): harmless, as the runtime redelivers the batch and the retry reports its events as duplicates.
 */
function raceAbort<T>(promise: Promise<T>, signal: AbortSignal | undefined, abandon: (value: T) => void): Promise<T> {
  if (signal === undefined) return promise
  if (signal.aborted) {
    promise.then(abandon, () => {})
    return Promise.reject(shutdownError())
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      promise.then(abandon, () => {})
      reject(shutdownError())
    }
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort)
        resolve(value)
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(error)
      }
    )
  })
}

/**
 * Writes prepared rows, one statement (= one transaction) per batch; resolves only after PostgreSQL has
 * committed (pg resolves a query on ReadyForQuery, which follows the commit of an implicit transaction).
 *
 * Errors: a transient failure (connection refused or lost, shutdown, serialization failure, deadlock, too many
 * connections, timeout) is thrown as RetriableError and nothing of the batch is written. A row the database refuses
 * on its own (`\u0000` in jsonb, invalid uuid, out-of-range number) fails the whole statement; the writer then
 * bisects the batch, committing the good halves, until the refused rows stand alone, and reports only those as
 * PoisonError failures. If a transient error hits after some halves were committed, the unwritten items are
 * reported as retriable failures (the runtime retries those alone) instead of failing the batch again.
 */
export class PostgresWriter<R extends PreparedRow> {
  readonly #pool: Pool
  readonly #layout: ResolvedLayout<never, R>
  readonly #statement: WriteStatement
  /** Undefined without a ledger: there is nothing to claim. */
  readonly #plainClaim: WriteStatement | undefined
  readonly #compare: ((a: R, b: R) => number) | undefined
  /** Clean batches in a row (see CLEAN_BATCHES_FOR_PLAIN_CLAIM); shared by the writes in flight, a heuristic only. */
  #clean = 0

  constructor(pool: Pool, layout: ResolvedLayout<never, R>, names: PostgresTableNames) {
    this.#pool = pool
    this.#layout = layout
    this.#statement = writeStatement(layout, names, ClaimModes.SKIP_DUPLICATES)
    this.#plainClaim = layout.ledger === undefined ? undefined : writeStatement(layout, names, ClaimModes.INSERT)
    this.#compare = layout.fence === undefined ? compareIndex : undefined
  }

  /**
   * `dryRun`: each statement runs in a transaction that is rolled back, so the outcomes are exact against the table
   * as it is and nothing is written (a dry batch does not see an earlier dry batch's rows either).
   */
  async write(events: readonly R[], signal?: AbortSignal, dryRun = false): Promise<WriterReport> {
    const report: WriterReport = { outcomes: new Map(), failures: [] }
    if (events.length === 0) return report
    let committed = false
    const writeRange = async (range: readonly R[]): Promise<void> => {
      let outcomes: Map<number, Outcome>
      try {
        outcomes = await this.#execute(range, signal, dryRun)
      } catch (error) {
        const sinkError = error instanceof SfmError ? error : toSinkError(error, 'postgres write failed')
        if (sinkError.kind !== ErrorKinds.POISON) throw sinkError
        if (range.length === 1) {
          const index = range[0]!.index
          const rejected = new PoisonError(
            `postgres rejected the ${this.#layout.item}: ${errorMessage(sinkError.cause)}`,
            {
              cause: sinkError.cause,
              details: { ...sinkError.details, index }
            }
          )
          report.failures.push({ index, error: rejected })
          return
        }
        const middle = range.length >>> 1
        await writeRange(range.slice(0, middle))
        await writeRange(range.slice(middle))
        return
      }
      committed = true
      for (const [index, outcome] of outcomes) report.outcomes.set(index, outcome)
    }
    try {
      await writeRange(events)
    } catch (error) {
      const sinkError = error as SfmError
      if (!committed || sinkError.kind !== ErrorKinds.RETRIABLE) throw error
      const failed = new Set(report.failures.map((f) => f.index))
      for (const event of events) {
        if (!report.outcomes.has(event.index) && !failed.has(event.index)) {
          report.failures.push({ index: event.index, error: sinkError })
        }
      }
    }
    return report
  }

  /**
   * One statement for `events`; returns their outcomes by batch index once committed. After clean batches the event
   * ids are claimed with a plain INSERT; if one was processed already, that statement fails with nothing written and
   * the batch runs again skipping duplicates.
   */
  async #execute(
    events: readonly R[],
    signal: AbortSignal | undefined,
    dryRun: boolean
  ): Promise<Map<number, Outcome>> {
    const { items, repeats } = this.#compare === undefined ? reduceBatch(events) : reduceBatch(events, this.#compare)
    let outcomes: Map<number, Outcome> | undefined
    // A dry run always skips duplicates: the plain claim's unique_violation would leave its transaction aborted.
    if (!dryRun && this.#plainClaim !== undefined && this.#clean >= CLEAN_BATCHES_FOR_PLAIN_CLAIM) {
      outcomes = await this.#run(items, this.#plainClaim, signal, false)
      if (outcomes === undefined) this.#clean = 0
    }
    if (outcomes === undefined) {
      outcomes = (await this.#run(items, this.#statement, signal, dryRun))!
      let duplicates = false
      for (const outcome of outcomes.values()) if (outcome === Outcomes.DUPLICATE) duplicates = true
      this.#clean = duplicates ? 0 : this.#clean + 1
    }
    for (const repeat of repeats) outcomes.set(repeat.index, Outcomes.DUPLICATE)
    return outcomes
  }

  /**
   * Runs `statement` for `items` on a checked-out client. Undefined when the plain claim met a processed event id
   * (unique_violation): the implicit transaction rolled back and the client is still usable (a PGlite lease ends
   * aborted, its commit rolls back).
   */
  async #run(
    items: readonly ReducedItem<R>[],
    statement: WriteStatement,
    signal: AbortSignal | undefined,
    dryRun: boolean
  ): Promise<Map<number, Outcome> | undefined> {
    const outcomes = new Map<number, Outcome>()
    const out = await raceAbort(checkout(this.#pool, 'postgres sink'), signal, (c) => c.release(false))
    let failed: unknown
    try {
      // A dry run: the statement in a transaction of its own, rolled back below (PGlite: the lease's, see pglite-pool.ts).
      if (dryRun) await raceAbort(out.client.query('BEGIN'), signal, () => {})
      const query = out.client.query<WriteResultRow>({
        name: statement.name,
        text: statement.text,
        values: writeParameters(this.#layout, items)
      })
      const result = await raceAbort(query, signal, () => {})
      const row = result.rows[0]
      if (row === undefined) throw new RetriableError('postgres sink: statement returned no row', internal)
      const ords = row.ords ?? []
      const exceptions = row.outcomes ?? []
      let exceptionWinners = 0
      for (let k = 0; k < ords.length; k++) {
        const item = items[ords[k]!]
        if (item === undefined) throw new RetriableError(`postgres sink: statement returned item ${ords[k]}`, internal)
        if (item.winner) exceptionWinners++
        outcomes.set(item.event.index, exceptions[k]!)
      }
      let winners = 0
      for (const item of items) {
        if (item.winner) winners++
        if (!outcomes.has(item.event.index))
          outcomes.set(item.event.index, item.winner ? Outcomes.APPLIED : item.local!)
      }
      if (row.applied !== winners - exceptionWinners) {
        const message = `postgres sink: statement wrote ${row.applied} rows for ${winners - exceptionWinners} winners`
        throw new RetriableError(message, internal)
      }
    } catch (error) {
      failed = error
    }
    if (failed !== undefined) {
      if (statement === this.#plainClaim && isUniqueViolation(failed)) {
        // The implicit transaction rolled back; the client is still usable.
        await out.release(false).catch(() => {})
        return undefined
      }
      // After an error or an abort the connection may be dead or busy: close it rather than reuse it.
      void out.release(true)
      throw failed instanceof SfmError ? failed : toSinkError(failed, 'postgres write failed')
    }
    if (dryRun) {
      try {
        await out.client.query('ROLLBACK')
      } catch (error) {
        void out.release(true)
        throw error instanceof SfmError ? error : toSinkError(error, 'postgres rollback failed')
      }
      await out.release(false)
      return outcomes
    }
    // Commit-after-write: on PGlite the batch's transaction commits here, and its outcomes count only once it has.
    // A failed COMMIT wrote nothing: the batch is retried (or bisected, by the error's kind) like a failed statement.
    try {
      await out.release(false)
    } catch (error) {
      throw error instanceof SfmError ? error : toSinkError(error, 'postgres commit failed')
    }
    return outcomes
  }
}
