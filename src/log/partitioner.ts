import { kafkaPartitioner } from '../kafka/murmur2.ts'

/**
 * The partition of a keyed record: Kafka's default partitioner, `toPositive(murmur2(key)) % partitions` with
 * `toPositive(h) = h & 0x7fffffff`, as the Java client, kafka-python and kafkajs compute it — so a memory id lands
 * on the same partition number in the embedded log, on a cluster, and from any producer of another language.
 * `createProducer` uses the same function (src/kafka/murmur2.ts).
 */
export function partitionForKey(key: Buffer, partitions: number): number {
  return kafkaPartitioner(undefined, key) % partitions
}
