import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { REPO_ROOT } from '../../scripts/stack/config.ts'
import { type RunResult, runNodeScript } from './cli.ts'

export type Run = RunResult

/** Runs `npm run schemas -- …` the way a user does (Node 24 from node_modules, cwd = the project). */
export function schemasCli(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  return runNodeScript('src/cli/schemas.ts', args, env)
}

/** A copy of the repository's schemas/ in a temp dir, removed after the test. */
export async function copySchemas(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sfm-schemas-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  await cp(join(REPO_ROOT, 'schemas'), dir, { recursive: true })
  return dir
}

export async function readJson<T = Record<string, unknown>>(path: string): Promise<T> {
  return JSON.parse(await readFile(path, 'utf8')) as T
}

/** Adds version `version` of `subject` in `dir`: writes v<N>.json and lists it in subject.json. */
export async function addVersion(dir: string, subject: string, version: number, schema: unknown): Promise<void> {
  await writeFile(join(dir, subject, `v${version}.json`), `${JSON.stringify(schema, null, 2)}\n`)
  const meta = await readJson<{ versions: number[] }>(join(dir, subject, 'subject.json'))
  if (!meta.versions.includes(version)) meta.versions.push(version)
  await writeFile(join(dir, subject, 'subject.json'), `${JSON.stringify(meta, null, 2)}\n`)
}
