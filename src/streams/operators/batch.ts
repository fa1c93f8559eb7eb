import { Observable, type OperatorFunction } from 'rxjs'
import type { Envelope } from '../envelope.ts'

export const BatchFlushModes = {
  /** Flush on count, bytes or time, whichever comes first. */
  LIMITS: 'limits',
  /**
   * Group commit: also flush as soon as the writer could start the batch (nothing of its partition in flight, a
   * free slot), after `lingerMs`; while it could not, keep filling up to the limits. Needs the writer's gate.
   */
  WHEN_IDLE: 'when-idle'
} as const
export type BatchFlushMode = (typeof BatchFlushModes)[keyof typeof BatchFlushModes]

export interface BatchOptions {
  /** Flush when a batch holds this many messages. */
  maxCount?: number
  /** Flush when a batch holds this many bytes (wire size of the source messages). */
  maxBytes?: number
  /** Flush a non-empty batch this long after its first message arrived. */
  maxWaitMs?: number
  /** `limits` (default) or `when-idle`: see BatchFlushModes. */
  flush?: BatchFlushMode
  /**
   * `when-idle`: how old a batch must be before it may flush early, ms: a floor under the batch rate that trades a
   * little latency for fewer writes. 0 waits for the rest of the current turn of the event loop (the rest of a fetch
   * response), no longer.
   */
  lingerMs?: number
}

export const defaultBatchOptions = {
  maxCount: 500,
  maxBytes: 4 * 1024 * 1024,
  maxWaitMs: 50,
  flush: BatchFlushModes.LIMITS,
  lingerMs: 0
} satisfies Required<BatchOptions>

const flushModes: readonly string[] = Object.values(BatchFlushModes)

export function resolveBatchOptions(options: BatchOptions = {}): Required<BatchOptions> {
  const settings = { ...defaultBatchOptions, ...options }
  if (!Number.isInteger(settings.maxCount) || settings.maxCount < 1) {
    throw new RangeError(`batch maxCount must be a positive integer, got ${settings.maxCount}`)
  }
  if (!(settings.maxBytes > 0)) throw new RangeError(`batch maxBytes must be positive, got ${settings.maxBytes}`)
  if (!(settings.maxWaitMs >= 0)) throw new RangeError(`batch maxWaitMs must be ≥ 0, got ${settings.maxWaitMs}`)
  if (!flushModes.includes(settings.flush)) {
    throw new RangeError(`batch flush must be one of ${flushModes.join(', ')}, got ${JSON.stringify(settings.flush)}`)
  }
  if (!(settings.lingerMs >= 0 && settings.lingerMs <= settings.maxWaitMs)) {
    throw new RangeError(`batch lingerMs must be from 0 to maxWaitMs (${settings.maxWaitMs}), got ${settings.lingerMs}`)
  }
  return settings
}

/**
 * What a `when-idle` batch operator asks the writer behind it (src/streams/write-gate.ts). The writer counts a batch
 * as in flight from the moment it receives it, synchronously: right after a flush its partition is not ready.
 */
export interface FlushGate {
  /** Could a batch of this partition (`topic:partition`) start writing now? */
  ready(partitionKey: string): boolean
  /** Calls `listener` whenever a partition may have become ready (a write finished); returns the unsubscribe. */
  onChange(listener: () => void): () => void
}

interface Pending<T> {
  key: string
  topic: string
  partition: number
  items: Envelope<T>[]
  bytes: number
  timer: ReturnType<typeof setTimeout> | undefined
  /** `when-idle`: set until the batch is `lingerMs` old; then it flushes as soon as the writer is free for it. */
  linger: ReturnType<typeof setTimeout> | ReturnType<typeof setImmediate> | undefined
}

/**
 * Groups envelopes into batches per partition (Kafka's unit of ordering), flushing on count, bytes or time,
 * whichever comes first, and everything that is left when the source completes. Unlike `bufferTime` it never emits
 * an empty batch and it knows a byte limit. A batch never mixes partitions, so a sink can keep their order.
 *
 * With `flush: 'when-idle'` and the writer's `gate`, a partition's batch also flushes as soon as the writer could
 * start it (nothing of the partition in flight, a free slot) and the batch is `lingerMs` old: then, if the writer
 * is free, else when the write that kept it busy finishes. Under low load each message goes out almost at once;
 * under load the batches fill while the writes run (group commit). A timer alone cannot tell: it cuts small batches
 * while writes are in flight, each costing a transaction (docs/BENCHMARKS.md, memory-kv).
 */
export function batch<T>(options: BatchOptions = {}, gate?: FlushGate): OperatorFunction<Envelope<T>, Envelope<T>[]> {
  const { maxCount, maxBytes, maxWaitMs, flush: mode, lingerMs } = resolveBatchOptions(options)
  const whenIdle = mode === BatchFlushModes.WHEN_IDLE
  if (whenIdle && gate === undefined) {
    throw new RangeError(`batch flush "${mode}" needs the writer's gate (branch() passes it)`)
  }
  const timed = maxWaitMs > 0 && Number.isFinite(maxWaitMs)
  return (source) =>
    new Observable<Envelope<T>[]>((subscriber) => {
      // Open batches by `topic:partition`, in the order they were opened (the order they flush on completion).
      const pending = new Map<string, Pending<T>>()
      // The same batches by topic, then partition: found per message without building the `topic:partition` string.
      const byTopic = new Map<string, Array<Pending<T> | undefined>>()

      const cancel = (entry: Pending<T>) => {
        if (entry.timer) clearTimeout(entry.timer)
        if (entry.linger) {
          if (lingerMs === 0) clearImmediate(entry.linger as ReturnType<typeof setImmediate>)
          else clearTimeout(entry.linger as ReturnType<typeof setTimeout>)
        }
      }

      const flush = (key: string) => {
        const entry = pending.get(key)
        if (!entry) return
        pending.delete(key)
        const partitions = byTopic.get(entry.topic)
        if (partitions?.[entry.partition] === entry) partitions[entry.partition] = undefined
        cancel(entry)
        subscriber.next(entry.items)
      }

      const lingered = (entry: Pending<T>) => {
        entry.linger = undefined
        // Busy (its partition in flight, or every slot taken): the gate tells when that changes.
        if (gate?.ready(entry.key)) flush(entry.key)
      }

      // A write finished: flush, in the order they were opened, the batches whose partition can now be written.
      // Each flush makes the writer busier (it counts the batch at once), so this stops when the slots are taken.
      const stopWatching = whenIdle
        ? gate?.onChange(() => {
            for (const entry of pending.values()) {
              if (entry.linger === undefined && gate.ready(entry.key)) flush(entry.key)
            }
          })
        : undefined

      const clear = () => {
        stopWatching?.()
        for (const entry of pending.values()) cancel(entry)
        pending.clear()
        byTopic.clear()
      }

      const subscription = source.subscribe({
        next(envelope) {
          const { topic, partition } = envelope.origin
          let partitions = byTopic.get(topic)
          if (!partitions) {
            partitions = []
            byTopic.set(topic, partitions)
          }
          let entry = partitions[partition]
          if (!entry) {
            const key = envelope.partitionKey
            const opened: Pending<T> = {
              key,
              topic,
              partition,
              items: [],
              bytes: 0,
              timer: undefined,
              linger: undefined
            }
            entry = opened
            partitions[partition] = opened
            pending.set(key, opened)
            if (timed) opened.timer = setTimeout(() => flush(key), maxWaitMs)
            if (whenIdle) {
              opened.linger = lingerMs === 0 ? setImmediate(lingered, opened) : setTimeout(lingered, lingerMs, opened)
            }
          }
          entry.items.push(envelope)
          entry.bytes += envelope.size
          if (entry.items.length >= maxCount || entry.bytes >= maxBytes || maxWaitMs === 0) flush(entry.key)
        },
        error(error) {
          clear()
          subscriber.error(error)
        },
        complete() {
          stopWatching?.()
          for (const key of [...pending.keys()]) flush(key)
          subscriber.complete()
        }
      })

      return () => {
        subscription.unsubscribe()
        clear()
      }
    })
}
