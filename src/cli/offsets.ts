import { parseArgs } from 'node:util'
import { describeError } from '../errors.ts'
import { openLogAccess } from '../ops/log.ts'
import { groupOffsets, type ResetTarget, resetGroupOffsets } from '../ops/offsets.ts'
import { ExitCodes, type Io, parseCommandLine, rfc3339Ms, UsageError } from './io.ts'
import { useServices } from './services.ts'

/** The `offsets` and `reset-offsets` commands of `npm run topics` (see its --help). */
export const OFFSETS_COMMANDS = ['offsets', 'reset-offsets'] as const

const VALUE_FLAGS = new Set([
  '--group',
  '--to',
  '--topic',
  '--data-dir',
  '--prefix',
  '--partitions',
  '--replication-factor'
])

/** Whether the command line's command (its first positional argument) is one of OFFSETS_COMMANDS. */
export function isOffsetsCommand(argv: readonly string[]): boolean {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (VALUE_FLAGS.has(arg)) i++
    else if (!arg.startsWith('-')) return (OFFSETS_COMMANDS as readonly string[]).includes(arg)
  }
  return false
}

function parse(argv: string[]) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      group: { type: 'string' },
      to: { type: 'string' },
      topic: { type: 'string', multiple: true },
      'dry-run': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      'data-dir': { type: 'string' }
    }
  })
  if (positionals.length !== 1) throw new UsageError('expected exactly one command')
  const command = positionals[0] as (typeof OFFSETS_COMMANDS)[number]
  if (!values.group) throw new UsageError(`${command}: --group is required`)
  if (values['data-dir'] === '') throw new UsageError('--data-dir must not be empty')
  let to: ResetTarget | undefined
  if (command === 'reset-offsets') {
    if (!values.to) throw new UsageError('reset-offsets: --to earliest|latest|<RFC 3339 time> is required')
    if (values.to === 'earliest' || values.to === 'latest') to = values.to
    else {
      const time = rfc3339Ms(values.to)
      if (time === undefined) {
        throw new UsageError(`--to: expected earliest, latest or an RFC 3339 time, got "${values.to}"`)
      }
      to = { time }
    }
  } else if (values.to !== undefined || values['dry-run']) {
    throw new UsageError('--to and --dry-run are for reset-offsets')
  }
  return {
    command,
    group: values.group,
    to,
    topics: values.topic,
    dryRun: values['dry-run'],
    json: values.json,
    dataDir: values['data-dir']
  }
}

/** Runs `offsets` / `reset-offsets`; on Kafka when KAFKA_BROKERS is set, else on the embedded log. */
export async function offsetsMain(argv: string[], env: NodeJS.ProcessEnv, io: Io, localStack = false): Promise<number> {
  const parsed = parseCommandLine('topics', '', io, () => parse(argv))
  if (typeof parsed === 'number') return parsed
  let access: ReturnType<typeof openLogAccess> | undefined
  try {
    const services = { localStack, dataDir: parsed.dataDir, names: ['KAFKA_BROKERS'] as const }
    if (!(await useServices('topics', env, io, services))) return ExitCodes.USAGE
    access = openLogAccess({ env, ...(parsed.dataDir === undefined ? {} : { dataDir: parsed.dataDir }) })
    const topics = parsed.topics ? { topics: parsed.topics } : {}
    if (parsed.command === 'offsets') {
      const report = await groupOffsets(access, parsed.group, topics)
      if (parsed.json) {
        io.out(JSON.stringify(report, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)))
        return ExitCodes.OK
      }
      io.out(
        `group ${report.groupId} on ${access.description}: ` +
          (report.members.length === 0 ? 'no live members' : `live members: ${report.members.join('; ')}`)
      )
      const rows = [
        ['TOPIC', 'PARTITION', 'COMMITTED', 'START', 'END', 'LAG'],
        ...report.partitions.map((p) => [
          p.topic,
          String(p.partition),
          p.committed === null ? '-' : String(p.committed),
          String(p.start),
          String(p.end),
          String(p.lag)
        ])
      ]
      const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
      for (const row of rows)
        io.out(
          row
            .map((cell, i) => cell.padEnd(widths[i]!))
            .join('  ')
            .trimEnd()
        )
      const lag = report.partitions.reduce((sum, p) => sum + p.lag, 0n)
      io.out(`total lag ${lag}`)
      return ExitCodes.OK
    }
    const result = await resetGroupOffsets(access, parsed.group, parsed.to!, { ...topics, dryRun: parsed.dryRun })
    if (parsed.json) {
      io.out(JSON.stringify(result, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)))
    } else {
      for (const r of result.resets) {
        io.out(`${r.topic} partition ${r.partition}: ${r.from === null ? '-' : String(r.from)} -> ${r.to}`)
      }
    }
    io.err(
      result.applied
        ? `topics: group ${parsed.group} reset on ${result.resets.length} partition(s)`
        : 'topics: dry run; nothing was changed'
    )
    return ExitCodes.OK
  } catch (error) {
    io.err(`topics: ${describeError(error)}`)
    return ExitCodes.FAILED
  } finally {
    await access?.close()
  }
}
