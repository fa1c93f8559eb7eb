import { Observable, type OperatorFunction } from 'rxjs'
import type { Envelope } from '../envelope.ts'

export interface BatchOptions {
  /** Flush when a batch holds this many messages. */
  maxCount?: number
  /** Flush when a batch holds this many bytes (wire size of the source messages). */
  maxBytes?: number
  /** Flush a non-empty batch this long after its first message arrived. */
  maxWaitMs?: number
}

export const defaultBatchOptions = {
  maxCount: 500,
  maxBytes: 4 * 1024 * 1024,
  maxWaitMs: 50
} satisfies Required<BatchOptions>

export function resolveBatchOptions(options: BatchOptions = {}): Required<BatchOptions> {
  const settings = { ...defaultBatchOptions, ...options }
  if (!Number.isInteger(settings.maxCount) || settings.maxCount < 1) {
    throw new RangeError(`batch maxCount must be a positive integer, got ${settings.maxCount}`)
  }
  if (!(settings.maxBytes > 0)) throw new RangeError(`batch maxBytes must be positive, got ${settings.maxBytes}`)
  if (!(settings.maxWaitMs >= 0)) throw new RangeError(`batch maxWaitMs must be ≥ 0, got ${settings.maxWaitMs}`)
  return settings
}

interface Pending<T> {
  key: string
  topic: string
  partition: number
  items: Envelope<T>[]
  bytes: number
  timer: ReturnType<typeof setTimeout> | undefined
}

/**
 * Groups envelopes into batches per partition (Kafka's unit of ordering), flushing on count, bytes or time,
 * whichever comes first, and everything that is left when the source completes. Unlike `bufferTime` it never emits
 * an empty batch and it knows a byte limit. A batch never mixes partitions, so a sink can keep their order.
 */
export function batch<T>(options: BatchOptions = {}): OperatorFunction<Envelope<T>, Envelope<T>[]> {
  const { maxCount, maxBytes, maxWaitMs } = resolveBatchOptions(options)
  return (source) =>
    new Observable<Envelope<T>[]>((subscriber) => {
      // Open batches by `topic:partition`, in the order they were opened (the order they flush on completion).
      const pending = new Map<string, Pending<T>>()
      // The same batches by topic, then partition: found per message without building the `topic:partition` string.
      const byTopic = new Map<string, Array<Pending<T> | undefined>>()

      const flush = (key: string) => {
        const entry = pending.get(key)
        if (!entry) return
        pending.delete(key)
        const partitions = byTopic.get(entry.topic)
        if (partitions?.[entry.partition] === entry) partitions[entry.partition] = undefined
        if (entry.timer) clearTimeout(entry.timer)
        subscriber.next(entry.items)
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
            const opened: Pending<T> = { key, topic, partition, items: [], bytes: 0, timer: undefined }
            entry = opened
            partitions[partition] = opened
            pending.set(key, opened)
            if (maxWaitMs > 0 && Number.isFinite(maxWaitMs)) opened.timer = setTimeout(() => flush(key), maxWaitMs)
          }
          entry.items.push(envelope)
          entry.bytes += envelope.size
          if (entry.items.length >= maxCount || entry.bytes >= maxBytes || maxWaitMs === 0) flush(entry.key)
        },
        error(error) {
          for (const entry of pending.values()) if (entry.timer) clearTimeout(entry.timer)
          pending.clear()
          byTopic.clear()
          subscriber.error(error)
        },
        complete() {
          for (const key of [...pending.keys()]) flush(key)
          subscriber.complete()
        }
      })

      return () => {
        subscription.unsubscribe()
        for (const entry of pending.values()) if (entry.timer) clearTimeout(entry.timer)
        pending.clear()
        byTopic.clear()
      }
    })
}
