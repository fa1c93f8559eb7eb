import assert from 'node:assert/strict'
import { test } from 'node:test'
import { connectDefaults, jdbcFromDatabaseUrl, workerProperties } from '../../scripts/stack/connect.ts'
import { loadCompose } from '../helpers/compose-file.ts'
import { repoConnectorConfig } from '../helpers/connect.ts'

/** `${env:NAME}` placeholders of the repository's sink config. */
const envNames = [
  ...new Set(
    Object.values(repoConnectorConfig()).flatMap((v) => [...v.matchAll(/\$\{env:([A-Za-z0-9_]+)\}/g)].map((m) => m[1]!))
  )
]

test('the sink config reads its secrets through env placeholders, all inside the config provider allowlist', () => {
  assert.deepEqual(envNames.sort(), ['SFM_CONNECT_JDBC_PASSWORD', 'SFM_CONNECT_JDBC_URL', 'SFM_CONNECT_JDBC_USER'])
  const allow = new RegExp(`^(?:${connectDefaults.envAllowlist})$`)
  for (const name of envNames) assert.match(name, allow)
  assert.doesNotMatch('DATABASE_URL', allow, 'connector configs must not be able to read other secrets')
  // No literal credentials in the file.
  const config = repoConnectorConfig()
  for (const key of ['connection.url', 'connection.username', 'connection.password']) {
    assert.match(config[key]!, /^\$\{env:SFM_CONNECT_[A-Z_]+\}$/, key)
  }
})

test('the compose Connect service provides every variable the sink config reads, under the same allowlist', () => {
  const { doc } = loadCompose()
  const connect = (doc.services as Record<string, { environment: Record<string, string> }>).connect!
  for (const name of envNames) assert.ok(connect.environment[name], `compose connect does not set ${name}`)
  assert.equal(connect.environment.CONNECT_CONFIG_PROVIDERS_ENV_PARAM_ALLOWLIST_PATTERN, connectDefaults.envAllowlist)
})

test('the local worker: env config provider with allowlist, fast plugin discovery, prompt task reassignment', () => {
  const text = workerProperties({ port: 18083, brokers: '127.0.0.1:9092', pluginPath: '/plugins' })
  const props = Object.fromEntries(
    text
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)])
  )
  assert.equal(props.listeners, 'http://127.0.0.1:18083', 'REST on loopback only')
  assert.equal(props['config.providers'], 'env')
  assert.equal(props['config.providers.env.param.allowlist.pattern'], connectDefaults.envAllowlist)
  assert.equal(props['plugin.discovery'], 'service_load')
  assert.equal(props['scheduled.rebalance.max.delay.ms'], '0')
  for (const topic of ['config', 'offset', 'status']) {
    assert.ok(props[`${topic}.storage.topic`]!.startsWith(`${connectDefaults.topicPrefix}.`))
    assert.equal(props[`${topic}.storage.replication.factor`], '1')
  }
})

test('DATABASE_URL becomes the JDBC URL, user and (decoded) password', () => {
  assert.deepEqual(jdbcFromDatabaseUrl('postgres://postgres@127.0.0.1:5432/sfm'), {
    jdbcUrl: 'jdbc:postgresql://127.0.0.1:5432/sfm',
    jdbcUser: 'postgres',
    jdbcPassword: ''
  })
  assert.deepEqual(jdbcFromDatabaseUrl('postgresql://sfm:p%40ss%2Fw0rd@db.internal:6432/app'), {
    jdbcUrl: 'jdbc:postgresql://db.internal:6432/app',
    jdbcUser: 'sfm',
    jdbcPassword: 'p@ss/w0rd'
  })
  assert.throws(() => jdbcFromDatabaseUrl('mysql://x@y/z'), /postgres:\/\//)
})
