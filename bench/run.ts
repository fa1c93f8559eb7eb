/**
 * `npm run bench -- <name> [args]`: runs the benchmark `bench/<name>.ts` and prints its result as the LAST stdout
 * line (one JSON object with its figures and `ratio`). Progress goes to stderr. Without a name (or with --help) it
 * lists the benchmarks. See docs/BENCHMARKS.md.
 *
 * Exit codes: 0 measured, 1 the benchmark failed, 2 usage error (bad name or arguments) or a service it needs is not
 * configured.
 */
import { readdir } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { ErrorCodes, errorMessage, SfmError } from '../src/errors.ts'
import { type BenchmarkModule, isBenchmarkModule, type Requirement, Requirements } from './lib/benchmark.ts'

const BENCH_DIR = dirname(fileURLToPath(import.meta.url))
const NAME = /^[a-z0-9][a-z0-9-]*$/

/** How to get each service, for the message printed when its variable is missing. */
const HOW_TO_GET: Record<Requirement, string> = {
  [Requirements.KAFKA]: 'the Kafka broker of the dev stack',
  [Requirements.POSTGRES]: 'the PostgreSQL server of the dev stack'
}

async function benchmarkNames(): Promise<string[]> {
  const entries = await readdir(BENCH_DIR, { withFileTypes: true })
  return entries
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && e.name !== basename(fileURLToPath(import.meta.url)))
    .map((e) => e.name.slice(0, -'.ts'.length))
    .filter((n) => NAME.test(n))
    .sort()
}

async function load(name: string): Promise<BenchmarkModule> {
  const module: unknown = await import(pathToFileURL(join(BENCH_DIR, `${name}.ts`)).href)
  if (!isBenchmarkModule(module)) {
    throw new Error(`bench/${name}.ts must export description, usage, requires and run(args)`)
  }
  return module
}

async function list(): Promise<string> {
  const lines = [
    'Usage: npm run bench -- <name> [args]      (npm run bench -- <name> --help for its options)',
    '',
    'Benchmarks:'
  ]
  for (const name of await benchmarkNames()) {
    const m = await load(name)
    lines.push(`  ${name.padEnd(12)} ${m.description}  [needs ${m.requires.join(', ') || 'nothing'}]`)
  }
  lines.push(
    '',
    'Each prints progress on stderr and, as its last stdout line, one JSON object with its figures and "ratio".',
    'See docs/BENCHMARKS.md.'
  )
  return `${lines.join('\n')}\n`
}

function missingServices(requires: readonly Requirement[], env: NodeJS.ProcessEnv = process.env): Requirement[] {
  return requires.filter((variable) => !env[variable]?.trim())
}

function servicesHint(name: string, missing: readonly Requirement[]): string {
  return [
    `bench ${name} needs ${missing.map((v) => `${v} (${HOW_TO_GET[v]})`).join(' and ')}, which is not set.`,
    'Start the dev stack and export its variables, then run the benchmark again:',
    '  npm run stack -- up',
    '  set -a; eval "$(npm run -s stack -- env)"; set +a',
    `  npm run bench -- ${name}`,
    ''
  ].join('\n')
}

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(await list())
    return 0
  }
  const names = await benchmarkNames()
  if (!NAME.test(name) || !names.includes(name)) {
    process.stderr.write(`unknown benchmark "${name}"\n\n${await list()}`)
    return 2
  }
  const bench = await load(name)
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(bench.usage.endsWith('\n') ? bench.usage : `${bench.usage}\n`)
    return 0
  }
  const missing = missingServices(bench.requires)
  if (missing.length > 0) {
    process.stderr.write(servicesHint(name, missing))
    return 2
  }
  const result = await bench.run(args)
  process.stdout.write(`${JSON.stringify(result)}\n`)
  return 0
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (error: unknown) => {
    process.stderr.write(`bench failed: ${errorMessage(error)}\n`)
    if (error instanceof Error && error.stack && process.env.BENCH_DEBUG) process.stderr.write(`${error.stack}\n`)
    // Bad arguments and configuration (FatalError with code SFM_CONFIG) are usage errors, like the harness's own.
    process.exitCode = error instanceof SfmError && error.code === ErrorCodes.CONFIG ? 2 : 1
  }
)
