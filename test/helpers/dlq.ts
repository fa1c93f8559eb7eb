import { ErrorCodes, PoisonError } from '../../src/errors.ts'
import type { OutgoingMessage } from '../../src/kafka/messages.ts'
import { buildDeadLetter } from '../../src/streams/dead-letter.ts'
import { Delivery, type DeliveryHost } from '../../src/streams/envelope.ts'
import { type RunResult, runNodeScript } from './cli.ts'

const host: DeliveryHost = { done() {}, deadLetter() {} }

export interface LetterSpec {
  readonly key: string
  readonly value: string
  readonly stage: string
  readonly code?: (typeof ErrorCodes)[keyof typeof ErrorCodes]
  /** The topic the record came from (its `sfm.dlq.source.topic`). */
  readonly source: string
  /** Original headers of the record (kept by the DLQ, and by a redrive). */
  readonly headers?: Record<string, string>
}

/** A dead letter as the runtime writes it (buildDeadLetter), as a message for `dlqTopic`. */
export function letter(dlqTopic: string, spec: LetterSpec, offset = 0n): OutgoingMessage {
  const delivery = new Delivery(host, {
    origin: { topic: spec.source, partition: 0, offset, leaderEpoch: 0, timestamp: BigInt(Date.now()) },
    key: Buffer.from(spec.key),
    raw: Buffer.from(spec.value),
    headers: new Map(Object.entries(spec.headers ?? {}).map(([k, v]) => [k, Buffer.from(v)]))
  })
  const error = new PoisonError(`bad ${spec.key}`, { code: spec.code ?? ErrorCodes.VALIDATION })
  const dl = buildDeadLetter(delivery, error, spec.stage, 'memory')
  return { topic: dlqTopic, key: dl.key, value: dl.value, headers: dl.headers }
}

export type CliRun = RunResult

/** Runs a CLI of src/cli in a child process. */
export function runCli(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<CliRun> {
  return runNodeScript(file, args, env)
}

/** stderr's lines less the first one every command prints (`<command>: using … (why)`, src/config.ts chooseStack). */
export function linesAfterStackChoice(stderr: string): string[] {
  const lines = stderr.trim().split('\n')
  if (!/^[a-z-]+: using /.test(lines[0] ?? '')) throw new Error(`no "using …" line first: ${stderr}`)
  return lines.slice(1)
}
