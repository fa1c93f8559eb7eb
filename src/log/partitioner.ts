import { compatibilityPartitioner, type MessageToProduce } from '@platformatic/kafka'

/**
 * The partition of a keyed record: Kafka's default partitioner, `toPositive(murmur2(key)) % partitions` with
 * `toPositive(h) = h & 0x7fffffff`, as the Java client, kafka-python and kafkajs compute it — so a memory id lands
 * on the same partition number in the embedded log, on a cluster, and from any producer of another language.
 *
 * It is @platformatic/kafka's `compatibilityPartitioner`, not its `defaultPartitioner`: the latter uses
 * `murmur2(key) >>> 0`, which differs for every key with a negative hash (platformatic/kafka#121, fixed by adding
 * `compatibilityPartitioner` in #263). `createProducer` uses the same function for the same reason.
 */
export function partitionForKey(key: Buffer, partitions: number): number {
  return compatibilityPartitioner(NO_MESSAGE, key) % partitions
}

/** The partitioner ignores the message; it only needs the key bytes. */
const NO_MESSAGE = {} as MessageToProduce<Buffer, Buffer, Buffer, Buffer>
