import { isUtf8 } from 'node:buffer'
import { ErrorCodes, FatalError } from '../errors.ts'
import type { OutgoingMessage } from '../kafka/messages.ts'
import { DeadLetterHeaders } from '../streams/dead-letter.ts'
import type { LogAccess, LogRecord, PartitionOffsets } from './log.ts'

/**
 * Inspecting and redriving the dead-letter topic (`memory.dlq`): what `npm run dlq` runs, written to be called by
 * other front ends (a web console) with a `LogAccess` of their own.
 */

/** Headers a redriven record carries: where in the DLQ it came from, when, and how often it was redriven. */
export const RedriveHeaders = {
  DLQ_TOPIC: 'sfm.redrive.dlq.topic',
  DLQ_PARTITION: 'sfm.redrive.dlq.partition',
  DLQ_OFFSET: 'sfm.redrive.dlq.offset',
  AT: 'sfm.redrive.at',
  /** 1 on the first redrive; a letter that comes back to the DLQ keeps it, and the next redrive adds one. */
  COUNT: 'sfm.redrive.count'
} as const

export const defaultRedriveOptions = {
  maxRedrives: 3,
  groupPrefix: 'sfm-dlq-redrive',
  /** Bytes of letters held in memory and sent per step before the step's progress is committed. */
  windowBytes: 32 * 1024 * 1024
} as const

export interface DlqSelection {
  /** Only letters written at or after this time (ms since the epoch). */
  since?: number | undefined
  stage?: string | undefined
  errorCode?: string | undefined
}

/** A letter as shown to a person: where it is, its key, a preview of its value and its `sfm.*` headers. */
export interface LetterSample {
  readonly partition: number
  readonly offset: string
  readonly timestamp: string
  readonly key: string | null
  readonly valueBytes: number
  /** Up to 200 characters of the value (UTF-8), or `base64:` and its first bytes. */
  readonly value: string | null
  readonly headers: Record<string, string>
}

export interface InspectGroup {
  readonly stage: string
  readonly errorClass: string
  readonly errorCode: string
  readonly count: number
  readonly oldest: string
  readonly newest: string
  readonly samples: LetterSample[]
}

export interface InspectReport {
  readonly topic: string
  readonly total: number
  readonly oldest: string | null
  readonly newest: string | null
  /** By stage × error class (and code), largest first. */
  readonly groups: InspectGroup[]
  /** Records without `sfm.dlq.*` headers: not written by this framework's dead-letter target. */
  readonly unlabelled: { readonly count: number; readonly samples: LetterSample[] }
  /** Letters stored cut down (`sfm.dlq.truncated`): inspectable, never redriven. */
  readonly truncated: number
}

const text = (headers: ReadonlyMap<string, Buffer>, name: string) => headers.get(name)?.toString('utf8')
const iso = (ms: number) => new Date(ms).toISOString()

/** A letter is ours when it names its stage and its source topic. */
export function isLabelled(headers: ReadonlyMap<string, Buffer>): boolean {
  return headers.has(DeadLetterHeaders.STAGE) && headers.has(DeadLetterHeaders.SOURCE_TOPIC)
}

function preview(value: Buffer | null | undefined, max: number): string | null {
  if (value === null || value === undefined) return null
  if (isUtf8(value)) {
    const s = value.toString('utf8')
    return s.length > max ? `${s.slice(0, max)}…` : s
  }
  return `base64:${value.subarray(0, Math.ceil((max * 3) / 4)).toString('base64')}`
}

export function sampleOf(record: LogRecord, valueChars = 200): LetterSample {
  const headers: Record<string, string> = {}
  for (const [k, v] of record.headers) {
    if (k.startsWith('sfm.dlq.') || k.startsWith('sfm.redrive.')) headers[k] = v.toString('utf8')
  }
  return {
    partition: record.partition,
    offset: String(record.offset),
    timestamp: iso(record.timestamp),
    key: preview(record.key, 200),
    valueBytes: record.value?.length ?? 0,
    value: preview(record.value, valueChars),
    headers
  }
}

const matches = (headers: ReadonlyMap<string, Buffer>, selection: DlqSelection) =>
  (selection.stage === undefined || text(headers, DeadLetterHeaders.STAGE) === selection.stage) &&
  (selection.errorCode === undefined || text(headers, DeadLetterHeaders.ERROR_CODE) === selection.errorCode)

const wholeTopic = (partitions: readonly PartitionOffsets[]) =>
  partitions.map((p) => ({ partition: p.partition, from: p.start, to: p.end }))

/**
 * Counts the letters of `topic` by stage × error class, with their oldest and newest time and up to `samples`
 * letters of each. Reads only.
 */
export async function inspectDlq(
  access: LogAccess,
  options: DlqSelection & { topic: string; samples?: number }
): Promise<InspectReport> {
  const samples = options.samples ?? 3
  const partitions = await access.partitions(options.topic)
  const ranges =
    options.since === undefined
      ? wholeTopic(partitions)
      : await fromTime(access, options.topic, partitions, options.since)
  const groups = new Map<
    string,
    {
      stage: string
      errorClass: string
      errorCode: string
      count: number
      oldest: number
      newest: number
      samples: LetterSample[]
    }
  >()
  const unlabelled = { count: 0, samples: [] as LetterSample[] }
  let total = 0
  let truncated = 0
  let oldest = Number.POSITIVE_INFINITY
  let newest = Number.NEGATIVE_INFINITY
  await access.scan(options.topic, ranges, (record) => {
    if (options.since !== undefined && record.timestamp < options.since) return
    const labelled = isLabelled(record.headers)
    if (labelled && !matches(record.headers, options)) return
    if (!labelled && (options.stage !== undefined || options.errorCode !== undefined)) return
    total++
    oldest = Math.min(oldest, record.timestamp)
    newest = Math.max(newest, record.timestamp)
    if (!labelled) {
      unlabelled.count++
      if (unlabelled.samples.length < samples) unlabelled.samples.push(sampleOf(record))
      return
    }
    if (record.headers.has(DeadLetterHeaders.TRUNCATED)) truncated++
    const stage = text(record.headers, DeadLetterHeaders.STAGE) ?? ''
    const errorClass = text(record.headers, DeadLetterHeaders.ERROR_CLASS) ?? '?'
    const errorCode = text(record.headers, DeadLetterHeaders.ERROR_CODE) ?? '?'
    const id = JSON.stringify([stage, errorClass, errorCode])
    let group = groups.get(id)
    if (!group) {
      group = {
        stage,
        errorClass,
        errorCode,
        count: 0,
        oldest: record.timestamp,
        newest: record.timestamp,
        samples: []
      }
      groups.set(id, group)
    }
    group.count++
    group.oldest = Math.min(group.oldest, record.timestamp)
    group.newest = Math.max(group.newest, record.timestamp)
    if (group.samples.length < samples) group.samples.push(sampleOf(record))
  })
  return {
    topic: options.topic,
    total,
    oldest: total > 0 ? iso(oldest) : null,
    newest: total > 0 ? iso(newest) : null,
    groups: [...groups.values()]
      .sort((a, b) => b.count - a.count || a.stage.localeCompare(b.stage))
      .map((g) => ({ ...g, oldest: iso(g.oldest), newest: iso(g.newest) })),
    unlabelled,
    truncated
  }
}

async function fromTime(access: LogAccess, topic: string, partitions: readonly PartitionOffsets[], since: number) {
  const at = await access.offsetsForTime(topic, since)
  return partitions.map((p) => {
    const from = at.get(p.partition) ?? p.end
    // biome-ignore lint/complexity/useMathMinMax: offsets are bigints
    return { partition: p.partition, from: from < p.start ? p.start : from, to: p.end }
  })
}

export interface RedriveOptions extends DlqSelection {
  /** The dead-letter topic. */
  topic: string
  dryRun?: boolean
  /** A letter already redriven this many times is refused (default 3). */
  maxRedrives?: number
  /** The redrive groups are `<prefix>.<dlq topic>.<stage>.<error code>` (default `sfm-dlq-redrive`). */
  groupPrefix?: string
  windowBytes?: number
  /** Called after each step that was sent and committed. */
  onProgress?: (redriven: number, selected: number) => void
  /** Time of the redrive (default now), for the `sfm.redrive.at` header. */
  now?: () => Date
}

export interface RefusedLetter {
  readonly partition: number
  readonly offset: string
  readonly reason: string
}

export interface RedriveReport {
  readonly topic: string
  readonly dryRun: boolean
  /** Letters of the selection (stage, error code) in the DLQ. */
  readonly matched: number
  /** Sent back (or, on a dry run, that would be). */
  readonly redriven: number
  /** Redriven by an earlier run (below its group's committed offset). */
  readonly alreadyRedriven: number
  /** Older than `since`: passed over, for good, by this selection's groups. */
  readonly passedOver: number
  /** Too often redriven, or stored cut down: left in the DLQ. */
  readonly refused: RefusedLetter[]
  /** Source topic → letters sent back to it. */
  readonly targets: Record<string, number>
  /** The consumer groups that remember this selection's progress. */
  readonly groups: string[]
}

interface Candidate {
  readonly partition: number
  readonly offset: bigint
  readonly group: string
  readonly target: string
  readonly bytes: number
}

/** The consumer group that remembers how far the letters of one stage and error code were redriven. */
export function redriveGroup(prefix: string, topic: string, stage: string, errorCode: string): string {
  return `${prefix}.${topic}.${stage}.${errorCode}`
}

/**
 * Sends the selected letters back to the source topic named in their headers: original key, value and headers (less
 * `sfm.dlq.*`), plus `sfm.redrive.*`. What was redriven is remembered per stage × error code in a consumer group
 * (`redriveGroup`) whose committed offset, per DLQ partition, says "every letter of this class below here was
 * redriven or deliberately passed over", so a second run redrives nothing twice, whatever its filters; progress is
 * committed after each sent step (a crash between a send and its commit redrives that step again: at least once).
 *
 * Refused before anything is sent (FatalError, nothing changed): a selected record without `sfm.dlq.*` headers, a
 * source topic that no longer exists. Left in the DLQ and reported: letters redriven `maxRedrives` times already,
 * and letters stored cut down (`sfm.dlq.truncated`), whose value is not the original.
 */
export async function redriveDlq(access: LogAccess, options: RedriveOptions): Promise<RedriveReport> {
  const maxRedrives = options.maxRedrives ?? defaultRedriveOptions.maxRedrives
  const prefix = options.groupPrefix ?? defaultRedriveOptions.groupPrefix
  const windowBytes = options.windowBytes ?? defaultRedriveOptions.windowBytes
  const topic = options.topic
  const partitions = await access.partitions(topic)
  const ranges = wholeTopic(partitions)

  // Pass 1: what the DLQ holds (headers only are kept).
  const seen: {
    partition: number
    offset: bigint
    timestamp: number
    group: string
    target: string
    count: number
    truncated: boolean
    bytes: number
  }[] = []
  const foreign: LogRecord[] = []
  await access.scan(topic, ranges, (record) => {
    if (!isLabelled(record.headers)) {
      const inWindow = options.since === undefined || record.timestamp >= options.since
      if (inWindow && options.stage === undefined && options.errorCode === undefined) foreign.push(record)
      return
    }
    if (!matches(record.headers, options)) return
    const stage = text(record.headers, DeadLetterHeaders.STAGE)!
    const code = text(record.headers, DeadLetterHeaders.ERROR_CODE) ?? 'UNKNOWN'
    let headerBytes = 0
    for (const [k, v] of record.headers) headerBytes += k.length + v.length
    seen.push({
      partition: record.partition,
      offset: record.offset,
      timestamp: record.timestamp,
      group: redriveGroup(prefix, topic, stage, code),
      target: text(record.headers, DeadLetterHeaders.SOURCE_TOPIC)!,
      count: Number(text(record.headers, RedriveHeaders.COUNT) ?? 0) || 0,
      truncated: record.headers.has(DeadLetterHeaders.TRUNCATED),
      bytes: (record.key?.length ?? 0) + (record.value?.length ?? 0) + headerBytes
    })
  })
  if (foreign.length > 0) {
    const first = foreign[0]!
    throw new FatalError(
      `${topic} partition ${first.partition} offset ${first.offset}${foreign.length > 1 ? ` and ${foreign.length - 1} more` : ''} ` +
        `(written ${iso(first.timestamp)}) has no sfm.dlq.* headers, so its source topic is unknown: leave it out ` +
        `with --since after ${iso(Math.max(...foreign.map((r) => r.timestamp)))} or with --stage / --error-code ` +
        '(nothing was redriven)',
      { code: ErrorCodes.CONFIG, details: { topic } }
    )
  }

  const groups = [...new Set(seen.map((s) => s.group))].sort()
  const watermarks = new Map<string, Map<number, bigint>>()
  for (const group of groups) watermarks.set(group, await access.committed(group, topic))

  let alreadyRedriven = 0
  let passedOver = 0
  const refused: RefusedLetter[] = []
  const selected: Candidate[] = []
  for (const s of seen) {
    if (s.offset < (watermarks.get(s.group)!.get(s.partition) ?? -1n)) alreadyRedriven++
    else if (options.since !== undefined && s.timestamp < options.since) passedOver++
    else if (s.truncated) {
      refused.push({ partition: s.partition, offset: String(s.offset), reason: 'stored cut down (sfm.dlq.truncated)' })
    } else if (s.count >= maxRedrives) {
      refused.push({
        partition: s.partition,
        offset: String(s.offset),
        reason: `redriven ${s.count} times already (--max-redrives ${maxRedrives})`
      })
    } else selected.push(s)
  }

  const targets: Record<string, number> = {}
  for (const s of selected) targets[s.target] = (targets[s.target] ?? 0) + 1
  for (const target of Object.keys(targets)) {
    if (!(await access.topicExists(target))) {
      throw new FatalError(
        `source topic ${target} of ${targets[target]} letter(s) no longer exists: recreate it (\`npm run topics -- ` +
          'apply`) or leave those letters out with --stage / --error-code (nothing was redriven)',
        { code: ErrorCodes.CONFIG, details: { topic: target } }
      )
    }
  }
  const report = {
    topic,
    dryRun: options.dryRun === true,
    matched: seen.length,
    alreadyRedriven,
    passedOver,
    refused,
    targets,
    groups
  }
  if (options.dryRun) return { ...report, redriven: selected.length }

  // Pass 2, in steps of at most `windowBytes` per partition: read the step's letters, send them, commit.
  const producer = access.producer('sfm-dlq-redrive')
  const now = options.now ?? (() => new Date())
  let redriven = 0
  try {
    for (const { partition } of partitions) {
      const mine = selected.filter((s) => s.partition === partition)
      for (let i = 0; i < mine.length; ) {
        let bytes = 0
        let j = i
        while (j < mine.length && (j === i || bytes + mine[j]!.bytes <= windowBytes)) bytes += mine[j++]!.bytes
        const step = mine.slice(i, j)
        const wanted = new Set(step.map((s) => s.offset))
        const messages: OutgoingMessage[] = []
        const at = now().toISOString()
        await access.scan(topic, [{ partition, from: step[0]!.offset, to: step.at(-1)!.offset + 1n }], (record) => {
          if (wanted.has(record.offset)) messages.push(redriven_(record, topic, at))
        })
        if (messages.length !== step.length) {
          throw new FatalError(
            `${topic} partition ${partition}: ${step.length - messages.length} letter(s) vanished between the two ` +
              'reads (retention?): run the redrive again',
            { code: ErrorCodes.INTERNAL }
          )
        }
        await producer.send(messages)
        // Every letter of these groups below the step's last one was redriven, or deliberately passed over.
        const progress = new Map<string, bigint>()
        for (const s of step) progress.set(s.group, s.offset + 1n)
        for (const [group, offset] of progress) await access.commit(group, topic, new Map([[partition, offset]]))
        redriven += step.length
        options.onProgress?.(redriven, selected.length)
        i = j
      }
    }
    // The whole partition was looked at for each group of the selection.
    for (const group of groups) {
      const ends = new Map<number, bigint>()
      for (const p of partitions) {
        const current = watermarks.get(group)!.get(p.partition) ?? -1n
        if (p.end > current) ends.set(p.partition, p.end)
      }
      await access.commit(group, topic, ends)
    }
  } finally {
    await producer.close()
  }
  return { ...report, redriven }
}

/** The record to send back: the original key, value and headers, with `sfm.redrive.*` instead of `sfm.dlq.*`. */
function redriven_(record: LogRecord, topic: string, at: string): OutgoingMessage {
  const headers = new Map<string, Buffer>()
  for (const [k, v] of record.headers) {
    if (!k.startsWith('sfm.dlq.') && !k.startsWith('sfm.redrive.')) headers.set(k, v)
  }
  const count = (Number(text(record.headers, RedriveHeaders.COUNT) ?? 0) || 0) + 1
  headers.set(RedriveHeaders.DLQ_TOPIC, Buffer.from(topic))
  headers.set(RedriveHeaders.DLQ_PARTITION, Buffer.from(String(record.partition)))
  headers.set(RedriveHeaders.DLQ_OFFSET, Buffer.from(String(record.offset)))
  headers.set(RedriveHeaders.AT, Buffer.from(at))
  headers.set(RedriveHeaders.COUNT, Buffer.from(String(count)))
  return {
    topic: text(record.headers, DeadLetterHeaders.SOURCE_TOPIC)!,
    ...(record.key === undefined ? {} : { key: record.key }),
    value: record.value,
    headers
  }
}
