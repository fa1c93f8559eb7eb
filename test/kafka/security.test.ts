/**
 * TLS and SASL against a real broker: a private Kafka (the stack's jars and start-up code, scripts/stack/kafka.ts)
 * with a SCRAM-SHA-512 listener in clear text, a SCRAM-SHA-512 listener over TLS (what a Strimzi `tls` listener
 * with `scram-sha-512` authentication is) and a mutual-TLS listener, certificates from a throwaway CA made with
 * openssl. The framework's clients are configured the way a Deployment configures them: the KAFKA_SASL_* and
 * KAFKA_TLS* variables (src/kafka/connection.ts), through the real runner and the topics CLI.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { Admin } from '@platformatic/kafka'
import { kafkaVersion, stackDefaults } from '../../scripts/stack/config.ts'
import { ensureKafkaLibs, startKafka, stopKafka, waitForKafka } from '../../scripts/stack/kafka.ts'
import { freePort, run } from '../../scripts/stack/proc.ts'
import { requireJava, which } from '../../scripts/stack/requirements.ts'
import { main as topicsMain } from '../../src/cli/topics.ts'
import type { FatalError } from '../../src/errors.ts'
import { type KafkaConnectionOptions, kafkaConnectionOptions } from '../../src/kafka/connection.ts'
import { produceLines } from '../../src/kafka/produce.ts'
import { KafkaSource } from '../../src/sources/kafka/index.ts'
import type { SourceMessage } from '../../src/sources/types.ts'
import { startRunner } from '../helpers/runner.ts'

const HOST = stackDefaults.host
const USER = 'sfm-test'
const PASSWORD = `pw-${randomUUID()}`
const WRONG_PASSWORD = `wrong-${randomUUID()}`
const KEYSTORE_PASSWORD = 'changeit'

async function why(): Promise<string | false> {
  const java = await requireJava().catch(() => undefined)
  if (!java) return 'java (17+) not found: the test starts its own Kafka broker'
  if (!(await which('openssl'))) return 'openssl not found: the test makes its TLS certificates with it'
  return false
}
const skip = await why()
if (skip) process.stderr.write(`# skipping test/kafka/security.test.ts: ${skip}\n`)

interface Broker {
  dir: string
  /** SASL_PLAINTEXT, SCRAM-SHA-512. */
  sasl: string
  /** SASL_SSL, SCRAM-SHA-512 over TLS. */
  saslTls: string
  /** SSL with client certificates required. */
  mtls: string
  caFile: string
  wrongCaFile: string
  clientCertFile: string
  clientKeyFile: string
  passwordFile: string
}

async function openssl(dir: string, args: string[]): Promise<void> {
  const result = await run('openssl', args, { cwd: dir })
  if (result.code !== 0) throw new Error(`openssl ${args.join(' ')}: ${result.stderr}`)
}

/** A CA, a broker certificate for 127.0.0.1 in a PKCS12 keystore, a client certificate, and an unrelated CA. */
async function makeCertificates(dir: string): Promise<void> {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  await openssl(dir, [
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '2',
    '-subj',
    '/CN=sfm-test-ca'
  ])
  await openssl(dir, [
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'other.key',
    '-out',
    'other-ca.crt',
    '-days',
    '2',
    '-subj',
    '/CN=other-ca'
  ])
  await writeFile(join(dir, 'broker.ext'), `subjectAltName=IP:${HOST},DNS:localhost\n`)
  await writeFile(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n')
  for (const [name, cn, ext] of [
    ['broker', HOST, 'broker.ext'],
    ['client', USER, 'client.ext']
  ] as const) {
    await openssl(dir, ['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`])
    await openssl(dir, [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.crt`,
      '-days',
      '2',
      '-extfile',
      ext
    ])
  }
  await openssl(dir, [
    'pkcs12',
    '-export',
    '-in',
    'broker.crt',
    '-inkey',
    'broker.key',
    '-certfile',
    'ca.crt',
    '-name',
    'broker',
    '-out',
    'broker.p12',
    '-passout',
    `pass:${KEYSTORE_PASSWORD}`
  ])
}

async function startBroker(): Promise<Broker & { stop(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'sfm-kafka-security-'))
  const java = await requireJava()
  await makeCertificates(dir)
  const passwordFile = join(dir, 'password')
  await writeFile(passwordFile, `${PASSWORD}\n`)
  const [port, controllerPort, saslPort, saslTlsPort, mtlsPort] = [
    await freePort(HOST),
    await freePort(HOST),
    await freePort(HOST),
    await freePort(HOST),
    await freePort(HOST)
  ]
  const scram = 'org.apache.kafka.common.security.scram.ScramLoginModule required;'
  const listeners = `PLAINTEXT://${HOST}:${port},SASL_PLAINTEXT://${HOST}:${saslPort},SASL_SSL://${HOST}:${saslTlsPort},MTLS://${HOST}:${mtlsPort}`
  const stateDir = join(dir, 'state')
  const log = () => {}
  const pid = await startKafka({
    stateDir,
    java: java.path,
    libs: await ensureKafkaLibs(kafkaVersion(), log),
    port,
    controllerPort,
    autoCreateTopics: false,
    log,
    extraSettings: {
      listeners: `${listeners},CONTROLLER://${HOST}:${controllerPort}`,
      'advertised.listeners': listeners,
      'listener.security.protocol.map':
        'PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,MTLS:SSL',
      'sasl.enabled.mechanisms': 'SCRAM-SHA-512',
      'listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config': scram,
      'listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config': scram,
      'ssl.keystore.type': 'PKCS12',
      'ssl.keystore.location': join(dir, 'broker.p12'),
      'ssl.keystore.password': KEYSTORE_PASSWORD,
      'ssl.key.password': KEYSTORE_PASSWORD,
      'ssl.truststore.type': 'PEM',
      'ssl.truststore.location': join(dir, 'ca.crt'),
      'listener.name.mtls.ssl.client.auth': 'required'
    },
    formatArgs: ['--add-scram', `SCRAM-SHA-512=[name=${USER},password=${PASSWORD}]`]
  })
  // The broker is detached (it would outlive this process): kill it even if the test run is cut short.
  const killOnExit = () => {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // Already stopped.
    }
  }
  process.once('exit', killOnExit)
  const stop = async () => {
    await stopKafka(stateDir, 3_000, log).catch(() => {})
    process.removeListener('exit', killOnExit)
    await rm(dir, { recursive: true, force: true })
  }
  try {
    await waitForKafka(stateDir, port, pid, 60_000)
  } catch (error) {
    await stop()
    throw error
  }
  return {
    dir,
    stop,
    sasl: `${HOST}:${saslPort}`,
    saslTls: `${HOST}:${saslTlsPort}`,
    mtls: `${HOST}:${mtlsPort}`,
    caFile: join(dir, 'ca.crt'),
    wrongCaFile: join(dir, 'other-ca.crt'),
    clientCertFile: join(dir, 'client.crt'),
    clientKeyFile: join(dir, 'client.key'),
    passwordFile
  }
}

/** The environment of a process that must use only what it is given: no stack, no inherited Kafka settings. */
function cleanEnv(vars: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.startsWith('KAFKA_') && k !== 'DATABASE_URL') env[k] = v
  }
  // No fallback to the shared dev stack's stack.env (src/config.ts chooseStack).
  env.SFM_STACK_DIR = join(tmpdir(), 'sfm-no-stack')
  return { ...env, ...vars }
}

async function topics(env: Record<string, string>, prefix: string) {
  const out: string[] = []
  const err: string[] = []
  const code = await topicsMain(['apply', '--prefix', prefix, '--partitions', '1'], cleanEnv(env), {
    out: (l) => out.push(l),
    err: (l) => err.push(l)
  })
  return { code, stdout: out.join('\n'), stderr: err.join('\n') }
}

/** Reads `count` messages with the framework's source (its consumer group), then closes it. */
async function consume(
  brokers: string,
  connection: KafkaConnectionOptions,
  topic: string,
  count: number
): Promise<SourceMessage[]> {
  const source = new KafkaSource({
    topics: [topic],
    groupId: `g-${randomUUID().slice(0, 8)}`,
    brokers: [brokers],
    connection,
    maxWaitTime: 100,
    lagIntervalMs: 0
  })
  const out: SourceMessage[] = []
  const signal = AbortSignal.timeout(20_000)
  try {
    await source.open({ rebalancing: () => {}, assigned: () => {} })
    while (out.length < count) {
      const message = await source.next(signal)
      if (!message) break
      out.push(message)
    }
  } finally {
    await source.close()
  }
  return out
}

/** Runs the relay topology (Kafka source → Kafka sink, DLQ) with `env` until idle; its exit code and log. */
async function relay(env: Record<string, string>, prefix: string, idleSeconds = 1) {
  const runner = startRunner(
    'test/fixtures/relay.topology.ts',
    cleanEnv({
      RELAY_IN: `${prefix}.memory.events`,
      RELAY_OUT: `${prefix}.memory.audit`,
      RELAY_DLQ: `${prefix}.memory.dlq`,
      RELAY_GROUP: `relay-${prefix}`,
      ...env
    }),
    // The idle clock starts with the runner, before the first fetch: give a loaded machine time to deliver.
    [`--until-idle=${idleSeconds}`, '--status-interval=0']
  )
  const timer = setTimeout(() => runner.child.kill('SIGKILL'), 45_000)
  const [code] = (await once(runner.child, 'exit')) as [number | null]
  clearTimeout(timer)
  return { code, log: runner.stderr() }
}

function assertNoPassword(text: string): void {
  assert.ok(!text.includes(PASSWORD), 'the password must never be printed')
  assert.ok(!text.includes(WRONG_PASSWORD), 'not even a wrong one')
}

describe('Kafka over SASL/SCRAM and TLS', { skip, timeout: 120_000 }, () => {
  let broker: Broker & { stop(): Promise<void> }
  before(async () => {
    broker = await startBroker()
  })
  after(async () => {
    await broker?.stop()
  })

  test('SCRAM-SHA-512 over TLS with the cluster CA (the Strimzi listener): topics apply, produce, runner, source', async () => {
    const prefix = `s${randomUUID().slice(0, 8)}`
    const env = {
      KAFKA_BROKERS: broker.saslTls,
      KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512',
      KAFKA_SASL_USERNAME: USER,
      KAFKA_SASL_PASSWORD_FILE: broker.passwordFile,
      KAFKA_TLS_CA_FILE: broker.caFile
    }
    const applied = await topics(env, prefix)
    assert.equal(applied.code, 0, applied.stderr)
    assert.match(applied.stdout, new RegExp(`^\\+ create ${prefix}\\.memory\\.events`, 'm'))

    const connection = kafkaConnectionOptions(env)
    const lines = Array.from({ length: 20 }, (_, i) => JSON.stringify({ id: `m${i}`, n: i }))
    const report = await produceLines([...lines, 'not json'], {
      topic: `${prefix}.memory.events`,
      brokers: [broker.saslTls],
      connection,
      keyField: 'id'
    })
    assert.equal(report.sent, 20)

    const run = await relay({ ...env, KAFKA_SASL_PASSWORD: PASSWORD, KAFKA_SASL_PASSWORD_FILE: '' }, prefix, 4)
    assert.equal(run.code, 0, run.log)
    assert.match(run.log, /stopped \(idle\): consumed 20 done 20 /, run.log)
    assert.match(run.log, /kafka connection: TLS \(cluster CA\) \+ SASL SCRAM-SHA-512 as sfm-test/)
    assertNoPassword(run.log)

    const out = await consume(broker.saslTls, connection, `${prefix}.memory.audit`, 20)
    assert.deepEqual(out.map((m) => m.key?.toString()).sort(), lines.map((l) => JSON.parse(l).id).sort())
  })

  test('SCRAM-SHA-512 in clear text and mutual TLS: produce and consume', async () => {
    const prefix = `p${randomUUID().slice(0, 8)}`
    const sasl = {
      KAFKA_BROKERS: broker.sasl,
      KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512',
      KAFKA_SASL_USERNAME: USER,
      KAFKA_SASL_PASSWORD: PASSWORD
    }
    assert.equal((await topics(sasl, prefix)).code, 0)
    const topic = `${prefix}.memory.events`
    const viaSasl = kafkaConnectionOptions(sasl)
    await produceLines(['{"id":"a"}'], { topic, brokers: [broker.sasl], connection: viaSasl, keyField: 'id' })

    const mutual = kafkaConnectionOptions({
      KAFKA_TLS_CA_FILE: broker.caFile,
      KAFKA_TLS_CERT_FILE: broker.clientCertFile,
      KAFKA_TLS_KEY_FILE: broker.clientKeyFile
    })
    await produceLines(['{"id":"b"}'], { topic, brokers: [broker.mtls], connection: mutual, keyField: 'id' })
    const both = ['a', 'b']
    assert.deepEqual((await consume(broker.sasl, viaSasl, topic, 2)).map((m) => m.key?.toString()).sort(), both)
    assert.deepEqual((await consume(broker.mtls, mutual, topic, 2)).map((m) => m.key?.toString()).sort(), both)

    // Without the client certificate the mTLS listener drops the connection (TLS 1.3 reports that after the
    // handshake, so the client sees only "Connection closed").
    const noCert = new Admin({
      ...kafkaConnectionOptions({ KAFKA_TLS_CA_FILE: broker.caFile }),
      clientId: 'sfm-security-test',
      bootstrapBrokers: [broker.mtls],
      retries: 0
    })
    await assert.rejects(noCert.metadata({ topics: [] }), /Connection closed/)
    await noCert.close()
  })

  test('a wrong password stops the runner and the CLIs with a clear message, and no password in any output', async () => {
    const prefix = `w${randomUUID().slice(0, 8)}`
    const good = {
      KAFKA_BROKERS: broker.saslTls,
      KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512',
      KAFKA_SASL_USERNAME: USER,
      KAFKA_SASL_PASSWORD: PASSWORD,
      KAFKA_TLS_CA_FILE: broker.caFile
    }
    assert.equal((await topics(good, prefix)).code, 0)
    const wrong = { ...good, KAFKA_SASL_PASSWORD: WRONG_PASSWORD }

    const started = performance.now()
    const run = await relay(wrong, prefix)
    const seconds = (performance.now() - started) / 1000
    assert.equal(run.code, 2, run.log)
    assert.match(run.log, /configuration error: consuming .*refused the SASL authentication/)
    assert.match(run.log, /KAFKA_SASL_PASSWORD/)
    assertNoPassword(run.log)
    assert.ok(seconds < 15, `it must stop at once, not retry (took ${seconds.toFixed(1)} s)`)

    const cli = await topics(wrong, prefix)
    assert.equal(cli.code, 1)
    assert.match(cli.stderr, /refused the SASL authentication/)
    assertNoPassword(`${cli.stdout}${cli.stderr}`)

    const produced = await produceLines(['{"id":"x"}'], {
      topic: `${prefix}.memory.events`,
      brokers: [broker.saslTls],
      connection: kafkaConnectionOptions(wrong),
      keyField: 'id',
      checkTopic: false
    }).then(
      () => undefined,
      (error: unknown) => error
    )
    assert.ok(produced instanceof Error)
    assert.equal((produced as FatalError).kind, 'fatal', String(produced))
    assert.match(produced.message, /refused the SASL authentication/)
    assertNoPassword(`${produced.message} ${produced.stack}`)
  })

  test('TLS without the cluster CA, with the wrong CA, or not at all: a clear TLS error', async () => {
    const prefix = `c${randomUUID().slice(0, 8)}`
    const sasl = { KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512', KAFKA_SASL_USERNAME: USER, KAFKA_SASL_PASSWORD: PASSWORD }
    const systemCas = await topics({ ...sasl, KAFKA_BROKERS: broker.saslTls, KAFKA_TLS: 'true' }, prefix)
    assert.equal(systemCas.code, 1)
    assert.match(systemCas.stderr, /TLS certificate of Kafka at .* does not verify \(SELF_SIGNED_CERT_IN_CHAIN/)
    assert.match(systemCas.stderr, /set KAFKA_TLS_CA_FILE/)
    assertNoPassword(systemCas.stderr)

    const otherCa = await topics(
      { ...sasl, KAFKA_BROKERS: broker.saslTls, KAFKA_TLS_CA_FILE: broker.wrongCaFile },
      prefix
    )
    assert.equal(otherCa.code, 1)
    assert.match(otherCa.stderr, /does not verify/)

    const plain = await topics({ ...sasl, KAFKA_BROKERS: broker.saslTls }, prefix)
    assert.equal(plain.code, 1)
    assert.match(
      plain.stderr,
      /closed the connection at the SASL handshake: if the listener is TLS, set KAFKA_TLS=true/
    )

    const tlsToPlain = await topics({ ...sasl, KAFKA_BROKERS: broker.sasl, KAFKA_TLS_CA_FILE: broker.caFile }, prefix)
    assert.equal(tlsToPlain.code, 1)
    assert.match(tlsToPlain.stderr, /TLS handshake failed.*the listener does not speak TLS/)

    // The runner: exit 2 (configuration), the same message.
    const run = await relay({ ...sasl, KAFKA_BROKERS: broker.saslTls, KAFKA_TLS: 'true' }, prefix)
    assert.equal(run.code, 2, run.log)
    assert.match(run.log, /configuration error: .*does not verify/)
    assertNoPassword(run.log)
  })

  test('a half-set group stops the runner at start: exit 2, the variable named, the password not printed', async () => {
    const run = await relay(
      { KAFKA_BROKERS: broker.sasl, KAFKA_SASL_USERNAME: USER, KAFKA_SASL_PASSWORD: PASSWORD },
      'unused'
    )
    assert.equal(run.code, 2, run.log)
    assert.match(run.log, /KAFKA_SASL_USERNAME is set but KAFKA_SASL_MECHANISM is not/)
    assertNoPassword(run.log)
    assert.doesNotMatch(run.log, /\.ts:\d+/, 'a message, not a stack trace')
  })
})
