/**
 * Summarizes a V8 CPU profile (`node --cpu-prof`) of a benchmark: self time by area of the runtime and the hottest
 * functions, optionally only inside a measured window (the `[monotonic µs A..B]` a benchmark prints with
 * SFM_BENCH_MARKS=1), so producing the test data and joining the group do not count.
 *
 *   node bench/lib/summarize-profile.ts /tmp/prof/CPU.*.cpuprofile [A B]
 */
import { readFile } from 'node:fs/promises'

interface CallFrame {
  functionName: string
  url: string
  lineNumber: number
}

interface ProfileNode {
  id: number
  callFrame: CallFrame
  children?: number[]
}

interface CpuProfile {
  nodes: ProfileNode[]
  startTime: number
  endTime: number
  samples: number[]
  timeDeltas: number[]
}

/** Areas, first match wins; the patterns test a frame's URL, or its function name for V8's pseudo-frames. */
const AREAS: ReadonlyArray<readonly [RegExp, string]> = [
  [/@platformatic\/kafka|dynamic-buffer/, 'kafka client (fetch, record decoding, stream)'],
  [/node:internal\/streams/, 'node streams (Readable buffer, async iterator)'],
  [/event_target|abort_controller/, 'AbortSignal listeners'],
  [/src\/sources\/kafka/, 'KafkaSource'],
  [/decode-json|node:internal\/encoding|^decodeUTF8$/, 'decodeJson (depth scan, UTF-8, JSON.parse)'],
  [/validate|ajv/, 'validate (ajv)'],
  [/dedupe/, 'dedupe'],
  [/commit-coordinator|offset-tracker/, 'offset tracking'],
  [/envelope/, 'Delivery / Envelope'],
  [/src\/streams\/runtime/, 'runtime pull loop'],
  [/in-flight-window/, 'in-flight window'],
  [/operators\/batch|write-batches|keyed-serial-queue|p-queue|filter-map/, 'batch, writer, filterMap'],
  [/rxjs/, 'rxjs plumbing'],
  [/src\/log\/|src\/sources\/embedded/, 'embedded log (SQLite: append, read, commit)'],
  [
    /@electric-sql\/pglite|^wasm:|^(wasm-to-js|js-to-wasm)$/,
    'PGlite (WebAssembly PostgreSQL and its JS protocol layer)'
  ],
  [/src\/sinks\/postgres|src\/memory\//, 'postgres sink + memory.latest / memory.audit records (JS)'],
  [/src\/sinks\/(vector|pgvector)|src\/embedders/, 'vector branch (JS: embedder, store)'],
  [/^\(garbage collector\)$/, 'GC'],
  [/^\(idle\)$/, 'idle (waiting for the broker)'],
  [/^(runMicrotasks|\(program\)|now|)$/, 'microtasks, builtins, performance.now'],
  [/./, 'other']
]

const shortUrl = (url: string) =>
  url.replace(/^file:\/\/.*?\/node_modules\//, '').replace(/^file:\/\/\/.*?\/(src|bench|test)\//, '$1/')

function areaOf(frame: CallFrame): string {
  const subject = frame.url || frame.functionName
  for (const [pattern, area] of AREAS) if (pattern.test(subject)) return area
  return 'other'
}

export function summarize(profile: CpuProfile, from = Number.NEGATIVE_INFINITY, to = Number.POSITIVE_INFINITY) {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]))
  const areas = new Map<string, number>()
  const functions = new Map<string, number>()
  let total = 0
  let time = profile.startTime
  for (let i = 0; i < profile.samples.length; i++) {
    time += profile.timeDeltas[i] ?? 0
    if (time < from || time > to) continue
    const node = nodes.get(profile.samples[i] ?? -1)
    if (!node) continue
    total++
    const area = areaOf(node.callFrame)
    areas.set(area, (areas.get(area) ?? 0) + 1)
    const f = node.callFrame
    const name = `${f.functionName || '(anonymous)'} ${shortUrl(f.url)}${f.url ? `:${f.lineNumber + 1}` : ''}`
    functions.set(name, (functions.get(name) ?? 0) + 1)
  }
  const ranked = (m: Map<string, number>) =>
    [...m].sort((a, b) => b[1] - a[1]).map(([name, n]) => ({ name, percent: (100 * n) / Math.max(1, total) }))
  return { samples: total, areas: ranked(areas), functions: ranked(functions) }
}

async function main(argv: string[]): Promise<number> {
  const [file, from, to] = argv
  if (!file) {
    process.stderr.write('usage: node bench/lib/summarize-profile.ts <file.cpuprofile> [fromMicros toMicros]\n')
    return 2
  }
  const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile
  const s = summarize(profile, from ? Number(from) : undefined, to ? Number(to) : undefined)
  const line = (p: { name: string; percent: number }) => `${p.percent.toFixed(1).padStart(5)}%  ${p.name}`
  process.stdout.write(`${s.samples} samples\n\nself time by area:\n`)
  process.stdout.write(`${s.areas.map(line).join('\n')}\n\nhottest functions (self):\n`)
  process.stdout.write(`${s.functions.slice(0, 30).map(line).join('\n')}\n`)
  return 0
}

if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code
    },
    (error: unknown) => {
      process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`)
      process.exitCode = 1
    }
  )
}
