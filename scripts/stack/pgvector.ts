import { createHash } from 'node:crypto'
import { access, constants, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { ErrorCodes, errorMessage, FatalError, RetriableError } from '../../src/errors.ts'
import { cacheDir } from './config.ts'
import type { Log } from './kafka.ts'
import { exists, run } from './proc.ts'
import { extractZip } from './zip.ts'

/**
 * pgvector for the stack's server PostgreSQL, so that VECTOR_DATABASE_URL can point at it. Debian 12 packages no
 * postgresql-15-pgvector, so the pinned release is built from source with PGXS. The source comes from the Go module
 * proxy, which serves any GitHub repository's tag as a zip (pgvector has no go.mod; the proxy does not mind); the
 * zip is checked against the SHA-256 pinned here before anything in it is used.
 */
export const pgvectorPin = {
  version: '0.8.6',
  /**
   * SHA-256 of proxy.golang.org's `github.com/pgvector/pgvector/@v/v0.8.6.zip` (227,190 bytes), taken when it was
   * pinned. Its Go checksum (what sum.golang.org records) is h1:6sfeu20BrrzDH+jB/mteFbbk32+HzvSN2y6Fd81TFN8=.
   */
  sha256: '6abdf1f3361b12827922cf6e5d6b52c4d645aa65819cf6e25ce1f4897664b421',
  module: 'github.com/pgvector/pgvector'
} as const

const DEFAULT_PROXY = 'https://proxy.golang.org'
const MAX_ZIP_BYTES = 16 << 20
const DOWNLOAD_TIMEOUT_MS = 120_000

/** Where a PostgreSQL installation keeps extensions, from its pg_config. */
export interface PgvectorTarget {
  pgConfig: string
  /** PostgreSQL major version, e.g. 15. */
  major: number
  /** `<sharedir>/extension`: vector.control and the SQL scripts go there. */
  extensionDir: string
  /** `pkglibdir`: vector.so goes there. */
  libDir: string
  /**
   * The server headers' postgres.h: absent until the server-dev package is installed (Debian ships the PGXS
   * makefiles with the client package, so they say nothing).
   */
  serverHeader: string
  /** The installed pgvector's default_version, when vector.control and vector.so are both there. */
  installed?: string
}

/** Reads pg_config of the server binaries in `pgBin` (requirePostgresBin) and looks for an installed pgvector. */
export async function pgvectorTarget(pgBin: string): Promise<PgvectorTarget> {
  const pgConfig = join(pgBin, 'pg_config')
  if (!(await exists(pgConfig))) throw new FatalError(`pgvector: ${pgConfig} not found (it comes with the server)`)
  // pg_config prints the values in the order asked for, one a line.
  const result = await run(pgConfig, ['--version', '--sharedir', '--pkglibdir', '--includedir-server'])
  const [version = '', sharedir = '', libDir = '', includes = ''] = result.stdout.split('\n')
  const major = Number(/PostgreSQL (\d+)/.exec(version)?.[1] ?? Number.NaN)
  if (result.code !== 0 || !Number.isInteger(major) || sharedir === '' || libDir === '' || includes === '') {
    throw new FatalError(`pgvector: unexpected output of ${pgConfig} (exit ${result.code}): ${result.stdout}`)
  }
  const extensionDir = join(sharedir, 'extension')
  const target: PgvectorTarget = { pgConfig, major, extensionDir, libDir, serverHeader: join(includes, 'postgres.h') }
  const control = await readFile(join(extensionDir, 'vector.control'), 'utf8').catch(() => undefined)
  const installed = control === undefined ? undefined : /default_version\s*=\s*'([^']+)'/.exec(control)?.[1]
  if (installed !== undefined && (await exists(join(libDir, 'vector.so')))) target.installed = installed
  return target
}

/** What `up` says when the server has no pgvector: the embedded store works, the server one needs a build. */
export function pgvectorMissingMessage(target: PgvectorTarget): string {
  return (
    `postgres: PostgreSQL ${target.major} has no pgvector (no ${target.extensionDir}/vector.control), so ` +
    'VECTOR_DATABASE_URL cannot point at this server yet (the embedded PGlite store has it built in). ' +
    `\`npm run stack -- pgvector\` builds pgvector ${pgvectorPin.version} from source and installs it, about a ` +
    `minute; it writes to ${target.libDir} (run it as root) and needs postgresql-server-dev-${target.major}.`
  )
}

/** Module proxy base URL: SFM_GOPROXY, else the first URL in GOPROXY, else proxy.golang.org. */
export function goProxy(env: NodeJS.ProcessEnv = process.env): string {
  const candidates = [env.SFM_GOPROXY, ...(env.GOPROXY ?? '').split(/[,|]/), DEFAULT_PROXY]
  const url = candidates.find((c) => c !== undefined && /^https?:\/\//.test(c.trim())) ?? DEFAULT_PROXY
  return url.trim().replace(/\/+$/, '')
}

export interface DownloadOptions {
  /** Folder the verified zip is kept in (default ~/.cache/sfm-stack). */
  cache?: string
  proxy?: string
  version?: string
  sha256?: string
  log: Log
}

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex')

/**
 * The verified source zip of the pinned pgvector: from the cache when its hash matches, else downloaded (through
 * a temporary file renamed into place, so a cut download is never taken for a good one). A mismatch is fatal: the
 * proxy served something other than what was pinned.
 */
export async function downloadPgvector(options: DownloadOptions): Promise<Buffer> {
  const version = options.version ?? pgvectorPin.version
  const expected = options.sha256 ?? pgvectorPin.sha256
  const folder = options.cache ?? cacheDir()
  const file = join(folder, `pgvector-v${version}.zip`)
  const cached = await readFile(file).catch(() => undefined)
  if (cached !== undefined && sha256(cached) === expected) return cached
  if (cached !== undefined) {
    options.log(`pgvector: ${file} does not match the pinned SHA-256, downloading it again`)
    await rm(file, { force: true })
  }
  const url = `${options.proxy ?? goProxy()}/${pgvectorPin.module}/@v/v${version}.zip`
  options.log(`pgvector: downloading ${url}`)
  let data: Buffer
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(DOWNLOAD_TIMEOUT_MS) })
    if (!response.ok) throw new Error(`HTTP ${response.status} ${response.statusText}`)
    const length = Number(response.headers.get('content-length') ?? 0)
    if (length > MAX_ZIP_BYTES) throw new Error(`${length} bytes, more than a source archive can be`)
    data = Buffer.from(await response.arrayBuffer())
  } catch (error) {
    throw new RetriableError(`pgvector: cannot download ${url}: ${errorMessage(error)}`, {
      code: ErrorCodes.UNAVAILABLE,
      cause: error
    })
  }
  const actual = sha256(data)
  if (actual !== expected) {
    throw new FatalError(
      `pgvector: ${url} has SHA-256 ${actual}, but ${expected} is pinned (scripts/stack/pgvector.ts); refusing to build it`
    )
  }
  await mkdir(folder, { recursive: true })
  const partial = `${file}.${process.pid}.part`
  await writeFile(partial, data)
  await rename(partial, file)
  return data
}

export interface EnsurePgvectorOptions {
  /** The server binaries (requirePostgresBin). */
  pgBin: string
  log: Log
  cache?: string
  proxy?: string
}

export interface EnsurePgvectorResult {
  target: PgvectorTarget
  /** The version now installed. */
  version: string
  /** False when it was installed already. */
  built: boolean
  seconds: number
}

/**
 * Installs the pinned pgvector into the PostgreSQL of `pgBin` unless some pgvector is there already. A running
 * server needs no restart: `CREATE EXTENSION vector` loads vector.so then.
 */
export async function ensurePgvector(options: EnsurePgvectorOptions): Promise<EnsurePgvectorResult> {
  const started = performance.now()
  const seconds = (): number => Math.round((performance.now() - started) / 100) / 10
  const { log } = options
  const target = await pgvectorTarget(options.pgBin)
  if (target.installed !== undefined) {
    log(`pgvector ${target.installed} is installed in PostgreSQL ${target.major} (${target.extensionDir})`)
    return { target, version: target.installed, built: false, seconds: seconds() }
  }
  if (!(await exists(target.serverHeader))) {
    throw new FatalError(
      `pgvector: building it needs the PostgreSQL ${target.major} server headers (${target.serverHeader} is missing). ` +
        `On Debian/Ubuntu: apt-get install -y --no-install-recommends postgresql-server-dev-${target.major}`
    )
  }
  for (const dir of [target.extensionDir, target.libDir]) {
    const writable = await access(dir, constants.W_OK).then(
      () => true,
      () => false
    )
    if (!writable) {
      throw new FatalError(
        `pgvector: installing it writes to ${target.extensionDir} and ${target.libDir}, and ${dir} is not writable: ` +
          'run `npm run stack -- pgvector` as root'
      )
    }
  }
  const zip = await downloadPgvector({
    log,
    ...(options.cache === undefined ? {} : { cache: options.cache }),
    ...(options.proxy === undefined ? {} : { proxy: options.proxy })
  })
  const source = await mkdtemp(join(tmpdir(), `sfm-pgvector-${pgvectorPin.version}-`))
  try {
    const files = await extractZip(zip, source, `${pgvectorPin.module}@v${pgvectorPin.version}/`)
    const jobs = String(Math.max(1, availableParallelism()))
    log(`pgvector ${pgvectorPin.version}: building ${files} files with ${target.pgConfig} (make -j${jobs})`)
    // OPTFLAGS='': pgvector's Makefile adds -march=native by default, which ties vector.so to this CPU's model; the
    // installed library may end up in an image or on another machine. Its own -ftree-vectorize etc. stay.
    const vars = [`PG_CONFIG=${target.pgConfig}`, 'OPTFLAGS=']
    await make(['-j', jobs, ...vars], source, 'build')
    await make(['install', ...vars], source, 'install')
  } finally {
    await rm(source, { recursive: true, force: true })
  }
  const after = await pgvectorTarget(options.pgBin)
  if (after.installed !== pgvectorPin.version) {
    throw new FatalError(`pgvector: make install finished, but ${after.extensionDir}/vector.control is not there`)
  }
  log(`pgvector ${after.installed}: installed into PostgreSQL ${after.major} in ${seconds()} s`)
  return { target: after, version: after.installed, built: true, seconds: seconds() }
}

async function make(args: readonly string[], cwd: string, what: string): Promise<void> {
  const result = await run('make', args, { cwd })
  if (result.code !== 0) {
    // The compiler's error lines, not pages of command lines.
    const lines = `${result.stdout}${result.stderr}`.trimEnd().split('\n')
    const errors = lines.filter((line) => /error/i.test(line))
    const output = (errors.length > 0 ? errors : lines).slice(-20).join('\n')
    throw new FatalError(`pgvector: make ${what} failed (exit ${result.code}):\n${output}`)
  }
}
