import type pg from 'pg'
import { ErrorCodes, RetriableError, SfmError } from '../../errors.ts'
import { guardClientErrors } from '../../postgres/client-errors.ts'
import { toSinkError } from '../../postgres/errors.ts'
import type { Envelope } from '../../streams/envelope.ts'
import type { ItemFailure, Sink, SinkContext } from '../types.ts'
import { readStatement } from './dialect.ts'
import { loadMigrations, migrate, resolveSchemas } from './migrate.ts'
import { type PostgresSinkInput, resolvePostgresSinkOptions } from './options.ts'
import { checkout, createPool } from './pool.ts'
import type { Outcome, OutcomeCounts, PostgresTableNames, PostgresWriteResult, PreparedRow } from './types.ts'
import { PostgresWriter } from './writer.ts'

export { parseEventTime } from '../../event-time.ts'
export { displayName, parseTableName, type QualifiedName, quoteQualified } from '../../postgres/identifiers.ts'
export {
  loadMigrations,
  type Migration,
  type MigrationResult,
  migrate,
  type Placeholders,
  renderMigration
} from './migrate.ts'
export {
  defaultPostgresSinkOptions,
  type PostgresConnectionInput,
  type PostgresSinkInput,
  postgresTableNames,
  type ResolvedPostgresSinkOptions,
  resolveConnectionOptions,
  resolvePostgresSinkOptions
} from './options.ts'
export { pglitePool } from './pglite-pool.ts'
export { createPool } from './pool.ts'
export { purgeProcessed, purgeTombstones } from './purge.ts'
export * from './types.ts'

export interface PostgresSink<T, R extends PreparedRow = PreparedRow> extends Sink<T> {
  readonly kind: 'postgres'
  /** Table names with their schema resolved; available after `open`. */
  readonly names: PostgresTableNames | undefined
  /** Outcomes since the sink was created. */
  readonly counts: Readonly<OutcomeCounts>
  /** Creates the pool and applies pending migrations; `write` calls it if the runtime did not. Idempotent. */
  open(context?: SinkContext): Promise<void>
  write(batch: readonly Envelope<T>[], context?: SinkContext): Promise<PostgresWriteResult<R>>
  /**
   * The stored rows of `keys` (missing keys have none), every column of the layout: jsonb, int8 and uuid as text,
   * timestamptz as UTC text with microseconds. Opens the sink first. `what` names the read in errors.
   */
  readRows(keys: readonly string[], what?: string): Promise<Record<string, unknown>[]>
  close(): Promise<void>
}

interface Opened<R extends PreparedRow> {
  readonly pool: pg.Pool
  readonly names: PostgresTableNames
  readonly writer: PostgresWriter<R>
  readonly read: string
}

/**
 * Upserts values into one PostgreSQL table, one row per key, as `layout` says (types.ts, `PostgresTableLayout`):
 * with a fence, a row changes only for a value whose `(version, time)` is greater than the stored pair; with
 * tombstones, deletes keep their row; with a ledger, value ids are recorded and a redelivery is a duplicate. See
 * writer.ts for the error contract and dialect.ts for the statement.
 *
 * `write` resolves with the outcome of each item (`applied`, `fenced`, `duplicate`; undefined for failures), and
 * with `failures` for items that are poison (or, after a partial write, retriable).
 */
export function postgresSink<T, R extends PreparedRow>(input: PostgresSinkInput<T, R>): PostgresSink<T, R> {
  const options = resolvePostgresSinkOptions(input)
  const layout = options.resolvedLayout
  const migrations = options.layout.migrations
  const counts: OutcomeCounts = { applied: 0, fenced: 0, duplicate: 0, failed: 0 }
  let opening: Promise<Opened<R>> | undefined
  let opened: Opened<R> | undefined
  let closed = false

  const onPoolError = (error: Error): void => {
    // An idle client lost its connection (e.g. the server restarted); the pool drops it and the next write reconnects.
    options.onPoolError?.(error)
  }

  async function doOpen(dryRun: boolean): Promise<Opened<R>> {
    const owned = options.pool === undefined
    const pool = options.pool ?? createPool(options)
    // A given pool's clients get an 'error' listener too (the PGlite pool's `on` does nothing).
    guardClientErrors(pool)
    // Without a listener, an idle client's error event would crash the process.
    pool.on('error', onPoolError)
    try {
      let names: PostgresTableNames
      // A dry run changes nothing, migrations included: the tables must exist.
      if (options.migrate && migrations !== undefined && !dryRun) {
        const loaded = await loadMigrations(migrations.dir)
        names = (await migrate(pool, options.names, loaded, migrations.placeholders)).names
      } else {
        const out = await checkout(pool, 'postgres sink')
        let broken = true
        try {
          names = await resolveSchemas(out.client, options.names)
          broken = false
        } catch (error) {
          throw error instanceof SfmError ? error : toSinkError(error, 'postgres sink: open')
        } finally {
          out.release(broken)
        }
      }
      opened = {
        pool,
        names,
        writer: new PostgresWriter<R>(pool, layout, names),
        read: readStatement(layout as never, names)
      }
      return opened
    } catch (error) {
      pool.off('error', onPoolError)
      if (owned) await pool.end().catch(() => {})
      throw error
    }
  }

  async function open(dryRun = false): Promise<Opened<R>> {
    if (closed) throw new RetriableError('postgres sink is closed', { code: ErrorCodes.SHUTDOWN })
    if (opened !== undefined) return opened
    // A failed open (database down at start) is forgotten so that the runtime's retry opens again.
    opening ??= doOpen(dryRun).catch((error: unknown) => {
      opening = undefined
      throw error
    })
    return opening
  }

  return {
    kind: 'postgres',
    dryRun: true,
    get names() {
      return opened?.names
    },
    get counts() {
      return { ...counts }
    },
    async open(context) {
      await open(context?.dryRun === true)
    },
    async write(batch, context) {
      const dryRun = context?.dryRun === true
      const { writer } = await open(dryRun)
      const failures: ItemFailure[] = []
      const prepared: R[] = []
      const byIndex = new Array<R | undefined>(batch.length)
      batch.forEach((envelope, index) => {
        const event = layout.prepare(envelope.value, index, envelope)
        if (event instanceof Error) failures.push({ index, error: event })
        else {
          prepared.push(event)
          byIndex[index] = event
        }
      })
      const report = await writer.write(prepared, context?.signal, dryRun)
      failures.push(...report.failures)
      const outcomes = new Array<Outcome | undefined>(batch.length).fill(undefined)
      const batchCounts: OutcomeCounts = { applied: 0, fenced: 0, duplicate: 0, failed: failures.length }
      for (const [index, outcome] of report.outcomes) {
        outcomes[index] = outcome
        batchCounts[outcome]++
      }
      counts.applied += batchCounts.applied
      counts.fenced += batchCounts.fenced
      counts.duplicate += batchCounts.duplicate
      counts.failed += batchCounts.failed
      failures.sort((a, b) => a.index - b.index)
      options.onOutcomes?.(outcomes, batchCounts)
      if (!dryRun) return { failures, outcomes, counts: batchCounts, prepared: byIndex }
      let deleted = 0
      outcomes.forEach((outcome, index) => {
        if (outcome === 'applied' && byIndex[index]?.deleted === true) deleted++
      })
      return {
        failures,
        outcomes,
        counts: batchCounts,
        prepared: byIndex,
        dryRun: { ...batchCounts, deleted }
      }
    },
    async readRows(keys, what = 'postgres sink: read back') {
      const { pool, read } = await open()
      try {
        return (await pool.query<Record<string, unknown>>(read, [keys])).rows
      } catch (error) {
        throw toSinkError(error, what)
      }
    },
    async close() {
      if (closed) return
      closed = true
      const current = opened ?? (await opening?.catch(() => undefined))
      opened = undefined
      opening = undefined
      if (current === undefined) return
      current.pool.off('error', onPoolError)
      if (options.pool === undefined) await current.pool.end()
    }
  }
}
