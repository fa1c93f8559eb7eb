import { mkdir, writeFile } from 'node:fs/promises'
import { dirname, join, posix } from 'node:path'
import { crc32, inflateRawSync } from 'node:zlib'
import { FatalError } from '../../src/errors.ts'

const EOCD_SIGNATURE = 0x06054b50
const CENTRAL_SIGNATURE = 0x02014b50
const LOCAL_SIGNATURE = 0x04034b50
const METHOD_STORED = 0
const METHOD_DEFLATE = 8
/** A source archive has a few hundred files; the extracted size is bounded by the caller's archive size anyway. */
const MAX_ENTRY_BYTES = 64 << 20

/**
 * Unpacks the files of a zip archive whose names start with `prefix` into `dest`, without the prefix. Only what
 * a module zip from a Go proxy uses (stored or deflated entries, no zip64, no encryption): a fresh Debian has no
 * `unzip`, and GNU tar does not read zip. Names that would land outside `dest` (`..`, absolute, backslashes) are
 * refused, and every entry's CRC-32 is checked. Returns the number of files written.
 */
export async function extractZip(zip: Buffer, dest: string, prefix: string): Promise<number> {
  const fail = (why: string): never => {
    throw new FatalError(`zip: ${why}`)
  }
  // The end-of-central-directory record is within the last 22 + 65535 (comment) bytes.
  let eocd = -1
  for (let i = zip.length - 22; i >= Math.max(0, zip.length - 22 - 0xffff); i--) {
    if (zip.readUInt32LE(i) === EOCD_SIGNATURE) {
      eocd = i
      break
    }
  }
  if (eocd < 0) fail('no end-of-central-directory record: not a zip archive')
  const entries = zip.readUInt16LE(eocd + 10)
  let at = zip.readUInt32LE(eocd + 16)
  let written = 0
  for (let n = 0; n < entries; n++) {
    if (at + 46 > zip.length || zip.readUInt32LE(at) !== CENTRAL_SIGNATURE) fail(`bad central directory entry ${n}`)
    const flags = zip.readUInt16LE(at + 8)
    const method = zip.readUInt16LE(at + 10)
    const crc = zip.readUInt32LE(at + 16)
    const compressedSize = zip.readUInt32LE(at + 20)
    const size = zip.readUInt32LE(at + 24)
    const nameLength = zip.readUInt16LE(at + 28)
    const next = at + 46 + nameLength + zip.readUInt16LE(at + 30) + zip.readUInt16LE(at + 32)
    const localOffset = zip.readUInt32LE(at + 42)
    const name = zip.toString('utf8', at + 46, at + 46 + nameLength)
    at = next
    if (!name.startsWith(prefix) || name.endsWith('/')) continue
    const relative = name.slice(prefix.length)
    const parts = relative.split('/')
    if (relative === '' || relative.includes('\\') || posix.isAbsolute(relative) || parts.includes('..')) {
      fail(`refusing entry name ${JSON.stringify(name)}`)
    }
    if ((flags & 1) !== 0) fail(`${name} is encrypted`)
    if (size > MAX_ENTRY_BYTES) fail(`${name} is ${size} bytes`)
    if (zip.readUInt32LE(localOffset) !== LOCAL_SIGNATURE) fail(`bad local header for ${name}`)
    const start = localOffset + 30 + zip.readUInt16LE(localOffset + 26) + zip.readUInt16LE(localOffset + 28)
    const raw = zip.subarray(start, start + compressedSize)
    let data: Buffer
    if (method === METHOD_STORED) data = raw
    else if (method === METHOD_DEFLATE) data = inflateRawSync(raw, { maxOutputLength: Math.max(1, size) })
    else data = fail(`${name} uses compression method ${method}`)
    if (data.length !== size || crc32(data) !== crc) fail(`${name} is corrupt (size or CRC-32 mismatch)`)
    const target = join(dest, ...parts)
    await mkdir(dirname(target), { recursive: true })
    await writeFile(target, data)
    written++
  }
  return written
}
