/**
 * The dev stack's PostgreSQL (scripts/stack/postgres.ts) on a private cluster: a generated password instead of
 * trust, and, as root, a cluster folder in the temporary directory that no one else can predict, plant or redirect.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { chownSync } from 'node:fs'
import { lstat, mkdir, mkdtemp, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { type TestContext, test } from 'node:test'
import pg from 'pg'
import {
  databaseUrl,
  passwordFile,
  pgPaths,
  purgePg,
  readPassword,
  startPostgres,
  stopPostgres,
  waitForPostgres
} from '../scripts/stack/postgres.ts'
import { freePort } from '../scripts/stack/proc.ts'
import { requirePostgresBin } from '../scripts/stack/requirements.ts'

const bin = await requirePostgresBin().catch(() => undefined)
const skip = bin === undefined ? 'PostgreSQL server binaries not found (initdb, pg_ctl)' : false
const isRoot = process.getuid?.() === 0
const log = () => {}

/** A state dir the postgres account cannot enter when we are root (mode 700 in /tmp), so the cluster goes outside. */
async function stateDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sfm-pg-test-'))
  t.after(async () => {
    await stopPostgres(dir, bin!, log).catch(() => {})
    await purgePg(dir).catch(() => {})
    await rm(dir, { recursive: true, force: true })
  })
  return dir
}

async function connect(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 })
  client.on('error', () => {})
  try {
    await client.connect()
    return (await client.query<{ user: string }>('select current_user as user')).rows[0]!.user
  } finally {
    await client.end().catch(() => {})
  }
}

async function start(dir: string, port: number): Promise<void> {
  await startPostgres({ stateDir: dir, bin: bin!, port, log })
  await waitForPostgres(dir, port, 60_000)
}

test('a new cluster takes the generated password only: none and a wrong one are refused, nothing is trusted', {
  skip,
  timeout: 120_000
}, async (t) => {
  const dir = await stateDir(t)
  const port = await freePort('127.0.0.1')
  await start(dir, port)
  const file = await lstat(passwordFile(dir))
  assert.ok(file.isFile())
  assert.equal(file.mode & 0o777, 0o600)
  assert.equal(file.uid, process.getuid?.())
  const password = await readPassword(dir)
  assert.match(password ?? '', /^[A-Za-z0-9_-]{32}$/)
  assert.equal(await connect(databaseUrl(port, password!)), 'postgres')
  await assert.rejects(connect(`postgres://postgres@127.0.0.1:${port}/sfm`), /password/)
  await assert.rejects(connect(databaseUrl(port, 'wrong-password-0123456789')), /password authentication failed/)
  const paths = await pgPaths(dir)
  const hba = execFileSync(
    isRoot ? 'runuser' : 'cat',
    isRoot ? ['-u', 'postgres', '--', 'cat', paths.hba] : [paths.hba]
  )
  assert.doesNotMatch(hba.toString(), /^\s*(host|local)\S*\s.*\btrust\b/m)
  assert.match(hba.toString(), /^host all all 127\.0\.0\.1\/32 scram-sha-256$/m)

  if (isRoot) {
    // The cluster lives in a mkdtemp folder owned by the postgres account, mode 700; <state>/pg links to it.
    const target = await readlink(join(dir, 'pg'))
    assert.equal(dirname(target), tmpdir())
    assert.match(basename(target), /^sfm-stack-[A-Za-z0-9]{6}$/)
    const info = await lstat(target)
    assert.ok(info.isDirectory() && !info.isSymbolicLink())
    assert.equal(info.mode & 0o777, 0o700)
    assert.equal(info.uid, Number(execFileSync('id', ['-u', 'postgres']).toString().trim()))
    await stopPostgres(dir, bin!, log)
    await purgePg(dir)
    await assert.rejects(lstat(target), { code: 'ENOENT' }, 'purge removes the folder outside the state dir')
  }
})

test('a cluster that trusted local connections (an earlier version) gets the password at its next start', {
  skip,
  timeout: 120_000
}, async (t) => {
  const dir = await stateDir(t)
  const port = await freePort('127.0.0.1')
  await start(dir, port)
  await stopPostgres(dir, bin!, log)
  // What an earlier version left: trust in pg_hba.conf, a superuser without a password, no password file.
  const paths = await pgPaths(dir)
  const asPg = (args: string[], input?: string) =>
    execFileSync(isRoot ? 'runuser' : args[0]!, isRoot ? ['-u', 'postgres', '--', ...args] : args.slice(1), {
      input: input ?? '',
      stdio: ['pipe', 'pipe', 'pipe']
    })
  asPg(['sh', '-c', 'cat > "$1"', 'sh', paths.hba], 'host all all 127.0.0.1/32 trust\n')
  asPg([join(bin!, 'postgres'), '--single', '-D', paths.data, 'postgres'], 'ALTER ROLE postgres PASSWORD NULL\n')
  await rm(passwordFile(dir))
  // Such a server, still running (started by the earlier version), is waited for and used without a password.
  asPg([join(bin!, 'pg_ctl'), 'start', '-D', paths.data, '-l', paths.log, '-w', '-s'])
  await waitForPostgres(dir, port, 30_000)
  assert.equal(await connect(databaseUrl(port, '')), 'postgres')
  await stopPostgres(dir, bin!, log)

  await start(dir, port)
  const password = await readPassword(dir)
  assert.ok(password)
  assert.equal(await connect(databaseUrl(port, password)), 'postgres')
  await assert.rejects(connect(`postgres://postgres:x@127.0.0.1:${port}/sfm`), /password authentication failed/)
})

test('as root: a planted, redirected or foreign cluster folder is refused, and purge never follows it', {
  skip: skip || (isRoot ? false : 'needs root (the cluster folder moves to the temporary directory only for root)')
}, async (t) => {
  const victim = await mkdtemp(join(tmpdir(), 'sfm-victim-'))
  await writeFile(join(victim, 'keep'), 'precious')
  t.after(() => rm(victim, { recursive: true, force: true }))
  const planted: string[] = []
  t.after(async () => {
    for (const p of planted) await rm(p, { recursive: true, force: true })
  })
  const nobody = Number(execFileSync('id', ['-u', 'nobody']).toString().trim())

  // 1. <state>/pg links straight at someone's folder. 2. At a mkdtemp-like name that is itself a link.
  // 3. At a real folder of that name owned by another user. 4. The earlier, predictable layout, made by another user.
  const viaLink = join(tmpdir(), 'sfm-stack-AbC123')
  await rm(viaLink, { force: true })
  await symlink(victim, viaLink)
  planted.push(viaLink)
  const foreign = await mkdtemp(join(tmpdir(), 'sfm-stack-'))
  chownSync(foreign, nobody, nobody)
  planted.push(foreign)
  const legacyParent = join(tmpdir(), 'sfm-stack-0123456789ab')
  await rm(legacyParent, { recursive: true, force: true })
  await mkdir(join(legacyParent, 'pg'), { recursive: true })
  chownSync(legacyParent, nobody, nobody)
  planted.push(legacyParent)

  const owners = new Map<string, number>()
  for (const path of [victim, viaLink, foreign, legacyParent, join(legacyParent, 'pg')]) {
    owners.set(path, (await lstat(path)).uid)
  }
  for (const [target, reason] of [
    [victim, /not a folder this stack makes/],
    [viaLink, /not a real folder/],
    [foreign, /is owned by uid/],
    [join(legacyParent, 'pg'), /is owned by uid/]
  ] as const) {
    const dir = await stateDir(t)
    await symlink(target, join(dir, 'pg'))
    await assert.rejects(pgPaths(dir), reason, target)
    await assert.rejects(startPostgres({ stateDir: dir, bin: bin!, port: 1, log }), reason, target)
    await assert.rejects(purgePg(dir), reason, target)
    assert.equal(await readFile(join(victim, 'keep'), 'utf8'), 'precious')
    for (const [path, uid] of owners) assert.equal((await lstat(path)).uid, uid, `${path} was not chowned`)
  }
  assert.equal((await lstat(foreign)).uid, nobody, 'the foreign folder was not taken over')
  assert.equal((await lstat(victim)).uid, 0)
})
