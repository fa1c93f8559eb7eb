import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { defaultStateDir, kafkaVersion, REPO_ROOT, stackDefaults } from '../../scripts/stack/config.ts'
import {
  connectDefaults,
  connectStatus,
  debeziumVersion,
  ensureConnectLibs,
  ensureJdbcSinkPlugin,
  jdbcFromDatabaseUrl,
  startConnectWorker,
  stopConnect,
  waitForConnect
} from '../../scripts/stack/connect.ts'
import { requireJava } from '../../scripts/stack/requirements.ts'

export const NO_CONNECT =
  'CONNECT_URL is not set: start Kafka Connect with `npm run stack -- up --connect` and export what it prints'

export function connectUrl(): string | undefined {
  const url = process.env.CONNECT_URL
  return url !== undefined && url !== '' ? url.replace(/\/+$/, '') : undefined
}

/** The sink config the repository ships (deploy/connect/), as Connect takes it. */
export function repoConnectorConfig(file = 'deploy/connect/memory-audit-jdbc-sink.json'): Record<string, string> {
  return JSON.parse(readFileSync(join(REPO_ROOT, file), 'utf8')) as Record<string, string>
}

async function rest(method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const response = await fetch(`${connectUrl()}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(30_000)
  })
  const text = await response.text()
  return { status: response.status, json: text === '' ? undefined : JSON.parse(text) }
}

/**
 * Creates or replaces a connector. 409 (a rebalance is under way) is retried: a worker that just (re)joined its
 * group answers so until the assignment settles.
 */
export async function putConnector(name: string, config: Record<string, string>): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const { status, json } = await rest('PUT', `/connectors/${encodeURIComponent(name)}/config`, config)
    if (status === 200 || status === 201) return
    if ((status === 409 || status === 503) && attempt < 60) {
      await sleep(500)
      continue
    }
    throw new Error(`PUT connector ${name}: HTTP ${status} ${JSON.stringify(json)}`)
  }
}

export async function deleteConnector(name: string): Promise<void> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const { status } = await rest('DELETE', `/connectors/${encodeURIComponent(name)}`)
    if (status === 204 || status === 404) return
    await sleep(500)
  }
}

interface ConnectorStatus {
  connector: { state: string; trace?: string }
  tasks: { id: number; state: string; trace?: string }[]
}

/** Waits until the connector and all its tasks run; a FAILED one throws with its trace. */
export async function waitForRunning(name: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last = ''
  while (Date.now() < deadline) {
    const { status, json } = await rest('GET', `/connectors/${encodeURIComponent(name)}/status`)
    if (status === 200) {
      const s = json as ConnectorStatus
      const failed = [s.connector, ...s.tasks].find((x) => x.state === 'FAILED')
      if (failed) throw new Error(`connector ${name} failed: ${failed.trace ?? 'no trace'}`)
      if (s.connector.state === 'RUNNING' && s.tasks.length > 0 && s.tasks.every((task) => task.state === 'RUNNING')) {
        return
      }
      last = JSON.stringify(s)
    }
    await sleep(250)
  }
  throw new Error(`connector ${name} not running after ${timeoutMs} ms: ${last}`)
}

export interface ConnectControl {
  /** Stops the worker: SIGTERM (clean shutdown, offsets committed) or SIGKILL (a crash). */
  stop(signal: 'SIGTERM' | 'SIGKILL'): Promise<void>
  /** Starts it again on the same port and waits until it is healthy. */
  start(): Promise<void>
}

/**
 * Stops and starts the Connect worker of the stack the tests run against (`npm run stack -- up --connect` or a test
 * stack), for restart tests. A string (the reason) when CONNECT_URL points at a worker this checkout did not start.
 */
export async function connectControl(): Promise<ConnectControl | string> {
  const stateDir = process.env.SFM_STACK_DIR ?? defaultStateDir()
  const current = await connectStatus(stateDir)
  if (!current.running || current.url !== connectUrl()) {
    return `CONNECT_URL is not the Connect worker of the stack in ${stateDir} (set SFM_STACK_DIR to that stack)`
  }
  const brokers = process.env.KAFKA_BROKERS
  const databaseUrl = process.env.DATABASE_URL
  if (!brokers || !databaseUrl) return 'KAFKA_BROKERS and DATABASE_URL must be set'
  const log = () => {}
  const port = current.port!
  return {
    async stop(signal) {
      await stopConnect(stateDir, log, signal)
    },
    async start() {
      const java = await requireJava()
      const libs = await ensureConnectLibs(kafkaVersion(), log)
      const pluginPath = await ensureJdbcSinkPlugin(debeziumVersion(), log)
      const pid = await startConnectWorker({
        stateDir,
        port,
        java: java.path,
        libs,
        pluginPath,
        brokers,
        ...jdbcFromDatabaseUrl(databaseUrl),
        log
      })
      await waitForConnect(stateDir, port, pid, stackDefaults.connectReadyTimeoutMs)
    }
  }
}

export { connectDefaults }
