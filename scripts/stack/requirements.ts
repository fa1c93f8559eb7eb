import { access, constants, readdir } from 'node:fs/promises'
import { delimiter, dirname, join } from 'node:path'
import { FatalError } from '../../src/errors.ts'
import { run } from './proc.ts'

const INSTALL_HINT =
  'Install the requirements with `apt-get install -y openjdk-17-jre-headless maven postgresql` (Debian/Ubuntu), ' +
  'or run Kafka 4.x and PostgreSQL in containers instead (`docker compose -f docker-compose.dev.yml up -d`) and ' +
  'export KAFKA_BROKERS and DATABASE_URL yourself.'

export function missing(what: string, detail = ''): FatalError {
  return new FatalError(`${what} ${detail === '' ? 'not found' : detail}. ${INSTALL_HINT}`)
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}

/** Looks a command up on PATH like the shell does. */
export async function which(command: string, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue
    const candidate = join(dir, command)
    if (await isExecutable(candidate)) return candidate
  }
  return undefined
}

export interface Java {
  path: string
  major: number
}

/** Kafka 4.x brokers need Java 17 or newer (KIP-750 / KIP-1013). JAVA_HOME wins over PATH, as in kafka-run-class.sh. */
export async function requireJava(env: NodeJS.ProcessEnv = process.env): Promise<Java> {
  const fromHome = env.JAVA_HOME !== undefined && env.JAVA_HOME !== '' ? join(env.JAVA_HOME, 'bin', 'java') : undefined
  const path = fromHome !== undefined && (await isExecutable(fromHome)) ? fromHome : await which('java', env)
  if (path === undefined) throw missing('Java (the `java` command, 17 or newer)')
  const { stdout, stderr } = await run(path, ['-version'])
  const match = /version "(\d+)(?:\.(\d+))?/.exec(`${stderr}${stdout}`)
  const first = Number(match?.[1] ?? 0)
  const major = first === 1 ? Number(match?.[2] ?? 0) : first
  if (major < 17) throw missing(`Java 17 or newer`, `is needed by Kafka 4.x, but ${path} is Java ${major || 'unknown'}`)
  return { path, major }
}

export async function requireMaven(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const path = await which('mvn', env)
  if (path === undefined) throw missing('Maven (the `mvn` command, used once to download the Kafka jars)')
  return path
}

/**
 * PostgreSQL server binaries: PG_BIN when set (and nothing else then), else the newest Debian-style
 * /usr/lib/postgresql/<major>/bin, else `pg_ctl` on PATH (other distributions put the server binaries there).
 */
export async function requirePostgresBin(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (env.PG_BIN !== undefined && env.PG_BIN !== '') {
    if ((await isExecutable(join(env.PG_BIN, 'initdb'))) && (await isExecutable(join(env.PG_BIN, 'pg_ctl')))) {
      return env.PG_BIN
    }
    throw missing('PostgreSQL server binaries', `not found in PG_BIN=${env.PG_BIN} (it must hold initdb and pg_ctl)`)
  }
  const candidates: string[] = []
  const majors = await readdir('/usr/lib/postgresql').catch(() => [] as string[])
  const debianMajors = majors.filter((name) => /^\d+$/.test(name)).sort((a, b) => Number(b) - Number(a))
  for (const major of debianMajors) candidates.push(join('/usr/lib/postgresql', major, 'bin'))
  const onPath = await which('pg_ctl', env)
  if (onPath !== undefined) candidates.push(dirname(onPath))
  for (const dir of candidates) {
    if ((await isExecutable(join(dir, 'initdb'))) && (await isExecutable(join(dir, 'pg_ctl')))) return dir
  }
  throw missing('PostgreSQL server binaries (initdb, pg_ctl)', 'not found in PG_BIN, /usr/lib/postgresql/*/bin or PATH')
}
