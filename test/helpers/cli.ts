import { REPO_ROOT } from '../../scripts/stack/config.ts'
import { type RunResult, run } from '../../scripts/stack/proc.ts'

export type { RunResult }

/**
 * Runs `node <file> …args` from the project folder with the pinned Node (what `npm run <script> -- …args` does) and
 * captures its output; `input` is written to its stdin. A process ended by a signal reports code 128.
 */
export function runNodeScript(
  file: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  input?: string
): Promise<RunResult> {
  return run(process.execPath, [file, ...args], { cwd: REPO_ROOT, env, ...(input === undefined ? {} : { input }) })
}
