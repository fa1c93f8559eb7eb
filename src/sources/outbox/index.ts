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

/** Ids skipped by a claim (not yet committed by the app, rolled back, or another relay's) that a claim looks at again. */
const MAX_GAPS = 1000

/**
 * One claim transaction on a connection of its own: the rows it claimed and locked, not yet deleted, in offset order
 * (offsets[i] ↔ ids[i]).
 */
interface Claim {
  readonly client: pg.Client
  /** The connection's statements, one after another in call order (a DELETE before the COMMIT after it). */
  serial: Promise<unknown>
  open: boolean
  startedAt: number
  offsets: bigint[]
  ids: string[]
  lastClaimed: bigint
  /** Ids below lastClaimed that this transaction has not claimed: rows the app may still commit. */
  gaps: Set<bigint>
}

/**
 * A source on a transactional outbox table in PostgreSQL: the app inserts a row in the transaction of its own write,
 * this source hands the rows to the runtime and deletes each one only after the runtime committed past it — the
 * commit rule of the Kafka source, for a database.
 *
 * Rows are claimed in id order (`FOR UPDATE SKIP LOCKED`, so a second relay skips them) inside a claim transaction
 * that keeps them locked while they are in flight; done rows are deleted in that transaction, which commits once
 * every row it claimed is done. After `maxClaimMs` the transaction stops claiming and drains while a new one, on a
 * second connection, claims the rows that follow (it skips the first one's rows, which stay locked until their
 * deletes commit); when the table is idle the transaction commits at once. Ids that a claim skipped (an app
 * transaction that took its id earlier but commits later) are looked at again by every later claim of the same
 * transaction, so a late commit waits for the next wake-up, not for the next transaction. A relay that dies rolls
 * back: its rows unlock and are published again (at least once; the memory topology's dedupe and fence make it
 * harmless). Messages carry an offset of their own (0, 1, 2, … per run, partition 0 of a topic named after the
 * table) and the row's id in the `sfm.outbox.id` header. An idle source waits for the table's NOTIFY, or
 * `pollIntervalMs`.
 */
export class OutboxSource implements Source {
  readonly kind = 'outbox'
  readonly options: OutboxSourceOptions
  #o: ResolvedOutboxSourceOptions | undefined
  /** The claiming transaction, and the one before it while its rows drain. */
  #current: Claim | undefined
  #draining: Claim | undefined
  #spare: Claim | undefined
  #listen: pg.Client | undefined
  readonly #logger: Logger = createLogger('outbox')
  #buffer: SourceMessage[] = []
  #index = 0
  #nextOffset = 0n
  #wake: (() => void) | undefined
  #woken = false
  #failure: unknown
  #closed = false

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
    const connect = (name: string) => new pg.Client({ connectionString: o.connectionString, application_name: name })
    const claims = [connect('sfm-outbox-relay'), connect('sfm-outbox-relay')]
    const listen = connect('sfm-outbox-listen')
    this.#current = newClaim(claims[0]!)
    this.#spare = newClaim(claims[1]!)
    this.#listen = listen
    for (const client of [...claims, listen]) client.on('error', (error) => this.#fail(error))
    try {
      await Promise.all([...claims, listen].map((c) => c.connect()))
      const found = await claims[0]!.query<{ ok: string | null }>('SELECT to_regclass($1)::text AS ok', [o.tableSql])
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

  /** Runs `text` on the claim's connection after every statement queued there before it. */
  #query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    claim: Claim,
    text: string,
    values?: unknown[]
  ): Promise<pg.QueryResult<R>> {
    const result = claim.serial.then(() => claim.client.query<R>(text, values))
    claim.serial = result.catch(() => {})
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
    if (!o || !this.#current) throw new FatalError('outbox source: next() before open()', { code: ErrorCodes.INTERNAL })
    while (true) {
      const buffered = this.tryNext()
      if (buffered) return buffered
      if (this.#failure) throw this.#failure
      if (signal.aborted || this.#closed) return undefined
      try {
        let claim = this.#current
        if (claim.open && Date.now() - claim.startedAt >= o.maxClaimMs) {
          if (claim.ids.length === 0) {
            await this.#finish(claim)
          } else if (!this.#draining && this.#spare) {
            // This claim transaction is old enough: it drains (commits once its rows are done) while the spare
            // connection claims what follows.
            this.#draining = claim
            this.#current = this.#spare
            this.#spare = undefined
          } else {
            // The one before has not drained yet: let this one's rows finish first.
            await this.#sleep(signal, o.pollIntervalMs)
            continue
          }
          claim = this.#current
        }
        if (!claim.open) {
          this.#woken = false
          await this.#query(claim, 'BEGIN')
          claim.open = true
          claim.startedAt = Date.now()
          claim.lastClaimed = 0n
          claim.gaps.clear()
        }
        let found = 0
        if (claim.gaps.size > 0) {
          const late = await this.#query<Row>(claim, `${this.#select(o)} WHERE o.id = ANY($1::bigint[]) ${LOCK}`, [
            [...claim.gaps].map(String)
          ])
          for (const row of late.rows) claim.gaps.delete(BigInt(row.id))
          this.#accept(o, claim, late.rows, false)
          found += late.rows.length
        }
        const claimed = await this.#query<Row>(claim, `${this.#select(o)} WHERE o.id > $1 ${LOCK_LIMIT}`, [
          String(claim.lastClaimed),
          o.batchSize
        ])
        this.#accept(o, claim, claimed.rows, true)
        found += claimed.rows.length
        if (found > 0) continue
        // Nothing new: an idle claim transaction with nothing in flight commits, so that rows committed late with
        // a lower id are seen by the next one.
        if (claim.ids.length === 0) await this.#finish(claim)
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

  #select(o: ResolvedOutboxSourceOptions): string {
    return `SELECT o.id::text AS id, o.key, o.event::text AS event,
                   (extract(epoch FROM o.created_at) * 1000)::bigint::text AS created_ms
              FROM ${o.tableSql} o`
  }

  /** Hands `rows` (in id order) to the runtime; `advance`: rows above lastClaimed, whose skipped ids become gaps. */
  #accept(o: ResolvedOutboxSourceOptions, claim: Claim, rows: readonly Row[], advance: boolean): void {
    for (const row of rows) {
      const id = BigInt(row.id)
      if (advance) {
        // The ids between the last claimed and this one: in the first claim of a transaction they are rows
        // deleted before, later they are rows not visible yet (or gone); bounded, the next transaction sees all.
        if (claim.lastClaimed > 0n && id - claim.lastClaimed - 1n <= BigInt(MAX_GAPS - claim.gaps.size)) {
          for (let gap = claim.lastClaimed + 1n; gap < id; gap++) claim.gaps.add(gap)
        }
        claim.lastClaimed = id
      }
      const offset = this.#nextOffset++
      claim.offsets.push(offset)
      claim.ids.push(row.id)
      this.#buffer.push({
        key: row.key === null ? undefined : Buffer.from(row.key),
        value: Buffer.from(row.event),
        headers: new Map([[OUTBOX_ID_HEADER, Buffer.from(row.id)]]),
        origin: { topic: o.table, partition: 0, offset, leaderEpoch: 0, timestamp: BigInt(row.created_ms) }
      })
    }
  }

  async #finish(claim: Claim): Promise<void> {
    if (!claim.open) return
    claim.open = false
    await this.#query(claim, 'COMMIT')
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
    if (!request) return
    const pending: Promise<unknown>[] = []
    // The draining transaction's offsets are all below the current one's.
    for (const claim of [this.#draining, this.#current]) {
      if (!claim?.open) continue
      let n = 0
      while (n < claim.offsets.length && claim.offsets[n]! < request.offset) n++
      if (n === 0) continue
      const ids = claim.ids.splice(0, n)
      claim.offsets.splice(0, n)
      // Queued before any later COMMIT of this transaction.
      pending.push(this.#query(claim, `DELETE FROM ${this.#o!.tableSql} WHERE id = ANY($1::bigint[])`, [ids]))
      if (claim === this.#draining && claim.ids.length === 0) {
        this.#draining = undefined
        pending.push(
          this.#finish(claim).then(() => {
            this.#spare = claim
            this.#wake?.()
          })
        )
      }
    }
    if (this.#current && this.#current.ids.length === 0) this.#wake?.()
    try {
      await Promise.all(pending)
    } catch (error) {
      this.#fail(error)
      throw this.#failure
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#wake?.()
    const claims = [this.#draining, this.#current, this.#spare].filter((c): c is Claim => c !== undefined)
    // Commit the deletes of the rows the runtime finished; rows still claimed stay in the table.
    if (!this.#failure) {
      for (const claim of claims) {
        if (claim.open) {
          await this.#finish(claim).catch((error) => this.#logger.warn(`commit at close: ${errorMessage(error)}`))
        }
      }
    }
    await Promise.all([...claims.map((c) => c.client.end().catch(() => {})), this.#listen?.end().catch(() => {})])
    this.#current = undefined
    this.#draining = undefined
    this.#spare = undefined
    this.#listen = undefined
  }
}

// ORDER BY o.id, the bigint: a bare `id` would sort by the text output column.
const LOCK = 'ORDER BY o.id FOR UPDATE SKIP LOCKED'
const LOCK_LIMIT = 'ORDER BY o.id LIMIT $2 FOR UPDATE SKIP LOCKED'

function newClaim(client: pg.Client): Claim {
  return {
    client,
    serial: Promise.resolve(),
    open: false,
    startedAt: 0,
    offsets: [],
    ids: [],
    lastClaimed: 0n,
    gaps: new Set()
  }
}

/** A source on the outbox table of `SFM_OUTBOX_URL` (see OutboxSource). */
export function outboxSource(options: OutboxSourceOptions = {}): OutboxSource {
  return new OutboxSource(options)
}
