/**
 * `npm run reliability -- <scenario> [--cycles N]`: the long reliability loops, at full size. CI runs the same
 * tests at a CI-sized default (3 cycles) as part of `npm test`.
 *
 *   kill-9         kill -9 the memory runner N times during load (default 50), then check the table equals the
 *                  fold of the log: 0 lost, 0 regressed, 0 duplicate effects
 *   relay-kill-9   the same on a plain relay topology: every message reaches the sink
 *   pg-outage      stop PostgreSQL for --seconds S (default 60) under load
 */
import { spawn } from 'node:child_process'
import { parseArgs } from 'node:util'

const SCENARIOS = {
  'kill-9': { file: 'test/topologies/memory-kill-9.test.ts', env: (n: number) => ({ SFM_KILL_CYCLES: String(n) }) },
  'relay-kill-9': { file: 'test/cli/kill-9.test.ts', env: (n: number) => ({ SFM_KILL_CYCLES: String(n) }) },
  'pg-outage': {
    file: 'test/topologies/memory-outage.test.ts',
    env: (s: number) => ({ SFM_PG_OUTAGE_MS: String(s * 1000) })
  }
} as const

const USAGE = `Usage: npm run reliability -- <kill-9|relay-kill-9|pg-outage> [--cycles N] [--seconds S]
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
const size = Number(name === 'pg-outage' ? (values.seconds ?? 60) : (values.cycles ?? 50))
if (!Number.isInteger(size) || size < 1) {
  process.stderr.write(`expected a positive whole number, got ${values.cycles ?? values.seconds}\n`)
  process.exit(2)
}
const child = spawn(process.execPath, ['scripts/test.ts', '--test-timeout=7200000', scenario.file], {
  env: { ...process.env, ...scenario.env(size) },
  stdio: 'inherit'
})
child.on('exit', (code) => process.exit(code ?? 1))
