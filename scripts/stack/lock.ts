import { mkdir, open, readFile, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { ErrorCodes, RetriableError } from '../../src/errors.ts'
import { isAlive, sleep } from './proc.ts'

/**
 * Serialises `up` / `down` on one state dir: several developers share a tree, and two `up`s racing would format the
 * same Kafka log dir or start two postmasters on one data dir. The lock is a file holding the owner's pid; a lock
 * whose owner died (Ctrl-C, crash) is stale and taken over.
 */
export async function withStateLock<T>(stateDir: string, timeoutMs: number, fn: () => Promise<T>): Promise<T> {
  await mkdir(stateDir, { recursive: true })
  const path = join(stateDir, '.lock')
  const deadline = Date.now() + timeoutMs
  let told = false
  for (;;) {
    try {
      const handle = await open(path, 'wx')
      await handle.writeFile(`${process.pid}\n`)
      await handle.close()
      break
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    }
    const owner = Number.parseInt(await readFile(path, 'utf8').catch(() => ''), 10)
    const valid = Number.isInteger(owner) && owner > 0
    if (valid && !isAlive(owner)) {
      await rm(path, { force: true })
      continue
    }
    // No pid yet: being written this very instant, or its writer died in between (then it is old).
    if (!valid && Date.now() - (await stat(path).catch(() => ({ mtimeMs: 0 }))).mtimeMs > 5000) {
      await rm(path, { force: true })
      continue
    }
    if (Date.now() >= deadline) {
      throw new RetriableError(`the stack in ${stateDir} is locked by process ${owner}; try again when it is done`, {
        code: ErrorCodes.TIMEOUT
      })
    }
    if (!told && valid) {
      process.stderr.write(`stack: waiting for process ${owner}, which holds ${path}\n`)
      told = true
    }
    await sleep(250)
  }
  try {
    return await fn()
  } finally {
    await rm(path, { force: true })
  }
}
