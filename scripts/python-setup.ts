/**
 * `npm run python-setup`: the project-local Python environment `.venv` (git-ignored) with the `sfm_events` package
 * (clients/python) installed from its sources and its test dependencies from PyPI. Run again after changing
 * clients/python: the tests use the installed package, so they also check what a pip install ships (outbox.sql, the
 * schema). Needs python3 ≥ 3.9 with the venv module (Debian: python3-venv).
 */
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { REPO_ROOT } from './stack/config.ts'

export const VENV = join(REPO_ROOT, '.venv')
const python = process.env.PYTHON ?? 'python3'

function run(command: string, args: readonly string[]): void {
  const result = spawnSync(command, args, { cwd: REPO_ROOT, stdio: 'inherit' })
  if (result.error || result.status !== 0) {
    const why = result.error ? result.error.message : `exit ${result.status}`
    process.stderr.write(`python-setup: ${command} ${args.join(' ')} failed (${why})\n`)
    process.exit(1)
  }
}

if (!existsSync(join(VENV, 'bin', 'python'))) {
  process.stderr.write(`python-setup: creating ${VENV} with ${python}\n`)
  run(python, ['-m', 'venv', VENV])
}
const pip = join(VENV, 'bin', 'pip')
run(pip, ['install', '--quiet', '--disable-pip-version-check', `${join(REPO_ROOT, 'clients', 'python')}[test]`])
process.stderr.write('python-setup: sfm_events installed; tests: npm test -- test/clients/python.test.ts\n')
