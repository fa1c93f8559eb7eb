import type { Pool } from 'pg'
import { ErrorCodes, ErrorKinds, errorMessage, PoisonError, RetriableError, SfmError } from '../../errors.ts'
import { createLogger } from '../../logger.ts'
import { toSinkError } from '../../postgres/errors.ts'
import type { ItemFailure } from '../types.ts'
import type { ReducedItem } from './buffer.ts'
import { compareIndex, reduceBatch } from './buffer.ts'
import { ClaimModes, RowModes, type WriteStatement, writeParameters, writeStatement } from './dialect.ts'
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

/**
 * With the plain claim the writer also inserts the rows with a plain INSERT (dialect.ts, `RowModes.INSERT`) until a
 * batch meets a stored key; it then upserts for this many batches before trying again, each further miss in a row
 * multiplying the wait by 8 up to the maximum. A stream that updates stored memories in every batch thus pays one
 * failed statement per PLAIN_ROWS_MAX_WAIT batches; a stream of new memories never upserts.
 */
const PLAIN_ROWS_FIRST_WAIT = 64
const PLAIN_ROWS_MAX_WAIT = 4096

/**
 * Rows a dry run keeps to replay (see PostgresWriter.write): past this many, later dry batches no longer see the dry
 * run's own earlier effects, and the writer says so once.
 */
export const DRY_RUN_MEMORY_ROWS = 200_000

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
  /** The plain claim with the rows inserted, not upserted; undefined without a ledger. */
  readonly #plainRows: WriteStatement | undefined
  readonly #compare: ((a: R, b: R) => number) | undefined
  /** Clean batches in a row (see CLEAN_BATCHES_FOR_PLAIN_CLAIM); shared by the writes in flight, a heuristic only. */
  #clean = 0
  /** Batches to upsert before trying `#plainRows` again, and the last such wait (0 after a success). */
  #rowsWait = 0
  #rowsBackoff = 0
  /** A write in flight is trying `#plainRows`: the others upsert until it knows, so a miss costs one statement. */
  #rowsTrying = false
  /** The last `#plainRows` statement committed: the writes in flight may all use it. */
  #rowsProven = false
  /** A dry run's own earlier rows, by key and by event id (see `write`); `#dryRows` counts them. */
  readonly #dryByKey = new Map<string, R[]>()
  readonly #dryByEventId = new Map<string, R>()
  #dryRows = 0
  /** Set once the dry rows reached DRY_RUN_MEMORY_ROWS: later dry outcomes may miss the dry run's own effects. */
  dryMemoryFull = false

  constructor(pool: Pool, layout: ResolvedLayout<never, R>, names: PostgresTableNames) {
    this.#pool = pool
    this.#layout = layout
    this.#statement = writeStatement(layout, names, ClaimModes.SKIP_DUPLICATES)
    this.#plainClaim = layout.ledger === undefined ? undefined : writeStatement(layout, names, ClaimModes.INSERT)
    this.#plainRows =
      layout.ledger === undefined ? undefined : writeStatement(layout, names, ClaimModes.INSERT, RowModes.INSERT)
    this.#compare = layout.fence === undefined ? compareIndex : undefined
  }

  /**
   * `dryRun`: each statement runs in a transaction that is rolled back, so nothing is written. So that a dry batch sees
   * what the earlier dry batches would have written, the writer keeps their rows, and inside each dry batch's
   * transaction first runs the same statement for the earlier rows of the batch's keys and event ids: the fence is
   * order-independent, so the table and ledger the batch then meets are those a real run would have left, and its
   * outcomes are exact (up to DRY_RUN_MEMORY_ROWS kept rows).
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
   * the batch runs again skipping duplicates. With the plain claim the rows are inserted, not upserted, until a
   * batch meets a stored key: that statement fails the same way and the batch runs again skipping duplicates and
   * upserting; if it found no duplicate, the stored key was the cause and the writer upserts for a while.
   */
  async #execute(
    events: readonly R[],
    signal: AbortSignal | undefined,
    dryRun: boolean
  ): Promise<Map<number, Outcome>> {
    const { items, repeats } = this.#compare === undefined ? reduceBatch(events) : reduceBatch(events, this.#compare)
    let outcomes: Map<number, Outcome> | undefined
    const clean = this.#clean
    let rowsFailed = false
    // A dry run always skips duplicates: the plain claim's unique_violation would leave its transaction aborted.
    if (!dryRun && this.#plainClaim !== undefined && clean >= CLEAN_BATCHES_FOR_PLAIN_CLAIM) {
      const rows = this.#plainRows !== undefined && this.#rowsWait === 0 && !this.#rowsTrying
      if (this.#rowsWait > 0) this.#rowsWait--
      // A first try (after a miss) runs alone; once one succeeded, the writes in flight all insert.
      const alone = rows && !this.#rowsProven
      if (alone) this.#rowsTrying = true
      try {
        outcomes = await this.#run(items, rows ? this.#plainRows! : this.#plainClaim, signal, false)
      } finally {
        if (alone) this.#rowsTrying = false
      }
      if (outcomes === undefined) {
        this.#clean = 0
        rowsFailed = rows
        if (rows) this.#rowsProven = false
      } else if (rows) {
        this.#rowsBackoff = 0
        this.#rowsProven = true
      }
    }
    if (outcomes === undefined && dryRun) {
      outcomes = (await this.#run(items, this.#statement, signal, true, this.#dryReplay(events)))!
      this.#dryRecord(events)
    }
    if (outcomes === undefined) {
      outcomes = (await this.#run(items, this.#statement, signal, dryRun))!
      let duplicates = false
      for (const outcome of outcomes.values()) if (outcome === Outcomes.DUPLICATE) duplicates = true
      if (rowsFailed && !duplicates) {
        // No processed event id: a stored key failed the plain insert. The claim stays plain, the rows upsert.
        this.#rowsBackoff = Math.min(
          this.#rowsBackoff === 0 ? PLAIN_ROWS_FIRST_WAIT : this.#rowsBackoff * 8,
          PLAIN_ROWS_MAX_WAIT
        )
        this.#rowsWait = this.#rowsBackoff
        this.#clean = clean + 1
      } else this.#clean = duplicates ? 0 : this.#clean + 1
    }
    for (const repeat of repeats) outcomes.set(repeat.index, Outcomes.DUPLICATE)
    return outcomes
  }

  /**
   * Runs `statement` for `items` on a checked-out client. Undefined when the plain claim met a processed event id
   * (unique_violation): the implicit transaction rolled back and the client is still usable (a PGlite lease ends
   * aborted, its commit rolls back).
   */
  /** The earlier dry rows of `events`' keys and event ids, in the order they came, reduced as one batch. */
  #dryReplay(events: readonly R[]): readonly ReducedItem<R>[] {
    const rows = new Set<R>()
    for (const event of events) {
      for (const row of this.#dryByKey.get(event.id) ?? []) rows.add(row)
      const same = this.#dryByEventId.get(event.eventId)
      if (same !== undefined) rows.add(same)
    }
    if (rows.size === 0) return []
    // Kept rows carry their arrival number as index: batch order for a table without a fence.
    const ordered = [...rows].sort((a, b) => a.index - b.index)
    return (this.#compare === undefined ? reduceBatch(ordered) : reduceBatch(ordered, this.#compare)).items
  }

  #dryRecord(events: readonly R[]): void {
    for (const event of events) {
      if (this.#dryByEventId.has(event.eventId)) continue
      if (this.#dryRows >= DRY_RUN_MEMORY_ROWS) {
        if (!this.dryMemoryFull) {
          createLogger('postgres').warn(
            `dry run: ${DRY_RUN_MEMORY_ROWS} rows kept; from here a dry batch no longer sees later dry batches' effects, so a memory changed again may be counted against the stored state`
          )
        }
        this.dryMemoryFull = true
        return
      }
      const row = { ...event, index: this.#dryRows++ }
      // Bytes a row holds (e.g. a jsonb value as received) are views of the message's fetch buffer: kept for the
      // whole run, they would keep every such buffer alive. Copied to their own size.
      const fields = row as unknown as Record<string, unknown>
      for (const [name, value] of Object.entries(fields)) {
        if (value instanceof Uint8Array) fields[name] = Buffer.from(value)
      }
      this.#dryByEventId.set(event.eventId, row)
      const list = this.#dryByKey.get(event.id)
      if (list === undefined) this.#dryByKey.set(event.id, [row])
      else list.push(row)
    }
  }

  async #run(
    items: readonly ReducedItem<R>[],
    statement: WriteStatement,
    signal: AbortSignal | undefined,
    dryRun: boolean,
    replay: readonly ReducedItem<R>[] = []
  ): Promise<Map<number, Outcome> | undefined> {
    const outcomes = new Map<number, Outcome>()
    const out = await raceAbort(checkout(this.#pool, 'postgres sink'), signal, (c) => c.release(false))
    let failed: unknown
    try {
      // A dry run: the statement in a transaction of its own, rolled back below (PGlite: the lease's, see pglite-pool.ts).
      if (dryRun) await raceAbort(out.client.query('BEGIN'), signal, () => {})
      if (replay.length > 0) {
        // The dry run's own earlier effects on these keys and event ids (see `write`); their outcomes are not this
        // batch's.
        const replayed = out.client.query({
          name: statement.name,
          text: statement.text,
          values: writeParameters(this.#layout, replay)
        })
        await raceAbort(replayed, signal, () => {})
      }
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
      if ((statement === this.#plainClaim || statement === this.#plainRows) && isUniqueViolation(failed)) {
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
