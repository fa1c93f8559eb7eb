import pg from 'pg'
import { ErrorCodes, errorMessage, FatalError } from '../../errors.ts'
import { createLogger, type Logger, redact } from '../../logger.ts'
import type { CommitRequest, Source, SourceListener, SourceMessage } from '../types.ts'
import { type ResolvedOutboxSourceOptions, resolveOutboxSourceOptions } from './options.ts'
import type { OutboxSourceOptions } from './types.ts'

export { defaultOutboxSourceOptions, resolveOutboxSourceOptions } from './options.ts'
export type { OutboxSourceOptions } from './types.ts'

/** The header that carries the outbox row's id (decimal text) with each message, so a dead letter names its row. */
export const OUTBOX_ID_HEADER = 'sfm.outbox.id'

interface Row {
  id: string
  key: string | null
  event: string
  created_ms: string
}

/**
 * A source on a transactional outbox table in PostgreSQL: the app inserts a row in the transaction of its own write,
 * this source hands the rows to the runtime and deletes each one only after the runtime committed past it — the
 * commit rule of the Kafka source, for a database.
 *
 * Rows are claimed in id order (`FOR UPDATE SKIP LOCKED`, so a second relay skips them) inside a claim transaction
 * that keeps them locked while they are in flight; done rows are deleted in that transaction, which commits once
 * every row it claimed is done (after `maxClaimMs`, or when the table is idle). A relay that dies rolls back: its
 * rows unlock and are published again (at least once; the memory topology's dedupe and fence make it harmless).
 * Messages carry an offset of their own (0, 1, 2, … per run, partition 0 of a topic named after the table) and the
 * row's id in the `sfm.outbox.id` header. An idle source waits for the table's NOTIFY, or `pollIntervalMs`.
 */
export class OutboxSource implements Source {
  readonly kind = 'outbox'
  readonly options: OutboxSourceOptions
  #o: ResolvedOutboxSourceOptions | undefined
  #claim: pg.Client | undefined
  #listen: pg.Client | undefined
  readonly #logger: Logger = createLogger('outbox')
  #buffer: SourceMessage[] = []
  #index = 0
  /** Claimed rows not yet deleted, in offset order: offsets[i] ↔ ids[i]. */
  #offsets: bigint[] = []
  #ids: string[] = []
  #nextOffset = 0n
  #txOpen = false
  #txStartedAt = 0
  #lastClaimed = '0'
  #wake: (() => void) | undefined
  #woken = false
  #failure: unknown
  #closed = false
  /** The claim connection's statements, one after another in call order (a DELETE before the COMMIT after it). */
  #serial: Promise<unknown> = Promise.resolve()

  constructor(options: OutboxSourceOptions = {}) {
    this.options = options
  }

  get description(): string {
    const url = this.#o?.connectionString ?? this.options.connectionString ?? process.env.SFM_OUTBOX_URL
    return `outbox ${this.#o?.table ?? this.options.table ?? 'sfm_outbox'} at ${url ? redact(url) : 'SFM_OUTBOX_URL (unset)'}`
  }

  limitBuffer(messages: number): void {
    const current = this.options.batchSize
    if (current === undefined || current > messages) this.options.batchSize = Math.max(1, messages)
  }

  async open(listener: SourceListener): Promise<void> {
    const o = resolveOutboxSourceOptions(this.options)
    this.#o = o
    const claim = new pg.Client({ connectionString: o.connectionString, application_name: 'sfm-outbox-relay' })
    const listen = new pg.Client({ connectionString: o.connectionString, application_name: 'sfm-outbox-listen' })
    this.#claim = claim
    this.#listen = listen
    for (const client of [claim, listen]) client.on('error', (error) => this.#fail(error))
    try {
      await Promise.all([claim.connect(), listen.connect()])
      const found = await claim.query<{ ok: string | null }>('SELECT to_regclass($1)::text AS ok', [o.tableSql])
      if (found.rows[0]?.ok == null) {
        throw new FatalError(
          `outbox source: table ${o.table} does not exist at ${redact(o.connectionString)}: create it with clients/python/sfm_events/outbox.sql`,
          { code: ErrorCodes.CONFIG }
        )
      }
      listen.on('notification', () => this.#notify())
      await listen.query(`LISTEN "${o.channel}"`)
    } catch (error) {
      await this.close()
      if (error instanceof FatalError) throw error
      throw new FatalError(`outbox source: cannot open ${redact(o.connectionString)}: ${errorMessage(error)}`, {
        code: ErrorCodes.UNAVAILABLE,
        cause: error
      })
    }
    listener.assigned([{ topic: o.table, partition: 0 }])
  }

  /** Runs `text` on the claim connection after every statement queued before it. */
  #query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values?: unknown[]
  ): Promise<pg.QueryResult<R>> {
    const client = this.#claim
    if (!client) return Promise.reject(new FatalError('outbox source: closed', { code: ErrorCodes.SHUTDOWN }))
    const result = this.#serial.then(() => client.query<R>(text, values))
    this.#serial = result.catch(() => {})
    return result
  }

  #notify(): void {
    this.#woken = true
    this.#wake?.()
  }

  #fail(error: unknown): void {
    this.#failure ??= new FatalError(
      `outbox source: lost PostgreSQL (${errorMessage(error)}); restart the relay: rows not yet deleted are published again`,
      { code: ErrorCodes.UNAVAILABLE, cause: error }
    )
    this.#notify()
  }

  tryNext(): SourceMessage | undefined {
    if (this.#index >= this.#buffer.length) return undefined
    const message = this.#buffer[this.#index++]
    if (this.#index === this.#buffer.length) {
      this.#buffer = []
      this.#index = 0
    }
    return message
  }

  async next(signal: AbortSignal): Promise<SourceMessage | undefined> {
    const o = this.#o
    const client = this.#claim
    if (!o || !client) throw new FatalError('outbox source: next() before open()', { code: ErrorCodes.INTERNAL })
    while (true) {
      const buffered = this.tryNext()
      if (buffered) return buffered
      if (this.#failure) throw this.#failure
      if (signal.aborted || this.#closed) return undefined
      try {
        if (this.#txOpen && Date.now() - this.#txStartedAt >= o.maxClaimMs) {
          // This claim transaction is old enough: let its rows finish, then commit their deletes.
          if (this.#ids.length > 0) {
            await this.#sleep(signal, o.pollIntervalMs)
            continue
          }
          await this.#finish()
          continue
        }
        if (!this.#txOpen) {
          this.#woken = false
          await this.#query('BEGIN')
          this.#txOpen = true
          this.#txStartedAt = Date.now()
          this.#lastClaimed = '0'
        }
        const claimed = await this.#query<Row>(
          // ORDER BY o.id, the bigint: a bare `id` would sort by the text output column.
          `SELECT o.id::text AS id, o.key, o.event::text AS event,
                  (extract(epoch FROM o.created_at) * 1000)::bigint::text AS created_ms
             FROM ${o.tableSql} o WHERE o.id > $1 ORDER BY o.id LIMIT $2 FOR UPDATE SKIP LOCKED`,
          [this.#lastClaimed, o.batchSize]
        )
        if (claimed.rows.length > 0) {
          this.#accept(o, claimed.rows)
          continue
        }
        // Nothing new: an idle claim transaction with nothing in flight commits, so that rows committed late with
        // a lower id are seen by the next one.
        if (this.#ids.length === 0) await this.#finish()
        if (!this.#woken) await this.#sleep(signal, o.pollIntervalMs)
        this.#woken = false
      } catch (error) {
        if (this.#failure) throw this.#failure
        if (error instanceof FatalError) throw error
        this.#fail(error)
        throw this.#failure
      }
    }
  }

  #accept(o: ResolvedOutboxSourceOptions, rows: readonly Row[]): void {
    for (const row of rows) {
      const offset = this.#nextOffset++
      this.#offsets.push(offset)
      this.#ids.push(row.id)
      this.#buffer.push({
        key: row.key === null ? undefined : Buffer.from(row.key),
        value: Buffer.from(row.event),
        headers: new Map([[OUTBOX_ID_HEADER, Buffer.from(row.id)]]),
        origin: { topic: o.table, partition: 0, offset, leaderEpoch: 0, timestamp: BigInt(row.created_ms) }
      })
    }
    this.#lastClaimed = rows[rows.length - 1]!.id
  }

  async #finish(): Promise<void> {
    if (!this.#txOpen) return
    this.#txOpen = false
    await this.#query('COMMIT')
  }

  #sleep(signal: AbortSignal, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        signal.removeEventListener('abort', done)
        this.#wake = undefined
        resolve()
      }
      const timer = setTimeout(done, ms)
      signal.addEventListener('abort', done, { once: true })
      this.#wake = done
    })
  }

  /** Deletes the claimed rows the runtime is done with (every offset below the one it commits). */
  async commit(offsets: readonly CommitRequest[]): Promise<void> {
    const request = offsets.find((r) => r.partition === 0)
    if (!request || !this.#claim || !this.#txOpen) return
    let n = 0
    while (n < this.#offsets.length && this.#offsets[n]! < request.offset) n++
    if (n === 0) return
    const ids = this.#ids.splice(0, n)
    this.#offsets.splice(0, n)
    // Queued before any later COMMIT of this transaction.
    const deleted = this.#query(`DELETE FROM ${this.#o!.tableSql} WHERE id = ANY($1::bigint[])`, [ids])
    if (this.#ids.length === 0) this.#wake?.()
    try {
      await deleted
    } catch (error) {
      this.#fail(error)
      throw this.#failure
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#wake?.()
    const claim = this.#claim
    // Commit the deletes of the rows the runtime finished; rows still claimed stay in the table.
    if (claim && this.#txOpen && !this.#failure) {
      this.#txOpen = false
      await this.#query('COMMIT').catch((error) => this.#logger.warn(`commit at close: ${errorMessage(error)}`))
    }
    await Promise.all([claim?.end().catch(() => {}), this.#listen?.end().catch(() => {})])
    this.#claim = undefined
    this.#listen = undefined
  }
}

/** A source on the outbox table of `SFM_OUTBOX_URL` (see OutboxSource). */
export function outboxSource(options: OutboxSourceOptions = {}): OutboxSource {
  return new OutboxSource(options)
}
