import { topicName } from '../config.ts'
import { createProducer } from '../kafka/producer.ts'
import { demoHistory } from './events.ts'
import { DemoCollector } from './report.ts'

export { type DemoHistory, demoHistory } from './events.ts'
export { DemoCollector, type DemoReport, formatReport } from './report.ts'

const SEND_CHUNK = 1000

/**
 * `npm start -- topologies/memory.ts --demo N`: sends the demo history (events.ts) to `memory.events` through the
 * same producer as everything else (embedded log, or Kafka when KAFKA_BROKERS is set), and returns a collector for
 * the run's report. The history is deterministic, so a second run re-sends the same events: they are consumed from
 * the committed offsets on, and all come out as duplicates.
 */
export async function feedDemo(count: number, env: NodeJS.ProcessEnv = process.env): Promise<DemoCollector> {
  const history = demoHistory(count)
  const producer = createProducer({ clientId: 'sfm-demo' })
  const topic = topicName('memory.events', env)
  try {
    for (let i = 0; i < history.messages.length; i += SEND_CHUNK) {
      await producer.send(history.messages.slice(i, i + SEND_CHUNK).map((m) => ({ topic, key: m.key, value: m.value })))
    }
  } finally {
    await producer.close()
  }
  return new DemoCollector()
}
