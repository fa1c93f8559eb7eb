/**
 * `npm run python-setup`: the project-local Python environment `.venv` (git-ignored) with the `sfm_events` package
 * (clients/python) installed from its sources and its test dependencies from PyPI. Run again after changing
 * clients/python: the tests use the installed package, so they also check what a pip install ships (outbox.sql, the
 * schema). Needs python3 ≥ 3.9 with the venv module (Debian: python3-venv).
 *
 * `npm run python-setup -- --peers`: instead, the project-local `.venv-peers` (git-ignored) with Quix Streams
 * (pinned, with its PostgreSQL sink extra) for the Quix Streams side of `npm run bench -- peers`
 * (bench/peers/quix_sink.py). A venv of its own: Quix Streams' pins must not move the client's test dependencies.
 */
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { REPO_ROOT } from './stack/config.ts'

export const VENV = join(REPO_ROOT, '.venv')
export const PEERS_VENV = join(REPO_ROOT, '.venv-peers')
/** The Quix Streams release the peers benchmark is measured with (docs/BENCHMARKS.md). */
export const QUIX_STREAMS = 'quixstreams[postgresql]==3.28.1'
const python = process.env.PYTHON ?? 'python3'

const USAGE = `Usage: npm run python-setup [-- --peers]

  (no option)  .venv with the sfm_events client (clients/python) and its test dependencies
  --peers      .venv-peers with Quix Streams (${QUIX_STREAMS}) for \`npm run bench -- peers\`
`

function run(command: string, args: readonly string[]): void {
  const result = spawnSync(command, args, { cwd: REPO_ROOT, stdio: 'inherit' })
  if (result.error || result.status !== 0) {
    const why = result.error ? result.error.message : `exit ${result.status}`
    process.stderr.write(`python-setup: ${command} ${args.join(' ')} failed (${why})\n`)
    process.exit(1)
  }
}

function ensureVenv(venv: string): string {
  if (!existsSync(join(venv, 'bin', 'python'))) {
    process.stderr.write(`python-setup: creating ${venv} with ${python}\n`)
    run(python, ['-m', 'venv', venv])
  }
  return join(venv, 'bin', 'pip')
}

const args = process.argv.slice(2)
if (args.includes('--help') || args.includes('-h')) {
  process.stdout.write(USAGE)
  process.exit(0)
}
const unknown = args.filter((a) => a !== '--peers')
if (unknown.length > 0) {
  process.stderr.write(`python-setup: unknown option ${unknown.join(' ')}\n${USAGE}`)
  process.exit(2)
}
if (args.includes('--peers')) {
  const pip = ensureVenv(PEERS_VENV)
  run(pip, ['install', '--quiet', '--disable-pip-version-check', QUIX_STREAMS])
  process.stderr.write('python-setup: Quix Streams installed in .venv-peers; run: npm run bench -- peers\n')
} else {
  const pip = ensureVenv(VENV)
  run(pip, [
    'install',
    '--quiet',
    '--disable-pip-version-check',
    `${join(REPO_ROOT, 'clients', 'python')}[test,traffic]`
  ])
  process.stderr.write('python-setup: sfm_events installed; tests: npm test -- test/clients/python.test.ts\n')
}
