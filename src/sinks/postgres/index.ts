import type pg from 'pg'
import { ErrorCodes, RetriableError, SfmError } from '../../errors.ts'
import type { MemoryEvent } from '../../memory/event.ts'
import type { Envelope } from '../../streams/envelope.ts'
import type { ItemFailure, Sink, SinkContext } from '../types.ts'
import { toSinkError } from './errors.ts'
import { migrate, resolveSchemas } from './migrate.ts'
import { type PostgresSinkInput, resolvePostgresSinkOptions } from './options.ts'
import { checkout, createPool } from './pool.ts'
import { prepareEvent } from './prepare.ts'
import type { Outcome, OutcomeCounts, PostgresWriteResult, PreparedEvent, TableNames } from './types.ts'
import { PostgresWriter } from './writer.ts'

export { fold } from './fold.ts'
export { loadMigrations, migrate, renderMigration } from './migrate.ts'
export { defaultPostgresSinkOptions, type PostgresSinkInput, tableNames } from './options.ts'
export { purgeProcessed, purgeTombstones } from './purge.ts'
export * from './types.ts'

export interface PostgresSink extends Sink<MemoryEvent> {
  readonly kind: 'postgres'
  /** Table names with their schema resolved; available after `open`. */
  readonly names: TableNames | undefined
  /** Outcomes since the sink was created. */
  readonly counts: Readonly<OutcomeCounts>
  /** Creates the pool and applies pending migrations; `write` calls it if the runtime did not. Idempotent. */
  open(context?: SinkContext): Promise<void>
  write(batch: readonly Envelope<MemoryEvent>[], context?: SinkContext): Promise<PostgresWriteResult>
  close(): Promise<void>
}

interface Opened {
  readonly pool: pg.Pool
  readonly names: TableNames
  readonly writer: PostgresWriter
}

/**
 * Materializes memory events into PostgreSQL: one row per memory id, changed only by events that pass the fence
 * `(version, timestamp)`, deletes kept as tombstones, event ids recorded for deduplication. See writer.ts for the
 * error contract and dialect.ts for the statement.
 *
 * `write` resolves with the outcome of each item (`applied`, `fenced`, `duplicate`; undefined for failures) for the
 * audit branch, and with `failures` for items that are poison (or, after a partial write, retriable).
 */
export function postgresSink(input: PostgresSinkInput): PostgresSink {
  const options = resolvePostgresSinkOptions(input)
  const counts: OutcomeCounts = { applied: 0, fenced: 0, duplicate: 0, failed: 0 }
  let opening: Promise<Opened> | undefined
  let opened: Opened | undefined
  let closed = false

  const onPoolError = (error: Error): void => {
    // An idle client lost its connection (e.g. the server restarted); the pool drops it and the next write reconnects.
    options.onPoolError?.(error)
  }

  async function doOpen(): Promise<Opened> {
    const owned = options.pool === undefined
    const pool = options.pool ?? createPool(options)
    // Without a listener, an idle client's error event would crash the process.
    pool.on('error', onPoolError)
    try {
      let names: TableNames
      if (options.migrate) {
        names = (await migrate(pool, options.names)).names
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
      opened = { pool, names, writer: new PostgresWriter(pool, names) }
      return opened
    } catch (error) {
      pool.off('error', onPoolError)
      if (owned) await pool.end().catch(() => {})
      throw error
    }
  }

  async function open(): Promise<Opened> {
    if (closed) throw new RetriableError('postgres sink is closed', { code: ErrorCodes.SHUTDOWN })
    if (opened !== undefined) return opened
    // A failed open (database down at start) is forgotten so that the runtime's retry opens again.
    opening ??= doOpen().catch((error: unknown) => {
      opening = undefined
      throw error
    })
    return opening
  }

  return {
    kind: 'postgres',
    get names() {
      return opened?.names
    },
    get counts() {
      return { ...counts }
    },
    async open() {
      await open()
    },
    async write(batch, context) {
      const { writer } = await open()
      const failures: ItemFailure[] = []
      const prepared: PreparedEvent[] = []
      const byIndex = new Array<PreparedEvent | undefined>(batch.length)
      batch.forEach((envelope, index) => {
        const event = prepareEvent(envelope.value, index)
        if (event instanceof Error) failures.push({ index, error: event })
        else {
          prepared.push(event)
          byIndex[index] = event
        }
      })
      const report = await writer.write(prepared, context?.signal)
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
      return { failures, outcomes, counts: batchCounts, prepared: byIndex }
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
