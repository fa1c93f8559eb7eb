import { createHash } from 'node:crypto'
import { chown, lstat, mkdir, readFile, realpath, rm, rmdir, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import pg from 'pg'
import { FatalError } from '../../src/errors.ts'
import { stackDefaults } from './config.ts'
import type { Log } from './kafka.ts'
import { exists, type RunResult, run, tail, waitFor } from './proc.ts'

/** The OS account the server runs as when we are root: postgres refuses to run as root. */
const PG_OS_USER = 'postgres'

const isRoot = (): boolean => process.getuid?.() === 0

interface OsUser {
  uid: number
  gid: number
}

async function pgOsUser(): Promise<OsUser> {
  const uid = await run('id', ['-u', PG_OS_USER])
  const gid = await run('id', ['-g', PG_OS_USER])
  if (uid.code !== 0 || gid.code !== 0) {
    throw new FatalError(
      `running as root, but there is no "${PG_OS_USER}" account to run PostgreSQL as (it refuses to run as root). ` +
        'Installing the postgresql package creates it; or: `useradd --system --home /var/lib/postgresql postgres`.'
    )
  }
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) }
}

/** Runs a PostgreSQL binary as the account that owns the cluster; from inside the cluster folder (see pgRoot). */
async function runAsPgUser(command: string, args: readonly string[], cwd: string): Promise<RunResult> {
  // Without the caller's PG* variables: PGDATA, PGPORT or PGHOST from a developer's shell must not redirect us.
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('PG')))
  if (!isRoot()) return run(command, args, { cwd, env })
  return run('runuser', ['-u', PG_OS_USER, '--', command, ...args], { cwd, env })
}

export interface PgPaths {
  /** The folder the server account owns: data/ and postgres.log. May be a symlink target outside the state dir. */
  root: string
  data: string
  log: string
  conf: string
}

/**
 * `<state>/pg`, resolved. As root, the postgres account must be able to reach it; a clone under /root (mode 700)
 * is out of its reach, so there the cluster lives in `<tmpdir>/sfm-stack-<hash>/pg` and `<state>/pg` links to it.
 */
export async function pgPaths(stateDir: string, create = false): Promise<PgPaths> {
  const link = join(stateDir, 'pg')
  if (create && !(await lstat(link).catch(() => undefined))) {
    if (isRoot() && (await runAsPgUser('test', ['-x', stateDir], '/')).code !== 0) {
      const hash = createHash('sha256').update(stateDir).digest('hex').slice(0, 12)
      const outside = join(tmpdir(), `sfm-stack-${hash}`, 'pg')
      await mkdir(outside, { recursive: true })
      await symlink(outside, link)
    } else {
      await mkdir(link, { recursive: true })
    }
  }
  const root = await realpath(link).catch(() => link)
  return { root, data: join(root, 'data'), log: join(root, 'postgres.log'), conf: join(root, 'data', 'sfm-stack.conf') }
}

/** Removes the cluster folder, and the folder outside the state dir it may link to. */
export async function purgePg(stateDir: string): Promise<void> {
  const link = join(stateDir, 'pg')
  const target = await realpath(link).catch(() => undefined)
  if (target !== undefined && target !== link) {
    await rm(target, { recursive: true, force: true })
    await rmdir(dirname(target)).catch(() => {}) // the sfm-stack-<hash> folder made for it, once empty
  }
  await rm(link, { recursive: true, force: true })
}

/** The postmaster's pid and port from postmaster.pid when `pg_ctl status` says it runs (it checks the pid itself). */
export async function runningPostgres(
  stateDir: string,
  bin: string
): Promise<{ pid: number; port: number } | undefined> {
  const paths = await pgPaths(stateDir)
  if (!(await exists(join(paths.data, 'PG_VERSION')))) return undefined
  const status = await runAsPgUser(join(bin, 'pg_ctl'), ['status', '-D', paths.data], paths.root)
  if (status.code !== 0) return undefined
  const lines = (await readFile(join(paths.data, 'postmaster.pid'), 'utf8').catch(() => '')).split('\n')
  const pid = Number(lines[0])
  const port = Number(lines[3])
  return Number.isInteger(pid) && Number.isInteger(port) ? { pid, port } : undefined
}

export function databaseUrl(port: number, database: string = stackDefaults.databaseName): string {
  return `postgres://${stackDefaults.databaseUser}@${stackDefaults.host}:${port}/${database}`
}

export interface StartPostgresOptions {
  stateDir: string
  bin: string
  port: number
  log: Log
}

/** initdb on first use, then `pg_ctl start` on 127.0.0.1:port (no Unix socket: state dir paths can be too long). */
export async function startPostgres(options: StartPostgresOptions): Promise<void> {
  const paths = await pgPaths(options.stateDir, true)
  const owner = isRoot() ? await pgOsUser() : undefined
  if (owner !== undefined) await chown(paths.root, owner.uid, owner.gid)

  if (!(await exists(join(paths.data, 'PG_VERSION')))) {
    options.log(`postgres: initdb ${paths.data}`)
    await rm(paths.data, { recursive: true, force: true })
    const init = await runAsPgUser(
      join(options.bin, 'initdb'),
      [
        '-D',
        paths.data,
        '-U',
        stackDefaults.databaseUser,
        '--auth=trust',
        '--encoding=UTF8',
        '--no-locale',
        '--no-sync',
        '--no-instructions'
      ],
      paths.root
    )
    if (init.code !== 0)
      throw new FatalError(`postgres: initdb failed (exit ${init.code}):\n${init.stdout}${init.stderr}`)
    await writeFile(join(paths.data, 'postgresql.conf'), "\ninclude_if_exists = 'sfm-stack.conf'\n", { flag: 'a' })
  }

  // Rewritten at every start, so a new port (or a new setting here) applies to an existing cluster.
  await writeFile(
    paths.conf,
    [
      '# Generated by scripts/stack/postgres.ts at every start.',
      `port = ${options.port}`,
      `listen_addresses = '${stackDefaults.host}'`,
      "unix_socket_directories = ''",
      // A throwaway dev/test database: durability is traded for speed (data may be lost if the machine crashes).
      'fsync = off',
      'synchronous_commit = off',
      'full_page_writes = off',
      'max_connections = 100',
      ''
    ].join('\n')
  )
  if (owner !== undefined) await chown(paths.conf, owner.uid, owner.gid)

  options.log(`postgres: starting on ${stackDefaults.host}:${options.port}`)
  const start = await runAsPgUser(
    join(options.bin, 'pg_ctl'),
    ['start', '-D', paths.data, '-l', paths.log, '-w', '-t', '60', '-s'],
    paths.root
  )
  if (start.code !== 0) {
    throw new FatalError(
      `postgres: pg_ctl start failed (exit ${start.code}):\n${start.stdout}${start.stderr}\n${await tail(paths.log)}`
    )
  }
}

/** Waits until the server answers `select 1`, then creates the project database if it is not there yet. */
export async function waitForPostgres(port: number, timeoutMs: number): Promise<void> {
  await waitFor(
    async () => {
      try {
        await query(databaseUrl(port, 'postgres'), 'select 1')
        return { done: true, value: undefined }
      } catch (error) {
        return { done: false, error }
      }
    },
    { timeoutMs, intervalMs: 250, what: `PostgreSQL on ${stackDefaults.host}:${port}` }
  )
  const name = stackDefaults.databaseName
  const found = await query(databaseUrl(port, 'postgres'), 'select 1 from pg_database where datname = $1', [name])
  if (found.length === 0) await query(databaseUrl(port, 'postgres'), `create database "${name.replaceAll('"', '""')}"`)
  await query(databaseUrl(port), 'select 1')
}

async function query(url: string, sql: string, params: unknown[] = []): Promise<unknown[]> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 })
  // An 'error' event without a listener would crash the process when the server goes away mid-wait.
  client.on('error', () => {})
  try {
    await client.connect()
    return (await client.query(sql, params)).rows
  } finally {
    await client.end().catch(() => {})
  }
}

/** `pg_ctl stop -m fast` (disconnects clients, clean shutdown); `-m immediate` when that does not finish in time. */
export async function stopPostgres(stateDir: string, bin: string, log: Log): Promise<boolean> {
  const running = await runningPostgres(stateDir, bin)
  if (running === undefined) return false
  const paths = await pgPaths(stateDir)
  log(`postgres: stopping pid ${running.pid}`)
  const pgCtl = join(bin, 'pg_ctl')
  const fast = await runAsPgUser(pgCtl, ['stop', '-D', paths.data, '-m', 'fast', '-w', '-t', '30', '-s'], paths.root)
  if (fast.code === 0) return true
  log(`postgres: fast shutdown did not finish (${(fast.stderr || fast.stdout).trim()}), stopping immediately`)
  const now = await runAsPgUser(
    pgCtl,
    ['stop', '-D', paths.data, '-m', 'immediate', '-w', '-t', '30', '-s'],
    paths.root
  )
  if (now.code !== 0) throw new FatalError(`postgres: pg_ctl stop failed:\n${now.stdout}${now.stderr}`)
  return true
}
