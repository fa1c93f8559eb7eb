import { readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

/** What a stack exports to its users: the only two variables tests and the CLI read. */
export interface StackEnv {
  KAFKA_BROKERS: string
  DATABASE_URL: string
}

/** Ports a stack was last started on; kept so a restart gives developers the same URLs when the ports are free. */
export interface StackPorts {
  kafkaPort: number
  kafkaControllerPort: number
  pgPort: number
}

export interface StackEnvFile {
  env: StackEnv
  ports: StackPorts
}

export function envFilePath(stateDir: string): string {
  return join(stateDir, 'stack.env')
}

/**
 * `NAME=value` lines with no quoting: usable by `node --env-file`, `set -a; . stack.env` and docker `--env-file`
 * alike. Values never hold spaces or quotes (loopback host, numeric ports, fixed database name, a base64url password).
 */
export async function writeEnvFile(stateDir: string, file: StackEnvFile): Promise<void> {
  const lines = [
    '# Written by `npm run stack -- up`. `npm run stack -- env` prints the first two lines.',
    `KAFKA_BROKERS=${file.env.KAFKA_BROKERS}`,
    `DATABASE_URL=${file.env.DATABASE_URL}`,
    `KAFKA_PORT=${file.ports.kafkaPort}`,
    `KAFKA_CONTROLLER_PORT=${file.ports.kafkaControllerPort}`,
    `PG_PORT=${file.ports.pgPort}`
  ]
  const path = envFilePath(stateDir)
  // DATABASE_URL holds the stack's password: only its owner may read the file (a fresh name, never followed).
  await rm(`${path}.tmp`, { force: true })
  await writeFile(`${path}.tmp`, `${lines.join('\n')}\n`, { mode: 0o600, flag: 'wx' })
  await rename(`${path}.tmp`, path)
}

export async function readEnvFile(stateDir: string): Promise<StackEnvFile | undefined> {
  let text: string
  try {
    text = await readFile(envFilePath(stateDir), 'utf8')
  } catch {
    return undefined
  }
  const values = new Map<string, string>()
  for (const line of text.split('\n')) {
    const match = /^([A-Z_]+)=(.*)$/.exec(line.trim())
    if (match !== null) values.set(match[1]!, match[2]!)
  }
  const port = (name: string): number | undefined => {
    const value = Number(values.get(name))
    return Number.isInteger(value) && value > 0 ? value : undefined
  }
  const kafkaPort = port('KAFKA_PORT')
  const kafkaControllerPort = port('KAFKA_CONTROLLER_PORT')
  const pgPort = port('PG_PORT')
  const brokers = values.get('KAFKA_BROKERS')
  const url = values.get('DATABASE_URL')
  if (kafkaPort === undefined || kafkaControllerPort === undefined || pgPort === undefined) return undefined
  if (brokers === undefined || url === undefined) return undefined
  return { env: { KAFKA_BROKERS: brokers, DATABASE_URL: url }, ports: { kafkaPort, kafkaControllerPort, pgPort } }
}

export function formatEnv(env: StackEnv): string {
  return `KAFKA_BROKERS=${env.KAFKA_BROKERS}\nDATABASE_URL=${env.DATABASE_URL}\n`
}
