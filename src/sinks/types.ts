import type { Envelope } from '../streams/envelope.ts'

export interface SinkContext {
  /** Topology name, for table/metric labels. */
  readonly topology: string
  /** Branch name this sink serves. */
  readonly branch: string
  /** Aborted when the runtime shuts down: stop waiting, throw a retriable error. */
  readonly signal: AbortSignal
  /**
   * A shadow run (`npm start -- <topology> --shadow`): report what the write would do without doing it — no row,
   * record or point is changed — in `WriteResult.dryRun`. Only sinks with `dryRun: true` are given it.
   */
  readonly dryRun?: boolean
}

/** One item of a batch that the sink could not write. `index` is its position in the batch. */
export interface ItemFailure {
  readonly index: number
  readonly error: unknown
}

export interface WriteResult {
  /** Items not written. Poison errors go to the DLQ; retriable errors are retried for those items alone. */
  readonly failures?: readonly ItemFailure[]
  /**
   * Optional outcome per item, aligned with the batch (the postgres sink: `applied`, `fenced` or `duplicate`);
   * undefined for items in `failures`. Lets an audit branch record what each event did.
   */
  readonly outcomes?: readonly (string | undefined)[]
  /**
   * In a dry run: what the write would have done, as counts by name (the PostgreSQL sink: `applied`, `fenced`,
   * `duplicate`, `deleted`; a Kafka sink: records per topic). Added up per branch by the runtime.
   */
  readonly dryRun?: Readonly<Record<string, number>>
}

/**
 * A sink writes batches and reports per item, after Kafka Connect's SinkTask and Benthos' WriteBatch: it never
 * commits offsets. The runtime commits an offset only once every sink of every branch has made the message durable
 * or the DLQ holds it.
 *
 * `write` resolves when every item is durable except those in `failures`. Throwing fails the whole batch: a
 * retriable error (see `kindOf`) makes the runtime back off and retry the batch, holding the partition; a fatal
 * error stops the topology. Writes must be idempotent: delivery is at-least-once.
 */
export interface Sink<T> {
  /** Kind of sink, e.g. `postgres`, `kafka`, `qdrant`. */
  readonly kind: string
  /**
   * The sink can run dry (SinkContext.dryRun): open and write change nothing, and each write reports what it would
   * have done. A topology runs in shadow mode only if every sink can.
   */
  readonly dryRun?: boolean
  open?(context: SinkContext): Promise<void>
  write(batch: readonly Envelope<T>[], context: SinkContext): Promise<WriteResult | undefined>
  close?(): Promise<void>
}
