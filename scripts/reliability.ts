/**
 * `npm run reliability -- <scenario> [--cycles N]`: the long reliability loops, at full size. CI runs the same
 * tests at a CI-sized default (3 cycles) as part of `npm test`.
 *
 *   kill-9         kill -9 the memory runner N times during load (default 50), then check the table equals the
 *                  fold of the log: 0 lost, 0 regressed, 0 duplicate effects
 *   relay-kill-9   the same on a plain relay topology: every message reaches the sink
 *   pg-outage      stop PostgreSQL for --seconds S (default 60) under load
 *   broker-restart kill -9 the Kafka broker under load and start it again, --cycles N times (default 5) for each
 *                  downtime in --seconds (default 5,60: five 5 s outages, then five 60 s ones); the runner must never
 *                  exit, the table must equal the fold, nothing may be dead-lettered
 */
import { spawn } from 'node:child_process'
import { parseArgs } from 'node:util'

const SCENARIOS = {
  'kill-9': { file: 'test/topologies/memory-kill-9.test.ts', env: (n: number) => ({ SFM_KILL_CYCLES: String(n) }) },
  'relay-kill-9': { file: 'test/cli/kill-9.test.ts', env: (n: number) => ({ SFM_KILL_CYCLES: String(n) }) },
  'pg-outage': {
    file: 'test/topologies/memory-outage.test.ts',
    env: (s: number) => ({ SFM_PG_OUTAGE_MS: String(s * 1000) })
  },
  'broker-restart': {
    file: 'test/topologies/memory-broker-restart.test.ts',
    env: (n: number, seconds: readonly number[] = [5, 60]) => ({
      SFM_BROKER_DOWN_MS: seconds.flatMap((s) => Array<number>(n).fill(s * 1000)).join(','),
      // Enough backlog that every cycle kills the broker while the runner is working.
      SFM_BROKER_IDS: String(Math.max(4_000, 1_000 * n * seconds.length))
    })
  }
} as const

const USAGE = `Usage: npm run reliability -- <kill-9|relay-kill-9|pg-outage|broker-restart> [--cycles N] [--seconds S[,S…]]
Runs one reliability test at full size through \`npm test\` (which starts a private stack when none is configured).
`

const { values, positionals } = parseArgs({
  options: { cycles: { type: 'string' }, seconds: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  allowPositionals: true
})
const name = positionals[0] as keyof typeof SCENARIOS | undefined
if (values.help || !name || !(name in SCENARIOS)) {
  process.stderr.write(USAGE)
  process.exit(values.help ? 0 : 2)
}
const scenario = SCENARIOS[name]
const wholeNumber = (text: string): number => {
  const n = Number(text)
  if (!Number.isInteger(n) || n < 1) {
    process.stderr.write(`expected a positive whole number, got ${text}\n`)
    process.exit(2)
  }
  return n
}
let env: Record<string, string>
if (name === 'broker-restart') {
  const seconds = (values.seconds ?? '5,60').split(',').map(wholeNumber)
  env = SCENARIOS['broker-restart'].env(wholeNumber(values.cycles ?? '5'), seconds)
} else if (name === 'pg-outage') {
  env = SCENARIOS[name].env(wholeNumber(values.seconds ?? '60'))
} else {
  env = SCENARIOS[name].env(wholeNumber(values.cycles ?? '50'))
}
const child = spawn(process.execPath, ['scripts/test.ts', '--test-timeout=7200000', scenario.file], {
  env: { ...process.env, ...env },
  stdio: 'inherit'
})
child.on('exit', (code) => process.exit(code ?? 1))
