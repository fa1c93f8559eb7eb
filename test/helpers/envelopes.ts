import { Delivery, type DeliveryHost, type DropReason, Envelope } from '../../src/streams/envelope.ts'

/** A DeliveryHost that records what happened to each delivery, for operator tests without a broker. */
export class RecordingHost implements DeliveryHost {
  readonly done_: Delivery[] = []
  readonly dead: Array<{ delivery: Delivery; error: unknown; stage: string }> = []
  readonly drops: Array<{ delivery: Delivery; reason: DropReason; stage: string }> = []
  /** Settle dead letters immediately (as a DLQ that acknowledged at once). */
  autoSettleDead = true

  done(delivery: Delivery): void {
    this.done_.push(delivery)
  }

  deadLetter(delivery: Delivery, error: unknown, stage: string): void {
    this.dead.push({ delivery, error, stage })
    if (this.autoSettleDead) delivery.settle()
  }

  dropped(delivery: Delivery, reason: DropReason, stage: string): void {
    this.drops.push({ delivery, reason, stage })
  }
}

let nextOffset = 0n

export function envelopeOf(
  host: DeliveryHost,
  value: Buffer | string,
  at: { topic?: string; partition?: number; offset?: bigint; key?: string } = {}
): Envelope<Buffer> {
  const raw = typeof value === 'string' ? Buffer.from(value) : value
  const delivery = new Delivery(host, {
    origin: {
      topic: at.topic ?? 't',
      partition: at.partition ?? 0,
      offset: at.offset ?? nextOffset++,
      leaderEpoch: 0,
      timestamp: BigInt(Date.now())
    },
    key: at.key === undefined ? undefined : Buffer.from(at.key),
    raw,
    headers: new Map()
  })
  return new Envelope(delivery, raw)
}
