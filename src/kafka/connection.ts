import { readFileSync, statSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import type { ConnectionOptions as TlsOptions } from 'node:tls'
import type { SASLOptions } from '@platformatic/kafka'
import { ErrorCodes, FatalError } from '../errors.ts'

/** Parses `a:1,b:2` into broker addresses, refusing anything that is not `host:port`. */
export function parseBrokers(value: string | undefined, variable = 'KAFKA_BROKERS'): string[] {
  const brokers = (value ?? '')
    .split(',')
    .map((b) => b.trim())
    .filter((b) => b.length > 0)
  for (const broker of brokers) {
    if (!/^[^\s:]+:\d{1,5}$/.test(broker) && !/^\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(broker)) {
      throw new FatalError(`${variable}: "${broker}" is not host:port`, { code: ErrorCodes.CONFIG })
    }
  }
  return brokers
}

/**
 * How every Kafka client of the framework (the source's consumer, the producers behind sinks and the DLQ, the
 * admins of `npm run topics` and `npm run produce`) authenticates and encrypts: the `tls` and `sasl` options of
 * @platformatic/kafka, read from the environment so that one Deployment configures them all.
 *
 * | variable | meaning |
 * |---|---|
 * | `KAFKA_SASL_MECHANISM` | `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512` (Strimzi `scram-sha-512` users) |
 * | `KAFKA_SASL_USERNAME` | the user (Strimzi: the KafkaUser's name) |
 * | `KAFKA_SASL_PASSWORD` / `KAFKA_SASL_PASSWORD_FILE` | one of them: the password, or a file holding it (a mounted Secret, key `password`) |
 * | `KAFKA_TLS` | `true` for a TLS listener; implied by any `KAFKA_TLS_*_FILE` |
 * | `KAFKA_TLS_CA_FILE` | PEM CA bundle the brokers' certificates must chain to (Strimzi: `<cluster>-cluster-ca-cert`, key `ca.crt`); unset: the system CAs |
 * | `KAFKA_TLS_CERT_FILE` + `KAFKA_TLS_KEY_FILE` | client certificate and key for mutual TLS (Strimzi `tls` users: `user.crt`, `user.key`) |
 * | `KAFKA_TLS_REJECT_UNAUTHORIZED` | `false` turns certificate verification off (never in production) |
 *
 * A group set halfway (a user without a password, a certificate without its key, an unreadable file) is a
 * configuration error naming the variable. The password never appears in a message, a description or a log line.
 */
export interface KafkaConnectionOptions {
  /** Node TLS options; set: every connection is TLS. */
  tls?: TlsOptions
  sasl?: SASLOptions
}

export const SaslMechanisms = {
  PLAIN: 'PLAIN',
  SCRAM_SHA_256: 'SCRAM-SHA-256',
  SCRAM_SHA_512: 'SCRAM-SHA-512'
} as const
export type SaslMechanism = (typeof SaslMechanisms)[keyof typeof SaslMechanisms]

const MECHANISMS: readonly string[] = Object.values(SaslMechanisms)

/** Every variable this module reads, for help texts and tests. */
export const KafkaConnectionVariables = [
  'KAFKA_SASL_MECHANISM',
  'KAFKA_SASL_USERNAME',
  'KAFKA_SASL_PASSWORD',
  'KAFKA_SASL_PASSWORD_FILE',
  'KAFKA_TLS',
  'KAFKA_TLS_CA_FILE',
  'KAFKA_TLS_CERT_FILE',
  'KAFKA_TLS_KEY_FILE',
  'KAFKA_TLS_REJECT_UNAUTHORIZED'
] as const

/** A Secret or config file bigger than this is not a PEM bundle or a password: refuse it before reading it all. */
const MAX_FILE_BYTES = 1024 * 1024

const configError = (message: string, variable: string) =>
  new FatalError(message, { code: ErrorCodes.CONFIG, details: { variable } })

function value(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const v = env[name]
  return v === undefined || v.trim() === '' ? undefined : v
}

function flag(env: NodeJS.ProcessEnv, name: string): boolean | undefined {
  const v = value(env, name)
  if (v === undefined) return undefined
  if (/^(1|true|yes|on)$/i.test(v.trim())) return true
  if (/^(0|false|no|off)$/i.test(v.trim())) return false
  throw configError(`${name}: expected true or false, got "${v}"`, name)
}

/** Reads a file a variable names; the message names the variable and the path, never the content. */
function readNamedFile(variable: string, path: string): string {
  try {
    if (statSync(path).size > MAX_FILE_BYTES) {
      throw configError(`${variable}: ${path} is over ${MAX_FILE_BYTES} bytes`, variable)
    }
    return readFileSync(path, 'utf8')
  } catch (error) {
    if (error instanceof FatalError) throw error
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable'
    throw configError(`${variable}: cannot read ${path} (${code})`, variable)
  }
}

function readPem(variable: string, path: string, label: RegExp, what: string): string {
  const text = readNamedFile(variable, path)
  if (!label.test(text)) throw configError(`${variable}: ${path} holds no PEM ${what}`, variable)
  return text
}

/**
 * A mounted Secret's file holds the password as is; one written with `echo` ends with a newline that is not part of
 * it. Only that last line break is dropped.
 */
const stripLineEnd = (text: string) => text.replace(/\r?\n$/, '')

function readPassword(variable: string, path: string): string {
  const password = stripLineEnd(readNamedFile(variable, path))
  if (password === '') throw configError(`${variable}: ${path} is empty`, variable)
  return password
}

function resolveSasl(env: NodeJS.ProcessEnv): SASLOptions | undefined {
  const raw = value(env, 'KAFKA_SASL_MECHANISM')
  const username = value(env, 'KAFKA_SASL_USERNAME')
  const password = env.KAFKA_SASL_PASSWORD === '' ? undefined : env.KAFKA_SASL_PASSWORD
  const passwordFile = value(env, 'KAFKA_SASL_PASSWORD_FILE')
  if (raw === undefined) {
    const stray = [
      username && 'KAFKA_SASL_USERNAME',
      password !== undefined && 'KAFKA_SASL_PASSWORD',
      passwordFile && 'KAFKA_SASL_PASSWORD_FILE'
    ].find(Boolean)
    if (stray) {
      throw configError(
        `${stray} is set but KAFKA_SASL_MECHANISM is not: set it to ${MECHANISMS.join(', ')}`,
        'KAFKA_SASL_MECHANISM'
      )
    }
    return undefined
  }
  // Strimzi spells the type `scram-sha-512` in a KafkaUser; accept any case.
  const mechanism = raw.trim().toUpperCase()
  if (!MECHANISMS.includes(mechanism)) {
    throw configError(
      `KAFKA_SASL_MECHANISM: "${raw}" is not supported (expected ${MECHANISMS.join(', ')})`,
      'KAFKA_SASL_MECHANISM'
    )
  }
  if (username === undefined) {
    throw configError(`KAFKA_SASL_USERNAME is not set (KAFKA_SASL_MECHANISM is ${mechanism})`, 'KAFKA_SASL_USERNAME')
  }
  if (password !== undefined && passwordFile !== undefined) {
    throw configError(
      'KAFKA_SASL_PASSWORD and KAFKA_SASL_PASSWORD_FILE are both set: keep one',
      'KAFKA_SASL_PASSWORD_FILE'
    )
  }
  if (password === undefined && passwordFile === undefined) {
    throw configError(
      `KAFKA_SASL_PASSWORD (or KAFKA_SASL_PASSWORD_FILE) is not set (KAFKA_SASL_MECHANISM is ${mechanism})`,
      'KAFKA_SASL_PASSWORD'
    )
  }
  const sasl: SASLOptions = { mechanism: mechanism as SaslMechanism, username }
  if (passwordFile === undefined) {
    sasl.password = password
  } else {
    // Checked now, so a wrong path stops the start; read again at each connection, so a rotated Secret (the kubelet
    // updates mounted Secrets in place) is picked up without a restart. The library accepts a provider here.
    readPassword('KAFKA_SASL_PASSWORD_FILE', passwordFile)
    sasl.password = async () => {
      const text = stripLineEnd(await readFile(passwordFile, 'utf8'))
      if (text === '') throw new FatalError(`KAFKA_SASL_PASSWORD_FILE: ${passwordFile} is empty`)
      return text
    }
  }
  return sasl
}

function resolveTls(env: NodeJS.ProcessEnv): TlsOptions | undefined {
  const caFile = value(env, 'KAFKA_TLS_CA_FILE')
  const certFile = value(env, 'KAFKA_TLS_CERT_FILE')
  const keyFile = value(env, 'KAFKA_TLS_KEY_FILE')
  const reject = flag(env, 'KAFKA_TLS_REJECT_UNAUTHORIZED')
  const files = [caFile && 'KAFKA_TLS_CA_FILE', certFile && 'KAFKA_TLS_CERT_FILE', keyFile && 'KAFKA_TLS_KEY_FILE']
  const named = files.find(Boolean)
  const enabled = flag(env, 'KAFKA_TLS')
  if (enabled === false && named) {
    throw configError(`KAFKA_TLS is false but ${named} is set: remove one of them`, 'KAFKA_TLS')
  }
  if (enabled === false || (enabled === undefined && !named)) {
    if (reject !== undefined) {
      throw configError(
        'KAFKA_TLS_REJECT_UNAUTHORIZED is set but TLS is off: set KAFKA_TLS=true',
        'KAFKA_TLS_REJECT_UNAUTHORIZED'
      )
    }
    return undefined
  }
  if ((certFile === undefined) !== (keyFile === undefined)) {
    const [set, missing] = certFile
      ? ['KAFKA_TLS_CERT_FILE', 'KAFKA_TLS_KEY_FILE']
      : ['KAFKA_TLS_KEY_FILE', 'KAFKA_TLS_CERT_FILE']
    throw configError(`${missing} is not set (${set} is): mutual TLS needs both`, missing)
  }
  const tls: TlsOptions = {}
  if (caFile) tls.ca = readPem('KAFKA_TLS_CA_FILE', caFile, /-----BEGIN CERTIFICATE-----/, 'certificate')
  if (certFile && keyFile) {
    tls.cert = readPem('KAFKA_TLS_CERT_FILE', certFile, /-----BEGIN CERTIFICATE-----/, 'certificate')
    tls.key = readPem('KAFKA_TLS_KEY_FILE', keyFile, /-----BEGIN [A-Z ]*PRIVATE KEY-----/, 'private key')
  }
  if (reject === false) tls.rejectUnauthorized = false
  return tls
}

/**
 * The `tls` / `sasl` options for a @platformatic/kafka client, from the environment; `{}` when nothing is set
 * (plaintext, no authentication). Throws a FatalError (code SFM_CONFIG) naming the variable that is wrong.
 */
export function kafkaConnectionOptions(env: NodeJS.ProcessEnv = process.env): KafkaConnectionOptions {
  const sasl = resolveSasl(env)
  const tls = resolveTls(env)
  return { ...(tls ? { tls } : {}), ...(sasl ? { sasl } : {}) }
}

/** One line for a start banner: how the clients connect, without any secret. */
export function describeKafkaConnection(options: KafkaConnectionOptions): string {
  const parts: string[] = []
  if (options.tls) {
    const verify = options.tls.rejectUnauthorized === false ? 'certificates NOT verified' : undefined
    const ca = options.tls.ca ? 'cluster CA' : 'system CAs'
    const client = options.tls.cert ? 'client certificate' : undefined
    parts.push(`TLS (${[verify ?? ca, client].filter(Boolean).join(', ')})`)
  }
  if (options.sasl) {
    const user = typeof options.sasl.username === 'string' ? ` as ${options.sasl.username}` : ''
    parts.push(`SASL ${options.sasl.mechanism}${user}`)
  }
  return parts.length > 0 ? parts.join(' + ') : 'plaintext'
}

// --- broker answers -----------------------------------------------------------------------------------------------

/** Node's codes for a peer certificate that does not verify (node:tls / OpenSSL X509_V_ERR_*). */
const CERTIFICATE_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'CERT_REJECTED',
  'ERR_TLS_CERT_ALTNAME_INVALID'
])

interface Found {
  readonly error: Error & { code?: unknown; apiId?: unknown; serverErrorMessage?: unknown }
}

/** Breadth-first over `errors` (MultipleErrors) and `cause`, a bounded number of nodes. */
function findInChain(error: unknown, match: (e: Found['error']) => boolean): Found['error'] | undefined {
  const queue: unknown[] = [error]
  const seen = new Set<unknown>()
  while (queue.length > 0 && seen.size < 64) {
    const next = queue.shift()
    if (!next || typeof next !== 'object' || seen.has(next)) continue
    seen.add(next)
    const e = next as Found['error'] & { errors?: unknown; cause?: unknown }
    if (match(e)) return e
    if (Array.isArray(e.errors)) queue.push(...e.errors)
    queue.push(e.cause)
  }
  return undefined
}

/**
 * The message of `found` and what lies under it: the broker's own words when it sent any ("Authentication failed
 * during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"), else the protocol error.
 */
function detail(found: Found['error']): string {
  const server = findInChain(found, (e) => typeof e.serverErrorMessage === 'string' && e.serverErrorMessage !== '')
  if (server) return `${found.message} ${String(server.serverErrorMessage)}`
  const protocol = findInChain(found, (e) => e !== found && e.code === 'PLT_KFK_PROTOCOL')
  return protocol ? `${found.message} ${protocol.message}` : found.message
}

export interface KafkaErrorContext {
  /** The bootstrap brokers, for the message. */
  brokers: readonly string[]
  /** What was being done: "consuming memory.events", "producing to memory.dlq", … */
  doing: string
}

/**
 * A connection failure that no retry can fix, as a FatalError that says what to change: authentication refused
 * (wrong user, password or mechanism), a broker certificate that does not verify (missing or wrong CA), TLS
 * spoken to a plaintext listener or the other way round, access denied by an ACL. Undefined for anything else
 * (left to the caller's retry policy).
 *
 * @platformatic/kafka marks its AuthenticationError `canRetry: false`, but wraps it in a retriable NetworkError
 * ("Connection to … failed."), so a client retries it `retries` times and the caller sees the wrapper: the chain
 * has to be searched.
 */
export function explainKafkaError(error: unknown, context: KafkaErrorContext): FatalError | undefined {
  const where = context.brokers.join(',')
  // Most specific first: TLS spoken to the wrong listener also fails the SASL handshake that follows.
  const tlsMismatch = findInChain(
    error,
    (e) => e.code === 'PLT_KFK_USER' && /Broker requires TLS|TLS handshake failed/.test(e.message)
  )
  if (tlsMismatch) {
    const fix = /requires TLS/.test(tlsMismatch.message)
      ? 'the listener is TLS: set KAFKA_TLS=true (and KAFKA_TLS_CA_FILE)'
      : 'the listener does not speak TLS: unset KAFKA_TLS and KAFKA_TLS_* or use the TLS port'
    return new FatalError(`${context.doing}: ${tlsMismatch.message} at ${where}: ${fix}`, {
      code: ErrorCodes.CONFIG,
      cause: error
    })
  }
  const certificate = findInChain(error, (e) => typeof e.code === 'string' && CERTIFICATE_CODES.has(e.code))
  if (certificate) {
    return new FatalError(
      `${context.doing}: the TLS certificate of Kafka at ${where} does not verify (${String(certificate.code)}: ` +
        `${certificate.message}): set KAFKA_TLS_CA_FILE to the CA that signed it (Strimzi: Secret ` +
        '<cluster>-cluster-ca-cert, key ca.crt)',
      { code: ErrorCodes.CONFIG, cause: error }
    )
  }
  const auth = findInChain(error, (e) => e.code === 'PLT_KFK_AUTHENTICATION')
  if (auth) {
    // A TLS listener answers the SASL handshake's clear-text bytes by closing the connection; the library's own
    // "Broker requires TLS" detection only runs on the first request, whose failure the SASL path ignores.
    if (findInChain(auth, (e) => e !== auth && e.code === 'PLT_KFK_NETWORK' && /closed/i.test(e.message))) {
      return new FatalError(
        `${context.doing}: Kafka at ${where} closed the connection at the SASL handshake: if the listener is TLS, ` +
          'set KAFKA_TLS=true (and KAFKA_TLS_CA_FILE); otherwise check that it accepts KAFKA_SASL_MECHANISM',
        { code: ErrorCodes.CONFIG, cause: error }
      )
    }
    return new FatalError(
      `${context.doing}: Kafka at ${where} refused the SASL authentication (${detail(auth)}): ` +
        'check KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD / KAFKA_SASL_PASSWORD_FILE',
      { code: ErrorCodes.CONFIG, cause: error }
    )
  }
  const denied = findInChain(error, (e) => typeof e.apiId === 'string' && /_AUTHORIZATION_FAILED$/.test(e.apiId))
  if (denied) {
    return new FatalError(
      `${context.doing}: Kafka at ${where} denied access (${String(denied.apiId)}): the user's ACLs do not allow it`,
      { code: ErrorCodes.CONFIG, cause: error }
    )
  }
  return undefined
}

/** Any @platformatic/kafka client: each can ask for metadata with its own retry count. */
export interface MetadataClient {
  metadata(options: { topics: string[]; retries?: number }): Promise<unknown>
}

/**
 * One metadata round trip without retries, throwing only what `explainKafkaError` calls fatal (anything else is
 * left to the caller's own retries). @platformatic/kafka retries an authentication failure at every level of a
 * nested operation — a consumer's joinGroup × findGroupCoordinator × connect, about 20 s with the default
 * `retries: 3, retryDelay: 1000` — because the retriable NetworkError it is wrapped in hides its `canRetry: false`.
 */
export async function probeKafka(client: MetadataClient, topics: string[], context: KafkaErrorContext): Promise<void> {
  try {
    await client.metadata({ topics, retries: 0 })
  } catch (error) {
    const fatal = explainKafkaError(error, context)
    if (fatal) throw fatal
  }
}
