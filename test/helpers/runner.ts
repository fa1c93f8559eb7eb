import { type ChildProcess, spawn } from 'node:child_process'

export interface RunnerProcess {
  readonly child: ChildProcess
  /** Everything the runner logged so far. */
  stderr(): string
}

/** Starts the real runner (`npm start`'s entry point) on a topology file as a child process, collecting its log. */
export function startRunner(topology: string, env: Record<string, string>, args: string[] = []): RunnerProcess {
  const child = spawn(process.execPath, ['src/cli/start.ts', topology, ...args], {
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'ignore', 'pipe']
  })
  let text = ''
  child.stderr?.setEncoding('utf8')
  child.stderr?.on('data', (chunk: string) => {
    text += chunk
  })
  return { child, stderr: () => text }
}
