import { randomBytes } from 'node:crypto'
import { constants } from 'node:fs'
import { lchown, lstat, mkdir, mkdtemp, open, readFile, readlink, rm, rmdir, symlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, dirname, isAbsolute, join, resolve } from 'node:path'
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
async function runAsPgUser(command: string, args: readonly string[], cwd: string, input?: string): Promise<RunResult> {
  // Without the caller's PG* variables: PGDATA, PGPORT or PGHOST from a developer's shell must not redirect us.
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('PG')))
  const options = { cwd, env, ...(input === undefined ? {} : { input }) }
  if (!isRoot()) return run(command, args, options)
  return run('runuser', ['-u', PG_OS_USER, '--', command, ...args], options)
}

/**
 * Writes a file of the cluster folder as the account that owns it (mode 0600): root never opens a path inside a
 * folder another account controls, where a planted symbolic link would redirect the write.
 */
async function writeAsPgUser(root: string, path: string, text: string, append = false): Promise<void> {
  const script = `umask 077 && cat ${append ? '>>' : '>'} "$1"`
  const result = await runAsPgUser('sh', ['-c', script, 'sh', path], root, text)
  if (result.code !== 0) throw new FatalError(`postgres: cannot write ${path}: ${result.stderr.trim()}`)
}

/** The superuser's password, generated once: `<state>/pg-password`, mode 0600; `stack env` prints it in the URL. */
export function passwordFile(stateDir: string): string {
  return join(stateDir, 'pg-password')
}

/** The stack's password, or undefined when there is none yet. Refuses a file others could read or have swapped. */
export async function readPassword(stateDir: string): Promise<string | undefined> {
  const path = passwordFile(stateDir)
  let handle: Awaited<ReturnType<typeof open>>
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return undefined
    if (code === 'ELOOP') throw new FatalError(`${path} is a symbolic link; delete it and run \`npm run stack -- up\``)
    throw error
  }
  try {
    const info = await handle.stat()
    if (!info.isFile() || info.uid !== process.getuid?.() || (info.mode & 0o077) !== 0) {
      throw new FatalError(
        `${path} must be a file of yours that only you can read (mode 0600); ` +
          'check who changed it, then `chmod 600` it, or delete it and run `npm run stack -- up` for a new password'
      )
    }
    const password = (await handle.readFile('utf8')).trim()
    if (!/^[A-Za-z0-9_-]{16,}$/.test(password)) {
      throw new FatalError(`${path} holds no generated password; delete it and run \`npm run stack -- up\``)
    }
    return password
  } finally {
    await handle.close()
  }
}

/** A new random password in a new file (O_EXCL: an existing file or link is never reused or followed). */
async function createPassword(stateDir: string): Promise<string> {
  const password = randomBytes(24).toString('base64url')
  const handle = await open(passwordFile(stateDir), 'wx', 0o600)
  try {
    await handle.writeFile(`${password}\n`)
  } finally {
    await handle.close()
  }
  return password
}

export interface PgPaths {
  /** The folder the server account owns: data/ and postgres.log. May be a symlink target outside the state dir. */
  root: string
  data: string
  log: string
  conf: string
  hba: string
  /** The folder made for a cluster of the earlier layout (`<tmpdir>/sfm-stack-<hash>/pg`), removed with it. */
  legacyParent?: string
}

const OUTSIDE_NAME = /^sfm-stack-[A-Za-z0-9]{6}$/
const LEGACY_NAME = /^sfm-stack-[0-9a-f]{12}$/

/**
 * `<state>/pg`, resolved. As root, the postgres account must be able to reach it; a clone under /root (mode 700)
 * is out of its reach, so there the cluster lives in a folder made by mkdtemp in the temporary directory (a name
 * no one can guess or create first), owned by the postgres account with mode 0700, and `<state>/pg` links to it.
 * The link is checked at every use (verifiedOutside) before anything is read, changed or removed there.
 */
export async function pgPaths(stateDir: string, create = false): Promise<PgPaths> {
  const link = join(stateDir, 'pg')
  const info = await lstat(link).catch(() => undefined)
  let root = link
  let legacyParent: string | undefined
  if (info?.isSymbolicLink()) ({ root, legacyParent } = await verifiedOutside(link))
  else if (info !== undefined && !info.isDirectory()) throw new FatalError(`${link} is not a folder; remove it`)
  else if (info === undefined && create) {
    if (isRoot() && (await runAsPgUser('test', ['-x', stateDir], '/')).code !== 0) {
      const owner = await pgOsUser()
      root = await mkdtemp(join(tmpdir(), 'sfm-stack-'))
      await lchown(root, owner.uid, owner.gid)
      await symlink(root, link)
    } else {
      await mkdir(link, { recursive: true, mode: 0o700 })
      if (isRoot()) {
        const owner = await pgOsUser()
        await lchown(link, owner.uid, owner.gid)
      }
    }
  }
  return {
    root,
    data: join(root, 'data'),
    log: join(root, 'postgres.log'),
    conf: join(root, 'data', 'sfm-stack.conf'),
    hba: join(root, 'data', 'pg_hba.conf'),
    ...(legacyParent === undefined ? {} : { legacyParent })
  }
}

/**
 * Where `<state>/pg` links to, if it is a folder this stack made and no one else could have made or changed: a
 * direct child of the temporary directory named as mkdtemp names it (or `sfm-stack-<hash>/pg`, the layout of
 * earlier versions), a real folder (no symbolic link anywhere below the temporary directory), owned by the server
 * account (its parent, for the earlier layout, by root), writable by its owner only. /tmp's sticky bit then keeps
 * others from replacing it.
 */
async function verifiedOutside(link: string): Promise<{ root: string; legacyParent?: string }> {
  const target = await readlink(link)
  const tmp = resolve(tmpdir())
  const legacy = basename(target) === 'pg' && LEGACY_NAME.test(basename(dirname(target)))
  const parent = legacy ? dirname(target) : target
  const refuse = (why: string) =>
    new FatalError(
      `${link} links to ${target}, which ${why}: refusing to use it. Remove the link (\`rm ${link}\`) and, if that ` +
        'folder is a cluster of yours, delete it by hand; `npm run stack -- up` then makes a new one.'
    )
  if (!isAbsolute(target) || dirname(parent) !== tmp || !(legacy || OUTSIDE_NAME.test(basename(target)))) {
    throw refuse(`is not a folder this stack makes in ${tmp}`)
  }
  const uid = isRoot() ? (await pgOsUser()).uid : process.getuid?.()
  const check = async (path: string, owner: number | undefined) => {
    const info = await lstat(path).catch(() => undefined)
    if (info === undefined) throw refuse('is gone (a temporary-file cleaner?)')
    if (!info.isDirectory()) throw refuse(`${path === target ? 'is' : `sits in ${path}, which is`} not a real folder`)
    if (info.uid !== owner) throw refuse(`is owned by uid ${info.uid}, not ${owner}`)
    if ((info.mode & 0o022) !== 0) throw refuse('others may write to')
  }
  if (legacy) await check(parent, process.getuid?.())
  await check(target, uid)
  return legacy ? { root: target, legacyParent: parent } : { root: target }
}

/** Removes the cluster folder, and the folder outside the state dir it may link to (once verified). */
export async function purgePg(stateDir: string): Promise<void> {
  const link = join(stateDir, 'pg')
  const info = await lstat(link).catch(() => undefined)
  if (info?.isSymbolicLink()) {
    const paths = await pgPaths(stateDir)
    // rm does not follow links inside the folder; the folder itself was just verified to be a real one.
    await rm(paths.root, { recursive: true, force: true })
    if (paths.legacyParent !== undefined) await rmdir(paths.legacyParent).catch(() => {})
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

/** The stack's connection URL, with the password (`stack env`, stack.env): print it only through `redact`. */
export function databaseUrl(port: number, password: string, database: string = stackDefaults.databaseName): string {
  const user =
    password === '' ? stackDefaults.databaseUser : `${stackDefaults.databaseUser}:${encodeURIComponent(password)}`
  return `postgres://${user}@${stackDefaults.host}:${port}/${database}`
}

export interface StartPostgresOptions {
  stateDir: string
  bin: string
  port: number
  log: Log
}

/**
 * initdb on first use, then `pg_ctl start` on 127.0.0.1:port (no Unix socket: state dir paths can be too long).
 * Connections need the superuser's password (scram-sha-256): generated into `<state>/pg-password` on first use and
 * set in single-user mode before the server listens, also for a cluster made by an earlier version (which trusted
 * every local connection). pg_hba.conf is rewritten at every start: password only, nothing trusted.
 */
export async function startPostgres(options: StartPostgresOptions): Promise<void> {
  const paths = await pgPaths(options.stateDir, true)
  let password = await readPassword(options.stateDir)
  const created = password === undefined
  password ??= await createPassword(options.stateDir)
  const fresh = !(await exists(join(paths.data, 'PG_VERSION')))

  if (fresh) {
    options.log(`postgres: initdb ${paths.data}`)
    await rm(paths.data, { recursive: true, force: true })
    // trust only in the files initdb writes: pg_hba.conf is replaced below, before the server ever listens.
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
    await writeAsPgUser(
      paths.root,
      join(paths.data, 'postgresql.conf'),
      "\ninclude_if_exists = 'sfm-stack.conf'\n",
      true
    )
  }
  const hba = (await runAsPgUser('cat', [paths.hba], paths.root)).stdout
  if (fresh || created || !hba.startsWith(HBA_HEADER)) {
    if (!fresh) options.log('postgres: setting the superuser password (this cluster trusted local connections)')
    await setPassword(options.bin, paths, password)
  }
  await writeAsPgUser(
    paths.root,
    paths.hba,
    [HBA_HEADER, `host all all ${stackDefaults.host}/32 scram-sha-256`, ''].join('\n')
  )

  // Rewritten at every start, so a new port (or a new setting here) applies to an existing cluster.
  await writeAsPgUser(
    paths.root,
    paths.conf,
    [
      '# Generated by scripts/stack/postgres.ts at every start.',
      `port = ${options.port}`,
      `listen_addresses = '${stackDefaults.host}'`,
      "unix_socket_directories = ''",
      "password_encryption = 'scram-sha-256'",
      // A throwaway dev/test database: durability is traded for speed (data may be lost if the machine crashes).
      'fsync = off',
      'synchronous_commit = off',
      'full_page_writes = off',
      'max_connections = 100',
      ''
    ].join('\n')
  )

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

const HBA_HEADER =
  '# Written by scripts/stack/postgres.ts at every start: a password for every connection, nothing trusted.'

/** Sets the superuser's password with the server stopped (single-user mode: no connection, no trust window). */
async function setPassword(bin: string, paths: PgPaths, password: string): Promise<void> {
  const statement = `ALTER ROLE "${stackDefaults.databaseUser}" PASSWORD '${password}'\n`
  const result = await runAsPgUser(
    join(bin, 'postgres'),
    ['--single', '-D', paths.data, '-c', 'password_encryption=scram-sha-256', 'postgres'],
    paths.root,
    statement
  )
  if (result.code !== 0 || /ERROR/.test(result.stdout + result.stderr)) {
    const output = `${result.stdout}${result.stderr}`.replaceAll(password, '***')
    throw new FatalError(`postgres: could not set the superuser password (exit ${result.code}):\n${output}`)
  }
}

/** Waits until the server answers `select 1`, then creates the project database if it is not there yet. */
export async function waitForPostgres(stateDir: string, port: number, timeoutMs: number): Promise<void> {
  // No password file: a server an earlier version started (trust) and still running; its next start sets one.
  const password = (await readPassword(stateDir)) ?? ''
  const url = (database?: string) => databaseUrl(port, password, database)
  await waitFor(
    async () => {
      try {
        await query(url('postgres'), 'select 1')
        return { done: true, value: undefined }
      } catch (error) {
        return { done: false, error }
      }
    },
    { timeoutMs, intervalMs: 250, what: `PostgreSQL on ${stackDefaults.host}:${port}` }
  )
  const name = stackDefaults.databaseName
  const found = await query(url('postgres'), 'select 1 from pg_database where datname = $1', [name])
  if (found.length === 0) await query(url('postgres'), `create database "${name.replaceAll('"', '""')}"`)
  await query(url(), 'select 1')
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
