import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { FatalError } from '../../src/errors.ts'
import {
  describeKafkaConnection,
  explainKafkaError,
  KafkaConnectionVariables,
  kafkaConnectionOptions
} from '../../src/kafka/connection.ts'

const PASSWORD = 'pw-do-not-print-7f3a'
// Any PEM-looking content will do for option parsing; the broker test uses real certificates.
const CERT = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n'
const KEY = '-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n'

async function files(t: import('node:test').TestContext) {
  const dir = await mkdtemp(join(tmpdir(), 'sfm-connection-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const path = (name: string) => join(dir, name)
  await writeFile(path('ca.crt'), CERT)
  await writeFile(path('user.crt'), CERT)
  await writeFile(path('user.key'), KEY)
  await writeFile(path('password'), `${PASSWORD}\n`)
  await writeFile(path('empty'), '')
  await writeFile(path('not-pem'), 'hello')
  return path
}

/** The FatalError kafkaConnectionOptions throws for `env`, checked to be a config error that hides the password. */
function refusal(env: NodeJS.ProcessEnv): FatalError {
  let caught: unknown
  try {
    kafkaConnectionOptions(env)
  } catch (error) {
    caught = error
  }
  assert.ok(caught instanceof FatalError, `expected a FatalError for ${JSON.stringify(Object.keys(env))}`)
  assert.equal(caught.code, 'SFM_CONFIG')
  assert.ok(!caught.message.includes(PASSWORD), 'the password must not appear in the message')
  assert.ok(!JSON.stringify(caught.details).includes(PASSWORD))
  return caught
}

test('nothing set: plaintext, no authentication', () => {
  assert.deepEqual(kafkaConnectionOptions({}), {})
  assert.deepEqual(kafkaConnectionOptions({ KAFKA_TLS: 'false', KAFKA_SASL_MECHANISM: '' }), {})
  assert.equal(describeKafkaConnection({}), 'plaintext')
})

test('SCRAM from the environment: mechanism in any case, password inline or from a file (re-read, newline dropped)', async (t) => {
  const path = await files(t)
  const inline = kafkaConnectionOptions({
    KAFKA_SASL_MECHANISM: 'scram-sha-512',
    KAFKA_SASL_USERNAME: 'sfm-memory',
    KAFKA_SASL_PASSWORD: PASSWORD
  })
  assert.deepEqual(inline, { sasl: { mechanism: 'SCRAM-SHA-512', username: 'sfm-memory', password: PASSWORD } })
  assert.equal(describeKafkaConnection(inline), 'SASL SCRAM-SHA-512 as sfm-memory')

  const fromFile = kafkaConnectionOptions({
    KAFKA_SASL_MECHANISM: 'PLAIN',
    KAFKA_SASL_USERNAME: 'u',
    KAFKA_SASL_PASSWORD_FILE: path('password')
  })
  const provider = fromFile.sasl?.password
  assert.equal(typeof provider, 'function')
  assert.equal(await (provider as () => Promise<string>)(), PASSWORD)
  // A rotated Secret is read at the next connection.
  await writeFile(path('password'), 'rotated')
  assert.equal(await (provider as () => Promise<string>)(), 'rotated')
  assert.ok(!describeKafkaConnection(fromFile).includes(PASSWORD))
})

test('TLS from the environment: implied by a file, CA and client certificate read, verification switch', async (t) => {
  const path = await files(t)
  const ca = kafkaConnectionOptions({ KAFKA_TLS_CA_FILE: path('ca.crt') })
  assert.deepEqual(ca, { tls: { ca: CERT } })
  assert.equal(describeKafkaConnection(ca), 'TLS (cluster CA)')
  assert.deepEqual(kafkaConnectionOptions({ KAFKA_TLS: 'true' }), { tls: {} })
  const mutual = kafkaConnectionOptions({
    KAFKA_TLS_CA_FILE: path('ca.crt'),
    KAFKA_TLS_CERT_FILE: path('user.crt'),
    KAFKA_TLS_KEY_FILE: path('user.key')
  })
  assert.deepEqual(mutual, { tls: { ca: CERT, cert: CERT, key: KEY } })
  assert.equal(describeKafkaConnection(mutual), 'TLS (cluster CA, client certificate)')
  const unverified = kafkaConnectionOptions({ KAFKA_TLS: 'yes', KAFKA_TLS_REJECT_UNAUTHORIZED: 'false' })
  assert.deepEqual(unverified, { tls: { rejectUnauthorized: false } })
  assert.match(describeKafkaConnection(unverified), /NOT verified/)
  const both = kafkaConnectionOptions({
    KAFKA_TLS_CA_FILE: path('ca.crt'),
    KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512',
    KAFKA_SASL_USERNAME: 'sfm-memory',
    KAFKA_SASL_PASSWORD: PASSWORD
  })
  assert.equal(describeKafkaConnection(both), 'TLS (cluster CA) + SASL SCRAM-SHA-512 as sfm-memory')
})

test('a group set halfway, a bad value or an unreadable file is a config error naming the variable', async (t) => {
  const path = await files(t)
  const cases: Array<[NodeJS.ProcessEnv, RegExp]> = [
    [
      { KAFKA_SASL_MECHANISM: 'GSSAPI', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: PASSWORD },
      /^KAFKA_SASL_MECHANISM: "GSSAPI" is not supported/
    ],
    [{ KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512', KAFKA_SASL_PASSWORD: PASSWORD }, /^KAFKA_SASL_USERNAME is not set/],
    [
      { KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512', KAFKA_SASL_USERNAME: 'u' },
      /^KAFKA_SASL_PASSWORD \(or KAFKA_SASL_PASSWORD_FILE\) is not set/
    ],
    [
      { KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: PASSWORD },
      /^KAFKA_SASL_USERNAME is set but KAFKA_SASL_MECHANISM is not/
    ],
    [{ KAFKA_SASL_PASSWORD: PASSWORD }, /^KAFKA_SASL_PASSWORD is set but KAFKA_SASL_MECHANISM is not/],
    [
      {
        KAFKA_SASL_MECHANISM: 'PLAIN',
        KAFKA_SASL_USERNAME: 'u',
        KAFKA_SASL_PASSWORD: PASSWORD,
        KAFKA_SASL_PASSWORD_FILE: path('password')
      },
      /^KAFKA_SASL_PASSWORD and KAFKA_SASL_PASSWORD_FILE are both set/
    ],
    [
      { KAFKA_SASL_MECHANISM: 'PLAIN', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD_FILE: path('nope') },
      /^KAFKA_SASL_PASSWORD_FILE: cannot read .*nope \(ENOENT\)/
    ],
    [
      { KAFKA_SASL_MECHANISM: 'PLAIN', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD_FILE: path('empty') },
      /^KAFKA_SASL_PASSWORD_FILE: .*empty is empty/
    ],
    [{ KAFKA_TLS: 'maybe' }, /^KAFKA_TLS: expected true or false, got "maybe"/],
    [{ KAFKA_TLS: 'false', KAFKA_TLS_CA_FILE: path('ca.crt') }, /^KAFKA_TLS is false but KAFKA_TLS_CA_FILE is set/],
    [{ KAFKA_TLS_CA_FILE: path('missing.crt') }, /^KAFKA_TLS_CA_FILE: cannot read .*missing\.crt \(ENOENT\)/],
    [{ KAFKA_TLS_CA_FILE: path('not-pem') }, /^KAFKA_TLS_CA_FILE: .*not-pem holds no PEM certificate/],
    [{ KAFKA_TLS_CERT_FILE: path('user.crt') }, /^KAFKA_TLS_KEY_FILE is not set \(KAFKA_TLS_CERT_FILE is\)/],
    [{ KAFKA_TLS_KEY_FILE: path('user.key') }, /^KAFKA_TLS_CERT_FILE is not set \(KAFKA_TLS_KEY_FILE is\)/],
    [
      { KAFKA_TLS_CERT_FILE: path('user.crt'), KAFKA_TLS_KEY_FILE: path('user.crt') },
      /^KAFKA_TLS_KEY_FILE: .* holds no PEM private key/
    ],
    [{ KAFKA_TLS_REJECT_UNAUTHORIZED: 'false' }, /^KAFKA_TLS_REJECT_UNAUTHORIZED is set but TLS is off/]
  ]
  for (const [env, expected] of cases) {
    const error = refusal(env)
    assert.match(error.message, expected)
    const variable = String(error.details.variable)
    assert.ok(KafkaConnectionVariables.includes(variable as (typeof KafkaConnectionVariables)[number]), variable)
    assert.ok(error.message.includes(variable), `${error.message} should name ${variable}`)
  }
})

test('broker answers: refused credentials, untrusted certificates and TLS mismatches become config errors', () => {
  const context = { brokers: ['b:9093'], doing: 'consuming t' }
  // The shapes @platformatic/kafka produces: an AuthenticationError (canRetry false) inside a retriable
  // NetworkError, inside the MultipleErrors of a retried operation.
  const auth = Object.assign(new Error('SASL authentication failed.'), { code: 'PLT_KFK_AUTHENTICATION' })
  const network = Object.assign(new Error('Connection to b:9093 failed.', { cause: auth }), { code: 'PLT_KFK_NETWORK' })
  const multiple = Object.assign(new AggregateError([network, network], 'findCoordinator failed 3 times.'), {
    code: 'PLT_KFK_MULTIPLE'
  })
  const refused = explainKafkaError(multiple, context)
  assert.ok(refused instanceof FatalError)
  assert.match(refused.message, /^consuming t: Kafka at b:9093 refused the SASL authentication .*KAFKA_SASL_PASSWORD/)

  const cert = Object.assign(new Error('self-signed certificate in certificate chain'), {
    code: 'SELF_SIGNED_CERT_IN_CHAIN'
  })
  const untrusted = explainKafkaError(Object.assign(new Error('Connection failed.', { cause: cert })), context)
  assert.match(untrusted?.message ?? '', /does not verify \(SELF_SIGNED_CERT_IN_CHAIN: .*set KAFKA_TLS_CA_FILE/)

  const requiresTls = Object.assign(new Error('Broker requires TLS.'), { code: 'PLT_KFK_USER' })
  assert.match(explainKafkaError(requiresTls, context)?.message ?? '', /set KAFKA_TLS=true/)

  const denied = Object.assign(new Error('Topic authorization failed.'), { apiId: 'TOPIC_AUTHORIZATION_FAILED' })
  assert.match(explainKafkaError(new AggregateError([denied]), context)?.message ?? '', /denied access/)

  const refusedConnection = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })
  assert.equal(explainKafkaError(refusedConnection, context), undefined, 'a broker that is down stays retriable')
})
