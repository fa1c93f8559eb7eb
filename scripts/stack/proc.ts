import { type ChildProcessByStdio, spawn } from 'node:child_process'
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs'
import { access, readFile, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import type { Readable, Writable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { ErrorCodes, errorMessage, FatalError, RetriableError } from '../../src/errors.ts'

export { sleep }

const HAS_PROC = existsSync('/proc/self/stat')

export interface RunResult {
  code: number
  stdout: string
  stderr: string
}

export interface RunOptions {
  cwd?: string
  env?: NodeJS.ProcessEnv
  /** Written to the command's stdin (then closed); stdin is empty otherwise. */
  input?: string
}

/** Runs a command to completion and captures its output; rejects only when it cannot be started. */
export function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe']
    }) as ChildProcessByStdio<Writable | null, Readable, Readable>
    if (options.input !== undefined) {
      child.stdin?.on('error', () => {}) // a command that exits without reading it
      child.stdin?.end(options.input)
    }
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk
    })
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk
    })
    child.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'ENOENT' ? new FatalError(`command not found: ${command} (PATH=${process.env.PATH})`) : error
      )
    )
    child.once('close', (code, signal) => resolve({ code: code ?? (signal === null ? 1 : 128), stdout, stderr }))
  })
}

/**
 * True when a process with this pid runs. EPERM means it exists but belongs to someone else. A zombie (exited, not
 * yet reaped by its parent) does not count: it holds no port and no files any more.
 */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
  try {
    // /proc/<pid>/stat is "pid (comm) S ..."; comm may hold spaces or parentheses, so read after the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    // Gone in between, unless this system has no /proc at all (then kill(0) is all we know).
    return !HAS_PROC
  }
}

/** The argv of a running process from /proc, or undefined where /proc is not there (then callers trust the pid). */
export async function commandLine(pid: number): Promise<string[] | undefined> {
  try {
    const raw = await readFile(`/proc/${pid}/cmdline`, 'utf8')
    return raw.split('\0').filter((part) => part !== '')
  } catch {
    return undefined
  }
}

export async function readPidFile(path: string): Promise<number | undefined> {
  try {
    const pid = Number.parseInt((await readFile(path, 'utf8')).trim(), 10)
    return Number.isInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

export interface WaitOptions {
  timeoutMs: number
  intervalMs?: number
  /** Said in the timeout error: "timed out after 90s waiting for <what>". */
  what: string
}

/** One try of a readiness check: done with a value, or not yet (with the error that said so, if any). */
export type Attempt<T> = { done: true; value: T } | { done: false; error?: unknown }

/**
 * Polls `check` until it is done. `check` may throw to give up at once (e.g. the process it waits for died); the
 * last error of a failed try goes into the timeout message, so a timeout says why the service never answered.
 */
export async function waitFor<T>(check: () => Promise<Attempt<T>>, options: WaitOptions): Promise<T> {
  const deadline = Date.now() + options.timeoutMs
  for (;;) {
    const attempt = await check()
    if (attempt.done) return attempt.value
    if (Date.now() >= deadline) {
      const last = attempt.error === undefined ? '' : `: ${errorMessage(attempt.error)}`
      throw new RetriableError(
        `timed out after ${Math.round(options.timeoutMs / 1000)}s waiting for ${options.what}${last}`,
        {
          code: ErrorCodes.TIMEOUT,
          cause: attempt.error
        }
      )
    }
    await sleep(options.intervalMs ?? 250)
  }
}

/** True when nothing listens on host:port, checked by binding it (the same way the service will). */
export function isPortFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)))
  })
}

/** A port the kernel considers free right now. Another process could take it before we bind it: callers re-check. */
export function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen({ port: 0, host, exclusive: true }, () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('could not pick a free port'))))
    })
  })
}

/** The last `lines` lines of a text file, for error messages; empty when the file cannot be read. */
export async function tail(path: string, lines = 20): Promise<string> {
  try {
    const text = await readFile(path, 'utf8')
    return text.trimEnd().split('\n').slice(-lines).join('\n')
  } catch {
    return ''
  }
}

/**
 * Throws when a service process started by `startDetached` has died while we wait for it to answer: the message says
 * `<what> exited during start-up` and quotes the last lines of each log (files that cannot be read are left out).
 */
export async function assertStillStarting(
  pid: number,
  what: string,
  logs: readonly { path: string; lines: number }[]
): Promise<void> {
  if (isAlive(pid)) return
  const texts = (await Promise.all(logs.map((log) => tail(log.path, log.lines)))).filter((text) => text !== '')
  throw new FatalError(`${what} exited during start-up. Its last log lines:\n${texts.join('\n')}`)
}

/** A Java `.properties` file generated by `generator` (a script path) at every start. */
export function generatedProperties(
  generator: string,
  settings: Readonly<Record<string, string | number | boolean>>
): string {
  const lines = Object.entries(settings).map(([key, value]) => `${key}=${value}`)
  return `# Generated by ${generator} at every start; edit that file, not this one.\n${lines.join('\n')}\n`
}

/**
 * The log4j2 configuration of the stack's JVMs: INFO and above into `logPath`, rolled at 10 MB (3 files kept), plus
 * per-logger levels.
 */
export function rollingFileLog4j(
  generator: string,
  logPath: string,
  loggers: readonly { id: string; name: string; level: string }[]
): string {
  const extra = loggers.flatMap(({ id, name, level }) => [
    `logger.${id}.name = ${name}`,
    `logger.${id}.level = ${level}`
  ])
  return `# Generated by ${generator}
status = warn
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = ${logPath}
appender.file.filePattern = ${logPath}.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 10MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
${extra.join('\n')}
`
}

/** True when `path` exists (file or folder). */
export async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false
  )
}

export interface DetachedOptions {
  cwd: string
  /** Where the process's stdout and stderr go. */
  outFile: string
  /** 'w': only this start's output (what a start-up failure shows); 'a': keep earlier starts' output too. */
  outMode: 'w' | 'a'
  pidFile: string
  env?: NodeJS.ProcessEnv
}

/**
 * Starts a long-running service (a JVM) detached in its own process group, so it outlives `npm run stack -- up` and
 * ignores its Ctrl-C; its output goes to `outFile` and its pid to `pidFile`. `name` prefixes the error message.
 */
export async function startDetached(
  name: string,
  command: string,
  args: readonly string[],
  options: DetachedOptions
): Promise<number> {
  const out = openSync(options.outFile, options.outMode)
  let pid: number
  try {
    const child = spawn(command, args, {
      detached: true,
      stdio: ['ignore', out, out],
      cwd: options.cwd,
      ...(options.env === undefined ? {} : { env: options.env })
    })
    if (child.pid === undefined) throw new FatalError(`${name}: could not start ${command}`)
    pid = child.pid
    child.unref()
  } finally {
    closeSync(out)
  }
  await writeFile(options.pidFile, `${pid}\n`)
  return pid
}
