import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { test } from 'node:test'
import { parseAllDocuments } from 'yaml'
import {
  CONNECT_CLUSTER,
  CONNECTOR_CONFIGS,
  generateStrimziManifests,
  KAFKA_CLUSTER,
  kafkaTopicResourceName,
  Layouts,
  readConnectorConfig,
  STRIMZI_API
} from '../../scripts/deploy/strimzi-manifests.ts'
import { REPO_ROOT, stackDefaults } from '../../scripts/stack/config.ts'
import { KafkaConnectionVariables, kafkaConnectionOptions } from '../../src/kafka/connection.ts'
import { TOPIC_SPECS, TopicNames, topicSpecs } from '../../src/kafka/topics.ts'
import { AUDIT_FORMAT_VARIABLE, AuditFormats } from '../../src/memory/audit-format.ts'
import { auditFormatForConnector } from '../helpers/audit-format.ts'
import { type Crd, type CrdValidator, crdValidator, DNS1123_SUBDOMAIN, loadCrds } from '../helpers/crd-json-schema.ts'
import { missingReference, referenceFile } from '../helpers/reference.ts'

// biome-ignore lint/suspicious/noExplicitAny: manifests are free-form YAML; each test narrows what it reads
type Manifest = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string> } } & any

interface Loaded {
  file: string
  doc: Manifest
}

function yamlFiles(dir: string): string[] {
  const out: string[] = []
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) out.push(...yamlFiles(path))
    else if (/\.ya?ml$/.test(entry.name)) out.push(path)
  }
  return out.sort()
}

function loadManifests(dir: string): Loaded[] {
  const out: Loaded[] = []
  for (const path of yamlFiles(dir)) {
    for (const document of parseAllDocuments(readFileSync(path, 'utf8'))) {
      assert.equal(document.errors.length, 0, `${path}: ${document.errors.map((e) => e.message).join('; ')}`)
      const doc = document.toJS() as Manifest | null
      if (doc !== null) out.push({ file: relative(REPO_ROOT, path), doc })
    }
  }
  return out
}

const STRIMZI_DIR = join(REPO_ROOT, Layouts.PRODUCTION.dir)
const DEV_DIR = join(REPO_ROOT, Layouts.DEV.dir)
const all = loadManifests(STRIMZI_DIR)
const production = all.filter((m) => !m.file.startsWith(relative(REPO_ROOT, DEV_DIR)))
const dev = all.filter((m) => m.file.startsWith(relative(REPO_ROOT, DEV_DIR)))
const ofKind = (list: Loaded[], kind: string): Manifest[] => list.filter((m) => m.doc.kind === kind).map((m) => m.doc)
const one = (list: Loaded[], kind: string, name?: string): Manifest => {
  const found = ofKind(list, kind).filter((d) => name === undefined || d.metadata.name === name)
  assert.equal(found.length, 1, `expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`)
  return found[0]
}

const CRD_DIR = 'strimzi-crds'

/** Validators per kind (served version only), or the reason they cannot be built. */
function strimziValidators(): Map<string, { crd: Crd; validator: CrdValidator }> | string {
  const dir = referenceFile(CRD_DIR)
  if (dir === undefined) return missingReference(CRD_DIR)
  const validators = new Map<string, { crd: Crd; validator: CrdValidator }>()
  for (const [kind, versions] of loadCrds(dir)) {
    for (const crd of versions) validators.set(`${crd.apiVersion}/${kind}`, { crd, validator: crdValidator(crd) })
  }
  return validators
}

const validators = strimziValidators()

test('every Strimzi manifest validates against its CRD (Strimzi 1.2.0, kafka.strimzi.io/v1)', (t) => {
  if (typeof validators === 'string') {
    t.diagnostic(`skipped: ${validators}`)
    t.skip(validators)
    return
  }
  const strimzi = all.filter((m) => m.doc.apiVersion.startsWith('kafka.strimzi.io/'))
  assert.ok(strimzi.length >= 15, `only ${strimzi.length} Strimzi manifests found`)
  const kinds = new Set<string>()
  const cel = new Set<string>()
  for (const { file, doc } of strimzi) {
    assert.equal(doc.apiVersion, STRIMZI_API, `${file}: ${doc.kind} ${doc.metadata?.name} must use ${STRIMZI_API}`)
    const entry = validators.get(`${doc.apiVersion}/${doc.kind}`)
    assert.ok(entry, `${file}: no CRD serves ${doc.apiVersion} ${doc.kind}`)
    const result = entry.validator.validate(doc)
    assert.ok(result.ok, `${file}: ${doc.kind} ${doc.metadata.name}:\n  ${result.errors.join('\n  ')}`)
    kinds.add(doc.kind)
    for (const rule of entry.validator.celRules) cel.add(`${doc.kind}: ${rule}`)
  }
  for (const kind of ['Kafka', 'KafkaNodePool', 'KafkaTopic', 'KafkaUser', 'KafkaConnect', 'KafkaConnector']) {
    assert.ok(kinds.has(kind), `no ${kind} manifest`)
  }
  t.diagnostic(`${strimzi.length} manifests valid; ${cel.size} CEL rules are left to the API server`)
})

test('a broken manifest fails validation (ACL with `operation` instead of `operations`, and other typos)', (t) => {
  if (typeof validators === 'string') {
    t.diagnostic(`skipped: ${validators}`)
    t.skip(validators)
    return
  }
  const check = (doc: Manifest) => validators.get(`${doc.apiVersion}/${doc.kind}`)!.validator.validate(doc)

  const user = structuredClone(one(production, 'KafkaUser', 'sfm-producer'))
  assert.ok(check(user).ok)
  const acl = user.spec.authorization.acls[0]
  acl.operation = acl.operations
  delete acl.operations
  const result = check(user)
  assert.equal(result.ok, false)
  assert.ok(
    result.errors.some((e) => /acls\/0 must have required property 'operations'/.test(e)),
    result.errors.join()
  )
  assert.ok(
    result.errors.some((e) => /additional properties \(operation\)/.test(e)),
    result.errors.join()
  )

  const broken: [string, (doc: Manifest) => void, RegExp][] = [
    ['KafkaTopic', (d) => Object.assign(d.spec, { replica: d.spec.replicas }), /additional properties \(replica\)/],
    ['Kafka', (d) => (d.spec.kafka.listeners[0].tls = 'yes'), /listeners\/0\/tls must be boolean/],
    ['Kafka', (d) => (d.spec.kafka.authorization.type = 'acl'), /allowed values/],
    ['KafkaNodePool', (d) => (d.spec.roles = ['zookeeper']), /allowed values/],
    ['KafkaConnect', (d) => delete d.spec.groupId, /required property 'groupId'/],
    ['KafkaConnector', (d) => (d.apiVersion = 'kafka.strimzi.io/v1beta2'), /equal to constant/],
    ['KafkaUser', (d) => (d.metadata.name = 'SFM_Memory'), /must match pattern/]
  ]
  for (const [kind, mutate, expected] of broken) {
    const doc: Manifest = structuredClone(ofKind(production, kind)[0])
    mutate(doc)
    const validator: CrdValidator = validators.get(`${STRIMZI_API}/${kind}`)!.validator
    const r: { ok: boolean; errors: string[] } = validator.validate(doc)
    assert.equal(r.ok, false, `${kind} mutation ${expected} was accepted`)
    assert.ok(
      r.errors.some((e) => expected.test(e)),
      `${kind}: expected ${expected}, got ${r.errors.join('; ')}`
    )
  }
})

test('generated manifests are up to date with their sources (run `node scripts/gen-strimzi.ts`)', () => {
  for (const file of generateStrimziManifests()) {
    const current = readFileSync(join(REPO_ROOT, file.path), 'utf8')
    assert.equal(current, file.content, `${file.path} differs from what scripts/gen-strimzi.ts generates`)
  }
})

test('KafkaTopics are the topic specs: names, partitions, replication and configs; replication fits the brokers', () => {
  for (const [list, layout] of [
    [production, Layouts.PRODUCTION],
    [dev, Layouts.DEV]
  ] as const) {
    const topics = ofKind(list, 'KafkaTopic')
    const specs = topicSpecs({ replicationFactor: layout.replicationFactor, env: {} })
    assert.deepEqual(topics.map((t) => t.spec.topicName).sort(), specs.map((s) => s.name).sort())
    for (const spec of specs) {
      const topic = topics.find((t) => t.spec.topicName === spec.name)
      assert.equal(topic.metadata.name, kafkaTopicResourceName(spec.name))
      assert.equal(topic.metadata.labels['strimzi.io/cluster'], KAFKA_CLUSTER)
      assert.equal(topic.spec.partitions, spec.partitions)
      assert.equal(topic.spec.replicas, spec.replicationFactor)
      assert.deepEqual(topic.spec.config, spec.configs)
    }
    const brokers = ofKind(list, 'KafkaNodePool')
      .filter((p) => p.spec.roles.includes('broker'))
      .reduce((n, p) => n + p.spec.replicas, 0)
    for (const topic of topics) {
      assert.ok(topic.spec.replicas <= brokers, `${topic.metadata.name}: RF ${topic.spec.replicas} > ${brokers}`)
      assert.ok(Number(topic.spec.config['min.insync.replicas']) < topic.spec.replicas || topic.spec.replicas === 1)
    }
  }
  // Every topic of the framework is there; nothing is invented beside them.
  assert.equal(TOPIC_SPECS.length, ofKind(production, 'KafkaTopic').length)
})

test('Kafka: 3 controllers + 3 brokers, rack awareness, TLS listener, simple authorization; dev: one node, same access', () => {
  const kafka = one(production, 'Kafka')
  assert.equal(kafka.metadata.name, KAFKA_CLUSTER)
  const pools = ofKind(production, 'KafkaNodePool')
  const controllers = pools.filter((p) => p.spec.roles.includes('controller'))
  const brokers = pools.filter((p) => p.spec.roles.includes('broker'))
  assert.deepEqual(
    controllers.map((p) => [p.spec.replicas, p.spec.roles]),
    [[3, ['controller']]],
    'dedicated controllers'
  )
  assert.deepEqual(
    brokers.map((p) => [p.spec.replicas, p.spec.roles]),
    [[3, ['broker']]],
    'dedicated brokers'
  )
  for (const pool of pools) {
    assert.equal(pool.metadata.labels['strimzi.io/cluster'], kafka.metadata.name)
    assert.notEqual(pool.spec.storage.type, 'ephemeral', 'production data must survive a pod restart')
  }
  assert.equal(kafka.spec.kafka.rack.topologyKey, 'topology.kubernetes.io/zone')
  assert.equal(
    kafka.spec.kafka.config['replica.selector.class'],
    'org.apache.kafka.common.replica.RackAwareReplicaSelector'
  )
  const listeners = kafka.spec.kafka.listeners
  assert.ok(listeners.length > 0 && listeners.every((l: Manifest) => l.tls === true), 'every listener uses TLS')
  assert.ok(
    listeners.every((l: Manifest) => l.authentication?.type === 'scram-sha-512'),
    'SCRAM on every listener'
  )
  assert.equal(kafka.spec.kafka.authorization.type, 'simple')
  assert.equal(kafka.spec.kafka.config['auto.create.topics.enable'], false)
  assert.equal(kafka.spec.kafka.config['min.insync.replicas'], 2)
  assert.ok(kafka.spec.entityOperator.topicOperator && kafka.spec.entityOperator.userOperator)

  const devKafka = one(dev, 'Kafka')
  const devPools = ofKind(dev, 'KafkaNodePool')
  assert.deepEqual(
    devPools.map((p) => [p.spec.replicas, [...p.spec.roles].sort()]),
    [[1, ['broker', 'controller']]]
  )
  assert.equal(devKafka.metadata.name, kafka.metadata.name, 'the dev cluster keeps the name the other manifests use')
  assert.deepEqual(
    devKafka.spec.kafka.listeners,
    listeners,
    'same listeners: users, Connect and the runner apply as is'
  )
  assert.deepEqual(devKafka.spec.kafka.authorization, kafka.spec.kafka.authorization)
  for (const key of ['default.replication.factor', 'min.insync.replicas', 'offsets.topic.replication.factor']) {
    assert.equal(devKafka.spec.kafka.config[key], 1, `dev ${key}`)
  }
})

/** `type:name:patternType` → sorted operations, for comparing ACL sets. */
function aclTable(user: Manifest): Record<string, string[]> {
  const table: Record<string, string[]> = {}
  for (const acl of user.spec.authorization.acls) {
    assert.notEqual(acl.type, 'deny', 'deny rules are not needed with simple authorization (default deny)')
    const key = `${acl.resource.type}:${acl.resource.name}:${acl.resource.patternType ?? 'literal'}`
    assert.equal(table[key], undefined, `${user.metadata.name}: two rules for ${key}`)
    table[key] = [...acl.operations].sort()
  }
  return table
}

test('KafkaUsers: SCRAM-SHA-512 and exactly the least-privilege ACLs each application needs', () => {
  const users = ofKind(production, 'KafkaUser')
  const connect = one(production, 'KafkaConnect')
  const sink = readConnectorConfig(CONNECTOR_CONFIGS[0])
  const T = TopicNames
  const read = ['Describe', 'Read']
  const write = ['Describe', 'Write']
  const expected: Record<string, Record<string, string[]>> = {
    'sfm-memory': {
      [`topic:${T.EVENTS}:literal`]: read,
      'group:sfm-memory:literal': ['Read'],
      [`topic:${T.LATEST}:literal`]: write,
      [`topic:${T.AUDIT}:literal`]: write,
      [`topic:${T.DLQ}:literal`]: write,
      [`topic:${T.EMBEDDING_REQUESTS}:literal`]: write
    },
    'sfm-producer': { [`topic:${T.EVENTS}:literal`]: write },
    'sfm-embedder': {
      [`topic:${T.EMBEDDING_REQUESTS}:literal`]: read,
      'group:sfm-embedder:literal': ['Read'],
      [`topic:${T.EMBEDDING_RESPONSES}:literal`]: write,
      [`topic:${T.DLQ}:literal`]: write
    },
    'sfm-vector-indexer': {
      [`topic:${T.EMBEDDING_RESPONSES}:literal`]: read,
      'group:sfm-vector-indexer:literal': ['Read'],
      [`topic:${T.DLQ}:literal`]: write
    },
    'sfm-reindex': {
      [`topic:${T.LATEST}:literal`]: read,
      'group:sfm-reindex:literal': ['Delete', 'Read'],
      [`topic:${T.DLQ}:literal`]: write
    },
    // Derived from the KafkaConnect resource and the sink's config, so renaming either keeps this honest.
    'sfm-connect': {
      [`group:${connect.spec.groupId}:literal`]: ['Read'],
      [`topic:${CONNECT_CLUSTER}.:prefix`]: ['Create', 'Describe', 'DescribeConfigs', 'Read', 'Write'],
      [`group:connect-${sink.name}:literal`]: ['Read'],
      [`topic:${sink.topics}:literal`]: read,
      [`topic:${sink['errors.deadletterqueue.topic.name']}:literal`]: ['Create', 'Describe', 'Write']
    }
  }
  assert.deepEqual(users.map((u) => u.metadata.name).sort(), Object.keys(expected).sort())
  for (const user of users) {
    assert.equal(user.metadata.labels['strimzi.io/cluster'], KAFKA_CLUSTER)
    assert.equal(user.spec.authentication.type, 'scram-sha-512')
    assert.equal(user.spec.authorization.type, 'simple')
    assert.deepEqual(aclTable(user), expected[user.metadata.name], `${user.metadata.name} ACLs`)
    for (const acl of user.spec.authorization.acls) {
      assert.ok(!acl.operations.includes('All'), `${user.metadata.name}: "All" is never least privilege`)
      assert.notEqual(acl.resource.type, 'cluster', `${user.metadata.name}: no cluster-level rights are needed`)
      assert.ok(acl.resource.name !== '*' && acl.resource.name !== '', `${user.metadata.name}: wildcard resource`)
    }
  }
  // The Connect internal topics live under the prefix the ACL grants.
  for (const key of ['configStorageTopic', 'offsetStorageTopic', 'statusStorageTopic']) {
    assert.ok(connect.spec[key].startsWith(`${CONNECT_CLUSTER}.`), `${key} ${connect.spec[key]} is outside the ACL`)
  }
  // Every literal topic an ACL names exists in the topic specs, or is the sink's dead-letter topic Connect creates.
  const known = new Set<string>([...TOPIC_SPECS.map((s) => s.name), sink['errors.deadletterqueue.topic.name']!])
  for (const user of users) {
    for (const acl of user.spec.authorization.acls) {
      if (acl.resource.type === 'topic' && (acl.resource.patternType ?? 'literal') === 'literal') {
        assert.ok(known.has(acl.resource.name), `${user.metadata.name}: unknown topic ${acl.resource.name}`)
      }
    }
  }
})

test('KafkaConnect builds the Debezium JDBC sink the local stack runs; the KafkaConnector is its sink config', () => {
  const kafka = one(production, 'Kafka')
  const connect = one(production, 'KafkaConnect')
  assert.equal(connect.metadata.name, CONNECT_CLUSTER)
  assert.equal(connect.metadata.annotations['strimzi.io/use-connector-resources'], 'true')
  const tlsListener = kafka.spec.kafka.listeners.find((l: Manifest) => l.tls)
  assert.equal(connect.spec.bootstrapServers, `${kafka.metadata.name}-kafka-bootstrap:${tlsListener.port}`)
  assert.equal(connect.spec.tls.trustedCertificates[0].secretName, `${kafka.metadata.name}-cluster-ca-cert`)
  assert.equal(connect.spec.authentication.type, 'scram-sha-512')
  // The User Operator writes the password into a Secret named like the KafkaUser.
  assert.equal(connect.spec.authentication.username, 'sfm-connect')
  assert.equal(connect.spec.authentication.passwordSecret.secretName, 'sfm-connect')
  const plugin = connect.spec.build.plugins.find((p: Manifest) => p.name === 'debezium-connector-jdbc')
  assert.ok(plugin, 'the build must add the Debezium JDBC sink')
  const artifact = plugin.artifacts[0]
  assert.deepEqual(
    [artifact.group, artifact.artifact, artifact.version],
    ['io.debezium', 'debezium-connector-jdbc', stackDefaults.debeziumVersion]
  )
  // ${env:NAME} in the connector config resolves from the Connect container's env.
  const envNames = new Set(connect.spec.template.connectContainer.env.map((e: Manifest) => e.name))
  assert.equal(connect.spec.config['config.providers'], 'env')
  for (const config of CONNECTOR_CONFIGS) {
    const json = readConnectorConfig(config)
    for (const value of Object.values(json)) {
      for (const m of String(value).matchAll(/\$\{env:([A-Za-z0-9_]+)\}/g)) {
        assert.ok(envNames.has(m[1]), `${config} needs ${m[1]}, which the KafkaConnect container does not set`)
      }
    }
    const connector = one(production, 'KafkaConnector', json.name)
    assert.equal(connector.metadata.labels['strimzi.io/cluster'], connect.metadata.name)
    assert.equal(connector.spec.class, json['connector.class'])
  }
})

test('runner: Deployment, PodDisruptionBudget and PodMonitor fit together and run non-root', () => {
  const deployment = one(production, 'Deployment')
  const pdb = one(production, 'PodDisruptionBudget')
  const monitor = one(production, 'PodMonitor')
  assert.equal(deployment.apiVersion, 'apps/v1')
  assert.equal(pdb.apiVersion, 'policy/v1')
  assert.equal(monitor.apiVersion, 'monitoring.coreos.com/v1')
  for (const doc of [deployment, pdb, monitor]) assert.match(doc.metadata.name, new RegExp(DNS1123_SUBDOMAIN))

  const podLabels: Record<string, string> = deployment.spec.template.metadata.labels
  const matches = (selector: Record<string, string>) =>
    Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => podLabels[k] === v)
  assert.ok(matches(deployment.spec.selector.matchLabels), 'Deployment selector must match its pod template')
  assert.ok(matches(pdb.spec.selector.matchLabels), 'PDB selector must match the pods')
  assert.ok(matches(monitor.spec.selector.matchLabels), 'PodMonitor selector must match the pods')
  assert.ok(pdb.spec.maxUnavailable !== undefined || pdb.spec.minAvailable !== undefined)
  assert.ok(pdb.spec.maxUnavailable < deployment.spec.replicas, 'the PDB must keep some consumers running')
  const partitions = topicSpecs({ env: {} }).find((s) => s.name === TopicNames.EVENTS)!.partitions
  assert.ok(deployment.spec.replicas <= partitions, 'more replicas than partitions would idle')

  const pod = deployment.spec.template.spec
  assert.equal(pod.securityContext.runAsNonRoot, true)
  assert.equal(pod.automountServiceAccountToken, false)
  assert.ok(pod.terminationGracePeriodSeconds >= 30, 'time to drain and commit on SIGTERM')
  const [container] = pod.containers
  assert.equal(pod.containers.length, 1)
  assert.equal(container.securityContext.allowPrivilegeEscalation, false)
  assert.equal(container.securityContext.readOnlyRootFilesystem, true)
  assert.ok(container.resources.requests && container.resources.limits.memory)
  const portNames = new Set(container.ports.map((p: Manifest) => p.name))
  for (const endpoint of monitor.spec.podMetricsEndpoints) {
    assert.ok(portNames.has(endpoint.port), `PodMonitor scrapes port ${endpoint.port}, which the pod does not name`)
    assert.equal(endpoint.path, '/metrics')
  }
  for (const probe of [container.readinessProbe, container.livenessProbe]) {
    assert.ok(portNames.has(probe.httpGet.port), `probe port ${probe.httpGet.port} is not a named container port`)
  }
  const volumes = new Set(pod.volumes.map((v: Manifest) => v.name))
  for (const mount of container.volumeMounts) assert.ok(volumes.has(mount.name), `mount ${mount.name} has no volume`)

  // Environment: the variables the topology requires, wired to the cluster and the KafkaUser's Secret.
  const env = new Map<string, Manifest>(container.env.map((e: Manifest) => [e.name, e]))
  const kafka = one(production, 'Kafka')
  const tls = kafka.spec.kafka.listeners.find((l: Manifest) => l.tls)
  assert.equal(env.get('KAFKA_BROKERS')?.value, `${kafka.metadata.name}-kafka-bootstrap:${tls.port}`)
  assert.ok(env.get('DATABASE_URL')?.valueFrom?.secretKeyRef, 'DATABASE_URL comes from a Secret')
  const user = env.get('KAFKA_SASL_USERNAME')?.value
  assert.ok(
    ofKind(production, 'KafkaUser').some((u) => u.metadata.name === user),
    `no KafkaUser ${user}`
  )
  // TLS and SASL as the listener asks, with the Secrets the operators make (src/kafka/connection.ts reads them).
  const kafkaUser = ofKind(production, 'KafkaUser').find((u) => u.metadata.name === user)!
  assert.equal(tls.authentication.type, 'scram-sha-512')
  assert.equal(kafkaUser.spec.authentication.type, tls.authentication.type)
  const mechanism = env.get('KAFKA_SASL_MECHANISM')?.value
  const accepted = kafkaConnectionOptions({
    KAFKA_SASL_MECHANISM: mechanism,
    KAFKA_SASL_USERNAME: user,
    KAFKA_SASL_PASSWORD: 'x'
  })
  assert.equal(accepted.sasl?.mechanism, 'SCRAM-SHA-512')
  /** The Secret key a file path in the container comes from, through its mount and volume. */
  const mountedSecret = (path: string | undefined) => {
    const mount = container.volumeMounts.find((m: Manifest) => path?.startsWith(`${m.mountPath}/`))
    assert.ok(mount, `${path} is not under any volume mount`)
    const volume = pod.volumes.find((v: Manifest) => v.name === mount.name)
    const file = path!.slice(mount.mountPath.length + 1)
    const item = volume?.secret?.items?.find((i: Manifest) => i.path === file)
    return { secretName: volume?.secret?.secretName, key: item?.key ?? file }
  }
  const passwordFile = env.get('KAFKA_SASL_PASSWORD_FILE')?.value
  if (passwordFile === undefined) {
    assert.deepEqual(env.get('KAFKA_SASL_PASSWORD')?.valueFrom?.secretKeyRef, { name: user, key: 'password' })
  } else {
    assert.ok(!env.has('KAFKA_SASL_PASSWORD'), 'one of KAFKA_SASL_PASSWORD / KAFKA_SASL_PASSWORD_FILE')
    assert.deepEqual(mountedSecret(passwordFile), { secretName: user, key: 'password' })
  }
  assert.deepEqual(mountedSecret(env.get('KAFKA_TLS_CA_FILE')?.value), {
    secretName: `${kafka.metadata.name}-cluster-ca-cert`,
    key: 'ca.crt'
  })
  const kafkaVariables = new Set<string>(['KAFKA_BROKERS', ...KafkaConnectionVariables])
  for (const name of env.keys()) {
    if (name.startsWith('KAFKA_')) assert.ok(kafkaVariables.has(name), `${name} is not a variable the framework reads`)
  }
  for (const e of container.env) {
    assert.ok((e.value === undefined) !== (e.valueFrom === undefined), `${e.name}: exactly one of value / valueFrom`)
    if (e.valueFrom?.secretKeyRef) assert.ok(e.valueFrom.secretKeyRef.name && e.valueFrom.secretKeyRef.key)
  }
  // memory.audit in the format the cluster's KafkaConnectors read it (the JDBC sink: JsonConverter envelopes).
  const formats = new Set(
    ofKind(production, 'KafkaConnector')
      .map((c) => auditFormatForConnector(c.spec.config as Record<string, string>))
      .filter((f) => f !== undefined)
  )
  assert.deepEqual([...formats], [AuditFormats.CONNECT], 'the connectors on memory.audit need JsonConverter envelopes')
  assert.equal(
    env.get(AUDIT_FORMAT_VARIABLE)?.value,
    AuditFormats.CONNECT,
    `the runner must set ${AUDIT_FORMAT_VARIABLE}=connect: the JDBC sink fails every plain JSON audit record`
  )
  // Every variable set is one the framework reads.
  const source = ['src', 'topologies']
    .flatMap((dir) => readdirSync(join(REPO_ROOT, dir), { recursive: true, withFileTypes: true }))
    .filter((f) => f.isFile() && f.name.endsWith('.ts'))
    .map((f) => readFileSync(join(f.parentPath, f.name), 'utf8'))
    .join('\n')
  const unread = [...env.keys()].filter((name) => !source.includes(name) && !['LOG_LEVEL'].includes(name))
  const logger = readFileSync(join(REPO_ROOT, 'src/logger.ts'), 'utf8')
  assert.ok(logger.includes('LOG_LEVEL'))
  assert.deepEqual(unread, [], `the framework does not read ${unread.join(', ')}`)
})
