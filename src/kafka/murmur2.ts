/**
 * Kafka's murmur2 (org.apache.kafka.common.utils.Utils#murmur2), on 32-bit integers. @platformatic/kafka's port
 * computes it in BigInt arithmetic, a cost on every keyed record the producer sends (docs/BENCHMARKS.md, peers);
 * this gives the same values (Kafka's own test vectors, and the library's on random bytes, are checked in
 * test/kafka/murmur2.test.ts).
 */
export function murmur2(data: Uint8Array): number {
  const m = 0x5bd1e995
  const length = data.length
  let h = 0x9747b28c ^ length
  const whole = length - (length & 3)
  let i = 0
  for (; i < whole; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24)
    k = Math.imul(k, m)
    k ^= k >>> 24
    k = Math.imul(k, m)
    h = Math.imul(h, m) ^ k
  }
  // The last 1–3 bytes, as Java's switch falling through from case 3 to case 1.
  const tail = length & 3
  if (tail > 0) {
    if (tail === 3) h ^= data[i + 2]! << 16
    if (tail >= 2) h ^= data[i + 1]! << 8
    h ^= data[i]!
    h = Math.imul(h, m)
  }
  h ^= h >>> 13
  h = Math.imul(h, m)
  h ^= h >>> 15
  return h | 0
}

/**
 * Kafka's default partitioner for a keyed record, `toPositive(murmur2(key))` (modulo the partition count is the
 * caller's), as the Java client, kafka-python and kafkajs compute it. Not the library's `defaultPartitioner`
 * (`murmur2 >>> 0`), which differs for every key with a negative hash (platformatic/kafka#121). An unkeyed record
 * gets 0, as with the library's `compatibilityPartitioner`.
 */
export function kafkaPartitioner(_message: unknown, key: Buffer | undefined): number {
  return key === undefined ? 0 : murmur2(key) & 0x7fffffff
}
