import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { errorMessage } from '../errors.ts'
import type { Logger } from '../logger.ts'
import { DeadLetterHeaders } from '../streams/dead-letter.ts'
import {
  listDeadLetters,
  lookupMemory,
  type MemorySources,
  parseDeadLetterFilter,
  RequestError,
  readDeadLetter,
  type TopicReader
} from './data.ts'
import { CONSOLE_PAGE } from './page.ts'
import type { ConsoleRecorder } from './recorder.ts'

/** Which letters a redrive takes: by stage and error code, as `npm run dlq -- redrive` selects them. */
export interface RedriveSelection {
  stage?: string
  errorCode?: string
}

/** What a redrive did (the fields of `npm run dlq -- redrive`'s report the page shows). */
export interface RedriveResult {
  readonly matched: number
  readonly redriven: number
  readonly alreadyRedriven?: number
  readonly refused?: readonly unknown[]
}

/** Puts dead letters back on their source topic; the console calls it only with writes allowed. */
export type Redrive = (selection: RedriveSelection) => Promise<RedriveResult>

export interface ConsoleOptions {
  recorder: ConsoleRecorder
  /** Reads the DLQ and audit topics (Kafka or the embedded log). */
  reader: TopicReader
  dlqTopic: string
  memory: MemorySources
  port: number
  host?: string
  allowWrites?: boolean
  redrive?: Redrive
  logger?: Logger
}

export interface ConsoleServer {
  readonly url: string
  close(): Promise<void>
}

/** The header a write request must carry: a page from another origin cannot send it without a CORS preflight. */
const WRITE_HEADER = 'x-sfm-console'

/**
 * The console's HTTP server: the page (one self-contained HTML document, no external assets) and its JSON API, on
 * 127.0.0.1 unless told otherwise. Read-only unless `allowWrites`.
 */
export async function startConsole(options: ConsoleOptions): Promise<ConsoleServer> {
  const host = options.host ?? '127.0.0.1'
  const server: Server = createServer((req, res) => {
    handle(options, req, res).catch((error: unknown) => {
      const status = error instanceof RequestError ? error.status : 500
      if (status === 500) options.logger?.warn(`console: ${req.method} ${req.url}: ${errorMessage(error)}`)
      sendJson(res, status, { error: errorMessage(error) })
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const address = server.address() as AddressInfo
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address
  return {
    url: `http://${shownHost}:${address.port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return
  const text = JSON.stringify(body, (_k, v) => (typeof v === 'bigint' ? String(v) : v))
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff'
  })
  res.end(text)
}

const MAX_BODY = 16 * 1024

async function readBody(req: IncomingMessage): Promise<unknown> {
  let size = 0
  const chunks: Buffer[] = []
  for await (const chunk of req) {
    size += (chunk as Buffer).length
    if (size > MAX_BODY) throw new RequestError(413, `request body larger than ${MAX_BODY} bytes`)
    chunks.push(chunk as Buffer)
  }
  if (size === 0) return {}
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw new RequestError(400, 'request body is not JSON')
  }
}

function integer(value: string | null, name: string): number {
  if (value === null || !/^\d{1,9}$/.test(value)) throw new RequestError(400, `${name} must be a whole number ≥ 0`)
  return Number(value)
}

function offsetOf(value: string | null): bigint {
  if (value === null || !/^\d{1,19}$/.test(value)) throw new RequestError(400, 'offset must be a whole number ≥ 0')
  return BigInt(value)
}

async function handle(options: ConsoleOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://console.invalid')
  const path = url.pathname
  if (req.method === 'GET' && (path === '/' || path === '/index.html')) {
    res.writeHead(200, {
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      // Everything is inline; nothing may be loaded from elsewhere.
      'content-security-policy':
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
      'x-content-type-options': 'nosniff'
    })
    res.end(CONSOLE_PAGE)
    return
  }
  if (req.method === 'GET' && path === '/favicon.ico') {
    res.writeHead(204).end()
    return
  }
  if (req.method === 'GET' && path === '/api/graph') {
    return sendJson(res, 200, { ...options.recorder.graph, allowWrites: options.allowWrites === true })
  }
  if (req.method === 'GET' && path === '/api/stats') return sendJson(res, 200, options.recorder.stats())
  if (req.method === 'GET' && path === '/api/history') return sendJson(res, 200, options.recorder.history())
  if (req.method === 'GET' && path === '/api/dlq') {
    const filter = parseDeadLetterFilter(url.searchParams.get('filter'))
    return sendJson(res, 200, await listDeadLetters(options.reader, options.dlqTopic, filter))
  }
  if (req.method === 'GET' && path === '/api/dlq/letter') {
    const partition = integer(url.searchParams.get('partition'), 'partition')
    const offset = offsetOf(url.searchParams.get('offset'))
    return sendJson(res, 200, await readDeadLetter(options.reader, options.dlqTopic, partition, offset))
  }
  if (req.method === 'GET' && path === '/api/memory') {
    const id = url.searchParams.get('id') ?? ''
    return sendJson(res, 200, await lookupMemory(options.memory, id))
  }
  if (path === '/api/dlq/redrive') {
    if (req.method !== 'POST') throw new RequestError(405, 'redrive is a POST')
    if (!options.allowWrites) {
      throw new RequestError(
        403,
        'writes are not allowed: this console is read-only (restart the runner with --console-allow-writes to redrive)'
      )
    }
    if (req.headers[WRITE_HEADER] !== '1') throw new RequestError(403, `a write needs the ${WRITE_HEADER} header`)
    const body = (await readBody(req)) as { filter?: unknown; partition?: unknown; offset?: unknown }
    let selection: RedriveSelection
    if (body.partition !== undefined || body.offset !== undefined) {
      // One letter: its stage and error code (a redrive remembers its progress per stage × code).
      const letter = await readDeadLetter(
        options.reader,
        options.dlqTopic,
        integer(String(body.partition), 'partition'),
        offsetOf(String(body.offset))
      )
      const stage = letter.headers[DeadLetterHeaders.STAGE]
      const errorCode = letter.headers[DeadLetterHeaders.ERROR_CODE]
      if (!stage || !errorCode) throw new RequestError(400, 'this letter has no sfm.dlq.stage / sfm.dlq.error.code')
      selection = { stage, errorCode }
    } else {
      const filter = parseDeadLetterFilter(typeof body.filter === 'string' ? body.filter : '')
      if (filter.class !== undefined) {
        throw new RequestError(
          400,
          'a redrive selects letters by stage and code (as npm run dlq -- redrive): remove class: from the filter'
        )
      }
      selection = {
        ...(filter.stage === undefined ? {} : { stage: filter.stage }),
        ...(filter.code === undefined ? {} : { errorCode: filter.code })
      }
    }
    if (!options.redrive) throw new RequestError(501, 'redrive is not available in this build (npm run dlq -- redrive)')
    return sendJson(res, 200, { selection, ...(await options.redrive(selection)) })
  }
  throw new RequestError(404, `no such page: ${path}`)
}
