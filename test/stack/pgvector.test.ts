import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { crc32 } from 'node:zlib'
import { cacheDir } from '../../scripts/stack/config.ts'
import { downloadPgvector, goProxy, pgvectorPin, pgvectorTarget } from '../../scripts/stack/pgvector.ts'
import { requirePostgresBin } from '../../scripts/stack/requirements.ts'
import { extractZip } from '../../scripts/stack/zip.ts'
import { ErrorKinds, kindOf } from '../../src/errors.ts'

const PREFIX = `${pgvectorPin.module}@v${pgvectorPin.version}/`
const pinnedZip = await readFile(join(cacheDir(), `pgvector-v${pgvectorPin.version}.zip`)).catch(() => undefined)
const noZip =
  pinnedZip === undefined ? 'the pgvector zip is not cached: `npm run stack -- pgvector` downloads it' : false

/** A local module proxy serving `body` for every request, counting them. */
async function proxyServing(t: { after: (fn: () => Promise<void>) => void }, body: Buffer) {
  const seen: string[] = []
  const server = createServer((request, response) => {
    seen.push(request.url ?? '')
    response.end(body)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen }
}

async function tempDir(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sfm-pgvector-test-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** A zip of stored (uncompressed) entries, enough to feed the extractor names it must refuse. */
function storedZip(entries: { name: string; data: Buffer }[]): Buffer {
  const locals: Buffer[] = []
  const centrals: Buffer[] = []
  let offset = 0
  for (const { name, data } of entries) {
    const fileName = Buffer.from(name)
    const local = Buffer.alloc(30)
    local.writeUInt32LE(0x04034b50, 0)
    local.writeUInt32LE(crc32(data), 14)
    local.writeUInt32LE(data.length, 18)
    local.writeUInt32LE(data.length, 22)
    local.writeUInt16LE(fileName.length, 26)
    const central = Buffer.alloc(46)
    central.writeUInt32LE(0x02014b50, 0)
    central.writeUInt32LE(crc32(data), 16)
    central.writeUInt32LE(data.length, 20)
    central.writeUInt32LE(data.length, 24)
    central.writeUInt16LE(fileName.length, 28)
    central.writeUInt32LE(offset, 42)
    locals.push(local, fileName, data)
    centrals.push(central, fileName)
    offset += 30 + fileName.length + data.length
  }
  const directory = Buffer.concat(centrals)
  const end = Buffer.alloc(22)
  end.writeUInt32LE(0x06054b50, 0)
  end.writeUInt16LE(entries.length, 8)
  end.writeUInt16LE(entries.length, 10)
  end.writeUInt32LE(directory.length, 12)
  end.writeUInt32LE(offset, 16)
  return Buffer.concat([...locals, directory, end])
}

test('a download that does not match the pinned SHA-256 is refused and not cached', async (t) => {
  const cache = await tempDir(t)
  const proxy = await proxyServing(t, Buffer.from('PK not what was pinned'))
  const error = await downloadPgvector({ cache, proxy: proxy.url, log: () => {} }).catch((e: unknown) => e)
  assert.equal(kindOf(error), ErrorKinds.FATAL)
  assert.match(String(error), /has SHA-256 [0-9a-f]{64}, but 6abdf1f3\w+ is pinned/)
  assert.deepEqual(proxy.seen, [`/github.com/pgvector/pgvector/@v/v${pgvectorPin.version}.zip`])
  assert.deepEqual(await readdir(cache), [])
})

test('the pinned zip is kept in the cache and not downloaded again', { skip: noZip }, async (t) => {
  const cache = await tempDir(t)
  const proxy = await proxyServing(t, pinnedZip!)
  const first = await downloadPgvector({ cache, proxy: proxy.url, log: () => {} })
  const again = await downloadPgvector({ cache, proxy: proxy.url, log: () => {} })
  assert.equal(createHash('sha256').update(again).digest('hex'), pgvectorPin.sha256)
  assert.ok(first.equals(again))
  assert.equal(proxy.seen.length, 1)
})

test('the pinned zip unpacks to the pgvector sources of the pinned version', { skip: noZip }, async (t) => {
  const dest = await tempDir(t)
  const files = await extractZip(pinnedZip!, dest, PREFIX)
  assert.ok(files > 100, `${files} files`)
  const control = await readFile(join(dest, 'vector.control'), 'utf8')
  assert.match(control, new RegExp(`default_version = '${pgvectorPin.version.replaceAll('.', '\\.')}'`))
  assert.match(await readFile(join(dest, 'Makefile'), 'utf8'), /OPTFLAGS = -march=native/)
  assert.ok((await readdir(join(dest, 'src'))).includes('hnsw.c'))
})

test('zip entries that would land outside the folder are refused', async (t) => {
  const dest = await tempDir(t)
  const ok = { name: 'p/ok.txt', data: Buffer.from('fine') }
  assert.equal(await extractZip(storedZip([ok]), dest, 'p/'), 1)
  assert.equal(await readFile(join(dest, 'ok.txt'), 'utf8'), 'fine')
  for (const name of ['p/../escape.txt', 'p//etc/x', 'p/a\\..\\b']) {
    const bad = storedZip([{ name, data: Buffer.from('x') }])
    await assert.rejects(extractZip(bad, dest, 'p/'), /refusing entry name/, name)
  }
  const corrupt = storedZip([ok])
  const at = 30 + ok.name.length // flip a bit of the data: the CRC-32 no longer matches
  corrupt.writeUInt8(corrupt.readUInt8(at) ^ 1, at)
  await assert.rejects(extractZip(corrupt, dest, 'p/'), /corrupt/)
})

test('the module proxy: SFM_GOPROXY, else the first URL of GOPROXY, else proxy.golang.org', () => {
  assert.equal(goProxy({}), 'https://proxy.golang.org')
  assert.equal(goProxy({ GOPROXY: 'direct' }), 'https://proxy.golang.org')
  assert.equal(goProxy({ GOPROXY: 'off,https://goproxy.example/,direct' }), 'https://goproxy.example')
  assert.equal(
    goProxy({ GOPROXY: 'https://a.example', SFM_GOPROXY: 'http://127.0.0.1:3000/' }),
    'http://127.0.0.1:3000'
  )
})

test('pg_config of the stack PostgreSQL locates the extension folders', async (t) => {
  const bin = await requirePostgresBin().catch(() => undefined)
  if (bin === undefined) return t.skip('no PostgreSQL server binaries')
  const target = await pgvectorTarget(bin)
  assert.ok(target.major >= 13, `PostgreSQL ${target.major}`)
  assert.match(target.extensionDir, /\/extension$/)
  // plpgsql ships with every server: the folders are the real ones.
  assert.ok((await readdir(target.extensionDir)).includes('plpgsql.control'))
  assert.ok((await readdir(target.libDir)).includes('plpgsql.so'))
  t.diagnostic(`pgvector ${target.installed ?? 'not installed'} in PostgreSQL ${target.major}`)
})
