import type { DatabaseSync } from 'node:sqlite'
import { ErrorCodes, FatalError } from '../errors.ts'

/**
 * The embedded log's table layout, version 1. It is a public format: other programs (the Python SomaFractalMemory
 * app, say) append records with plain SQL, so every rule that keeps the log consistent lives in the database itself
 * — CHECK constraints and triggers — not in this TypeScript. docs/EMBEDDED-LOG.md describes it for those writers;
 * change both together, and bump SCHEMA_VERSION with a migration when the layout changes.
 *
 * - `topics`: one row per topic; `partitions` rows hold each partition's next offset (Kafka's high watermark).
 * - `records`: the log. An INSERT must carry the partition's `next_offset` as its offset (a BEFORE trigger refuses
 *   anything else, so offsets stay dense and unique even with careless writers); an AFTER trigger advances
 *   `next_offset` and the partition's byte count. Write `INSERT … SELECT next_offset FROM partitions …` in one
 *   statement, or several inside `BEGIN IMMEDIATE`: SQLite has one writer at a time, so the offset read and the
 *   insert are atomic.
 * - `group_offsets`: committed offsets per consumer group (the next offset to read, as in Kafka).
 * - `group_members`: the one member a group has per file (see EmbeddedLogSource).
 */
export const SCHEMA_VERSION = 1

/** `PRAGMA application_id`: "SFML", so a random SQLite file is not mistaken for a log (and vice versa). */
export const APPLICATION_ID = 0x53464d4c

const DDL = `
CREATE TABLE IF NOT EXISTS topics (
  name             TEXT    NOT NULL PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 249),
  partitions       INTEGER NOT NULL CHECK (partitions BETWEEN 1 AND 10000),
  cleanup_policy   TEXT    NOT NULL DEFAULT 'delete' CHECK (cleanup_policy IN ('delete', 'compact', 'compact,delete')),
  retention_ms     INTEGER CHECK (retention_ms IS NULL OR retention_ms > 0),
  retention_bytes  INTEGER CHECK (retention_bytes IS NULL OR retention_bytes > 0),
  delete_retention_ms INTEGER NOT NULL DEFAULT 86400000,
  created_at       INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
) STRICT;

CREATE TABLE IF NOT EXISTS partitions (
  topic        TEXT    NOT NULL REFERENCES topics (name),
  partition    INTEGER NOT NULL CHECK (partition >= 0),
  next_offset  INTEGER NOT NULL DEFAULT 0 CHECK (next_offset >= 0),
  bytes        INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (topic, partition)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER IF NOT EXISTS topics_partitions AFTER INSERT ON topics BEGIN
  INSERT INTO partitions (topic, partition)
    WITH RECURSIVE p(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM p WHERE n + 1 < NEW.partitions)
    SELECT NEW.name, n FROM p;
END;

CREATE TRIGGER IF NOT EXISTS topics_grow AFTER UPDATE OF partitions ON topics
WHEN NEW.partitions > OLD.partitions BEGIN
  INSERT INTO partitions (topic, partition)
    WITH RECURSIVE p(n) AS (SELECT OLD.partitions UNION ALL SELECT n + 1 FROM p WHERE n + 1 < NEW.partitions)
    SELECT NEW.name, n FROM p;
END;

CREATE TRIGGER IF NOT EXISTS topics_no_shrink BEFORE UPDATE OF partitions ON topics
WHEN NEW.partitions < OLD.partitions BEGIN
  SELECT RAISE(ABORT, 'sfm log: partitions can only grow (as in Kafka)');
END;

CREATE TABLE IF NOT EXISTS records (
  topic      TEXT    NOT NULL,
  partition  INTEGER NOT NULL,
  offset     INTEGER NOT NULL,
  key        ANY     CHECK (typeof(key) IN ('blob', 'text', 'null')),
  value      ANY     CHECK (typeof(value) IN ('blob', 'text', 'null')),
  headers    TEXT    CHECK (headers IS NULL OR json_type(headers) = 'object'),
  timestamp  INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
  UNIQUE (topic, partition, offset)
) STRICT;

CREATE TRIGGER IF NOT EXISTS records_offset BEFORE INSERT ON records BEGIN
  SELECT RAISE(ABORT, 'sfm log: no such topic partition')
    WHERE NOT EXISTS (SELECT 1 FROM partitions WHERE topic = NEW.topic AND partition = NEW.partition);
  SELECT RAISE(ABORT, 'sfm log: offset must be the partition''s next_offset')
    WHERE NEW.offset IS NOT (SELECT next_offset FROM partitions WHERE topic = NEW.topic AND partition = NEW.partition);
END;

CREATE TRIGGER IF NOT EXISTS records_advance AFTER INSERT ON records BEGIN
  UPDATE partitions
     SET next_offset = NEW.offset + 1,
         bytes = bytes + coalesce(length(CAST(NEW.key AS BLOB)), 0) + coalesce(length(CAST(NEW.value AS BLOB)), 0)
   WHERE topic = NEW.topic AND partition = NEW.partition;
END;

CREATE TRIGGER IF NOT EXISTS records_no_update BEFORE UPDATE ON records BEGIN
  SELECT RAISE(ABORT, 'sfm log: records are immutable');
END;

CREATE TRIGGER IF NOT EXISTS records_forget AFTER DELETE ON records BEGIN
  UPDATE partitions
     SET bytes = bytes - coalesce(length(CAST(OLD.key AS BLOB)), 0) - coalesce(length(CAST(OLD.value AS BLOB)), 0)
   WHERE topic = OLD.topic AND partition = OLD.partition;
END;

CREATE TABLE IF NOT EXISTS group_offsets (
  group_id      TEXT    NOT NULL,
  topic         TEXT    NOT NULL,
  partition     INTEGER NOT NULL,
  offset        INTEGER NOT NULL CHECK (offset >= 0),
  committed_at  INTEGER NOT NULL,
  PRIMARY KEY (group_id, topic, partition)
) STRICT, WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS group_members (
  group_id      TEXT    NOT NULL PRIMARY KEY,
  member_id     TEXT    NOT NULL,
  pid           INTEGER NOT NULL,
  host          TEXT    NOT NULL,
  joined_at     INTEGER NOT NULL,
  heartbeat_at  INTEGER NOT NULL
) STRICT;
`

/**
 * Creates the tables on a new file, checks the version of an existing one. Runs in `BEGIN IMMEDIATE`, so processes
 * opening a fresh file at the same moment create it once.
 */
export function migrate(db: DatabaseSync, path: string): void {
  const appId = Number((db.prepare('PRAGMA application_id').get() as { application_id: number }).application_id)
  const version = Number((db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version)
  if (appId === APPLICATION_ID && version === SCHEMA_VERSION) return
  db.exec('BEGIN IMMEDIATE')
  try {
    const id = Number((db.prepare('PRAGMA application_id').get() as { application_id: number }).application_id)
    const v = Number((db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version)
    const tables = Number(
      (db.prepare("SELECT count(*) AS n FROM sqlite_schema WHERE type = 'table'").get() as { n: number }).n
    )
    if (id !== APPLICATION_ID && (id !== 0 || tables > 0)) {
      throw new FatalError(`${path} is an SQLite file but not an sfm embedded log (application_id ${id})`, {
        code: ErrorCodes.CONFIG
      })
    }
    if (v > SCHEMA_VERSION) {
      throw new FatalError(
        `${path} has embedded-log schema version ${v}, newer than this program's ${SCHEMA_VERSION}: upgrade it`,
        { code: ErrorCodes.CONFIG }
      )
    }
    if (v < SCHEMA_VERSION) {
      db.exec(DDL)
      db.exec(`PRAGMA application_id = ${APPLICATION_ID}`)
      db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`)
    }
    db.exec('COMMIT')
  } catch (error) {
    if (db.isTransaction) db.exec('ROLLBACK')
    throw error
  }
}
