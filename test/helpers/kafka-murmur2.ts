/** murmur2 values from Apache Kafka's own tests (clients/src/test/java/org/apache/kafka/common/utils/UtilsTest). */
export const KAFKA_MURMUR2 = [
  ['21', -973932308],
  ['foobar', -790332482],
  ['a-little-bit-long-string', -985981536],
  ['a-little-bit-longer-string', -1486304829],
  ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
  ['abc', 479470107]
] as const
