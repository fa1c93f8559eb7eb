import assert from 'node:assert/strict'
import { test } from 'node:test'
import { redact } from '../src/logger.ts'

const SECRET = 'S3cr3t-pw'

test('redact shows host, port and database only, wherever pg (or an HTTP service) takes a password', () => {
  const cases: [string, string][] = [
    [`postgres://u:${SECRET}@db:6543/x`, 'db:6543/x'],
    [`postgresql://u:${SECRET}@db/x`, 'db:5432/x'],
    [`postgres://:${SECRET}@db/x`, 'db:5432/x'],
    [`postgres://u@db/x?password=${SECRET}`, 'db:5432/x'],
    [`postgres://db/x?user=u&password=${SECRET}&sslmode=disable`, 'db:5432/x'],
    [`postgres://u@db/x?sslpassword=${SECRET}`, 'db:5432/x'],
    [`postgres://u:${encodeURIComponent(`${SECRET}@/:?`)}@db/x`, 'db:5432/x'],
    [`postgres://u:${SECRET} with spaces@db/x`, 'db:5432/x'],
    [`postgres://u:${SECRET}%zz@db/x`, 'db:5432/x'],
    [`postgres://db/x#${SECRET}`, 'db:5432/x'],
    [`postgres://u:${SECRET}@[::1]:5433/x`, '[::1]:5433/x'],
    // The query's host and port win over the URL's, as in pg; an empty host is allowed.
    [`postgres://u:${SECRET}@ignored/x?host=real&port=7777`, 'real:7777/x'],
    [`postgres://u:${SECRET}@/x?host=/var/run/postgresql`, '/var/run/postgresql:5432/x'],
    [`socket://u:${SECRET}@/var/run/postgresql?db=x&password=${SECRET}`, '/var/run/postgresql:5432/x'],
    ['/var/run/postgresql x', '/var/run/postgresql:5432/x'],
    [`http://key:${SECRET}@qdrant:6333/?api-key=${SECRET}`, 'http://qdrant:6333/'],
    [
      `https://${SECRET}@registry.example/apis/ccompat/v7?token=${SECRET}`,
      'https://registry.example:443/apis/ccompat/v7'
    ],
    [`not a url ${SECRET}`, '(unparsable URL)'],
    [`postgres:${SECRET}`, '(unparsable URL)']
  ]
  for (const [input, shown] of cases) {
    assert.equal(redact(input), shown, input)
    assert.doesNotMatch(redact(input), new RegExp(SECRET), input)
  }
})
