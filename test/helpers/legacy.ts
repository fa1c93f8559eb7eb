import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { REPO_ROOT } from '../../scripts/stack/config.ts'

const python = spawnSync('python3', ['--version'], { encoding: 'utf8' })
/** The skip reason when python3 is not there (the legacy fixtures are written by real Python). */
export const NO_PYTHON =
  python.status === 0 ? undefined : 'python3 is not installed: the legacy fixture is written by real Python'

const SCRIPT = join(REPO_ROOT, 'test', 'fixtures', 'legacy_sfm.py')

function run(args: readonly string[]): string[] {
  const result = spawnSync('python3', [SCRIPT, ...args], { encoding: 'utf8', maxBuffer: 1024 * 1024 * 1024 })
  if (result.status !== 0) throw new Error(`legacy_sfm.py ${args.join(' ')} failed: ${result.stderr}`)
  return result.stdout.split('\n').filter((line) => line !== '')
}

/** kv_store rows as the legacy store wrote them: `{key, value}` with the value as Python's JSON text. */
export function legacyKvRows(
  seed: number,
  count: number,
  namespaces: readonly string[]
): { key: string; value: string }[] {
  return run(['kv', String(seed), String(count), ...namespaces]).map((line) => JSON.parse(line))
}

/** Legacy memory.events records (JSON text, as produced) with the memory id Python gives their coordinate. */
export function legacyEventRecords(seed: number, count: number, namespace: string): { id: string; record: string }[] {
  return run(['events', String(seed), String(count), namespace]).map((line) => JSON.parse(line))
}
