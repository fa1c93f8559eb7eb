import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { type EmbeddedLog, openEmbeddedLog, type StoredRecord } from '../../src/log/embedded-log.ts'

/** A fresh data folder, removed when the test ends. */
export function tempDataDir(t: TestContext, prefix = 'sfm-log-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Opens the log file of a data folder (closed when the test ends). */
export function openLog(t: TestContext, dir: string): EmbeddedLog {
  const log = openEmbeddedLog({ path: join(dir, 'log.sqlite') })
  t.after(() => log.close())
  return log
}

/** Every record of a topic, partition by partition, in offset order. */
export function readAll(log: EmbeddedLog, topic: string): StoredRecord[] {
  const out: StoredRecord[] = []
  for (const { partition } of log.partitions(topic)) {
    let from = 0n
    for (;;) {
      const chunk = log.read(topic, partition, from, 5_000, 64 * 1024 * 1024)
      if (chunk.length === 0) break
      out.push(...chunk)
      from = chunk[chunk.length - 1]!.offset + 1n
    }
  }
  return out
}

/**
 * The environment of a child process that must use the embedded log in `dir`: no KAFKA_BROKERS, and no local
 * stack to fill it in (src/config.ts `chooseStack` reads `.sfm-stack/stack.env` otherwise).
 */
export function embeddedEnv(dir: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, SFM_DATA_DIR: dir, SFM_STACK_DIR: join(dir, 'no-stack'), ...extra }
  delete env.KAFKA_BROKERS
  delete env.SFM_TOPIC_PREFIX
  return env
}

export interface Child {
  readonly child: ChildProcess
  stdout(): string
  stderr(): string
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

/** Runs `node <args>` (the project's Node) in the repository root, or `cwd`, collecting its output. */
export function spawnNode(args: string[], env: NodeJS.ProcessEnv, cwd?: string): Child {
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'], ...(cwd ? { cwd } : {}) })
  let out = ''
  let err = ''
  child.stdout?.setEncoding('utf8').on('data', (c: string) => {
    out += c
  })
  child.stderr?.setEncoding('utf8').on('data', (c: string) => {
    err += c
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }))
  })
  return { child, stdout: () => out, stderr: () => err, exited }
}
