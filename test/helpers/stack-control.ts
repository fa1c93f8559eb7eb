import { defaultStateDir } from '../../scripts/stack/config.ts'
import { runningPostgres, startPostgres, stopPostgres, waitForPostgres } from '../../scripts/stack/postgres.ts'
import { requirePostgresBin } from '../../scripts/stack/requirements.ts'

export interface PostgresControl {
  stop(): Promise<void>
  start(): Promise<void>
}

/**
 * Stops and starts the PostgreSQL server of the stack the tests run against (the one `npm test` or
 * `npm run stack -- up` started), for outage tests. Undefined, with the reason, when DATABASE_URL points elsewhere.
 */
export async function postgresControl(): Promise<PostgresControl | string> {
  const stateDir = process.env.SFM_STACK_DIR ?? defaultStateDir()
  const bin = await requirePostgresBin().catch(() => undefined)
  if (!bin) return 'PostgreSQL binaries not found'
  const running = await runningPostgres(stateDir, bin)
  const port = Number(new URL(process.env.DATABASE_URL ?? 'postgres://x:1/').port)
  if (!running || running.port !== port) return `DATABASE_URL is not the PostgreSQL of the stack in ${stateDir}`
  const log = () => {}
  return {
    async stop() {
      await stopPostgres(stateDir, bin, log)
    },
    async start() {
      await startPostgres({ stateDir, bin, port, log })
      await waitForPostgres(stateDir, port, 60_000)
    }
  }
}
