import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { sql } from 'drizzle-orm';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { reconcileUser } from '../../src/modules/analytics/reconciliation.js';
import {
  idForObjectId,
  runMigrationCommand,
  type MigrationContext,
  type MigrationOptions,
} from '../../src/modules/legacy/index.js';
import { queryRows } from '../../src/db/client.js';
import {
  createTestDatabase,
  testConfig,
  testKeyRing,
  useTestApp,
  type TestDatabase,
} from '../helpers/app.js';
import {
  expectedAnalytics,
  expectedRollups,
  sortDaily,
  sortStats,
  type DailyStatsRow,
  type RawRow,
  type StatsRow,
} from '../helpers/analytics-model.js';
import { fernetFixtures, makeLegacyExport, type ExpectedImport } from '../helpers/legacy-export.js';

/*
 * The old service's data crossing over: a mongoexport with real Fernet tokens (made by Python's
 * cryptography), a few thousand documents over tens of users with every broken kind mixed in,
 * imported through the CLI command on this test's engine (PGlite, or PostgreSQL in CI).
 */

// Thousands of rows per run on a shared, loaded machine: generous, never timed assertions.
vi.setConfig({ testTimeout: 180_000 });

const keyRing = testKeyRing();
const context = useTestApp({ deps: { keyRing } });
const USERS = 40;
const GOOD = 3_000;
const BATCH = '500';
const prefix = `legacy-${process.pid}`;
const legacy = makeLegacyExport({ users: USERS, good: GOOD, brokenEach: 3, userPrefix: prefix });
const users = Array.from({ length: USERS }, (_, i) => `${prefix}-${i}`);
let dir: string;
let linesFile: string;
let arrayFile: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'fido-legacy-'));
  linesFile = path.join(dir, 'transactions.json');
  arrayFile = path.join(dir, 'transactions-array.json');
  await writeFile(linesFile, legacy.jsonLines());
  await writeFile(arrayFile, legacy.jsonArray());
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _encoding: string, done: () => void) {
    this.text += chunk.toString('utf8');
    done();
  }
}

/** Runs a migration command in this process on the test's database, as the CLI would. */
async function run(
  command: string,
  options: MigrationOptions,
  extra: Partial<MigrationContext> & { database?: TestDatabase } = {},
): Promise<{ code: number | undefined; stdout: string; stderr: string }> {
  const stdout = new Capture();
  const stderr = new Capture();
  const database = extra.database ?? context.database;
  const code = await runMigrationCommand(
    command,
    {
      config: testConfig({ LEGACY_SECRET_KEY: fernetFixtures.key }),
      // The command closes what it opens; the test's database outlives it.
      openDatabase: async () => ({ ...database.handle, close: async () => {} }),
      loadKeyRing: async () => keyRing,
      stdout,
      stderr,
      ...extra,
    },
    options,
  );
  return { code, stdout: stdout.text, stderr: stderr.text };
}

interface StoredRow extends RawRow {
  legacyId: string | null;
}

async function storedRows(database = context.database): Promise<StoredRow[]> {
  const rows = await queryRows<{
    id: string;
    user_id: string;
    currency: string;
    date_ms: string | number;
    transaction_type: 'credit' | 'debit';
    amount_minor: string;
    legacy_id: string | null;
  }>(
    database.handle.db,
    sql`select id::text as id, user_id, currency,
      (extract(epoch from transaction_date) * 1000)::bigint::text as date_ms, transaction_type,
      amount_minor::text as amount_minor, legacy_id
    from transactions where user_id like ${`${prefix}-%`} order by legacy_id`,
  );
  return rows.map((r) => ({
    id: r.id,
    userId: r.user_id,
    currency: r.currency,
    dateMs: Number(r.date_ms),
    type: r.transaction_type,
    amountMinor: BigInt(r.amount_minor),
    legacyId: r.legacy_id,
  }));
}

async function rollups(database = context.database) {
  const counts = <T extends StatsRow>(row: T): T => ({
    ...row,
    transaction_count: Number(row.transaction_count),
    credit_count: Number(row.credit_count),
    debit_count: Number(row.debit_count),
  });
  const like = `${prefix}-%`;
  const stats = await queryRows<StatsRow>(
    database.handle.db,
    sql`select user_id, currency, transaction_count, credit_count, debit_count,
      credit_total_minor::text as credit_total_minor, debit_total_minor::text as debit_total_minor
    from user_stats where user_id like ${like}`,
  );
  const daily = await queryRows<DailyStatsRow>(
    database.handle.db,
    sql`select user_id, currency, day::text as day, transaction_count, credit_count, debit_count,
      credit_total_minor::text as credit_total_minor, debit_total_minor::text as debit_total_minor
    from user_daily_stats where user_id like ${like}`,
  );
  return { userStats: sortStats(stats.map(counts)), dailyStats: sortDaily(daily.map(counts)) };
}

/** The rows stored are exactly some of the good documents, and the rollups a group-by of them. */
async function expectConsistent(): Promise<StoredRow[]> {
  const rows = await storedRows();
  const byLegacyId = new Map(legacy.good.map((g) => [g.legacyId, g]));
  for (const row of rows) {
    const wanted = byLegacyId.get(row.legacyId!);
    expect(wanted, `an unexpected row ${row.legacyId}`).toBeDefined();
    expect(row).toEqual({ ...model(wanted!), legacyId: wanted!.legacyId });
  }
  expect(await rollups()).toEqual(expectedRollups(rows, 'UTC'));
  return rows;
}

function model(row: ExpectedImport): RawRow {
  return {
    id: idForObjectId(row.legacyId),
    userId: row.userId,
    currency: row.currency,
    dateMs: row.dateMs,
    type: row.type,
    amountMinor: row.amountMinor,
  };
}

interface Report {
  rejected: { line: number; document: number; legacy_id: string | null; reason: string }[];
  counts: {
    documents: number;
    imported: number;
    already_present: number;
    rejected: number;
    valid: number;
  };
  dry_run: boolean;
}

async function readReport(file: string): Promise<Report> {
  return JSON.parse(await readFile(file, 'utf8')) as Report;
}

function expectEveryBrokenDocumentReported(report: Report) {
  expect(report.rejected).toHaveLength(legacy.broken.length);
  const byLine = new Map(report.rejected.map((r) => [r.line, r]));
  for (const broken of legacy.broken) {
    const entry = byLine.get(broken.line);
    expect(entry, `line ${broken.line} (${broken.kind}) not in the report`).toBeDefined();
    expect(entry!.reason, broken.kind).toMatch(broken.reason);
    expect(entry!.legacy_id, broken.kind).toBe(broken.legacyId);
  }
}

describe('import-legacy', () => {
  it('has a file with every broken kind mixed among thousands of good documents', () => {
    expect(legacy.good.length).toBe(GOOD);
    expect(new Set(legacy.good.map((g) => g.userId)).size).toBe(USERS);
    expect(new Set(legacy.broken.map((b) => b.kind)).size).toBeGreaterThanOrEqual(16);
    expect(legacy.lines.length).toBe(GOOD + legacy.broken.length);
  });

  it('--dry-run checks and decrypts everything, writes the report, and stores nothing', async () => {
    const report = path.join(dir, 'dry-run.json');
    const result = await run('import-legacy', { file: linesFile, report, 'dry-run': true });
    expect(result.code, result.stderr).toBe(1);
    expect(result.stdout).toContain('Dry run (nothing stored)');
    const written = await readReport(report);
    expect(written.dry_run).toBe(true);
    expect(written.counts).toMatchObject({
      documents: legacy.lines.length,
      valid: GOOD,
      imported: 0,
      rejected: legacy.broken.length,
    });
    expectEveryBrokenDocumentReported(written);
    expect(await storedRows()).toEqual([]);
  });

  it('keeps the rollups exact when a run dies midway, and a run interrupted continues where it stopped', async () => {
    // A run that fails after its second batch (the database going away, say): exit 2.
    let batches = 0;
    const failing = await run(
      'import-legacy',
      { file: linesFile, 'batch-size': BATCH },
      {
        invalidate: async () => {
          batches += 1;
          if (batches === 2) throw new Error('connection terminated');
        },
      },
    );
    expect(failing.code).toBe(2);
    expect(failing.stderr).toMatch(/Import stopped: connection terminated/);
    const afterFailure = await expectConsistent();
    expect(afterFailure.length).toBeGreaterThanOrEqual(2 * Number(BATCH));
    expect(afterFailure.length).toBeLessThan(GOOD);

    // Interrupted (Ctrl-C) after a few more batches: exit 130, what was stored is consistent.
    const controller = new AbortController();
    let more = 0;
    const interrupted = await run(
      'import-legacy',
      { file: linesFile, 'batch-size': BATCH },
      {
        signal: controller.signal,
        invalidate: async () => {
          more += 1;
          if (more === 3) controller.abort();
        },
      },
    );
    expect(interrupted.code).toBe(130);
    expect(interrupted.stdout).toMatch(/Interrupted: run the same command again/);
    const afterInterrupt = await expectConsistent();
    expect(afterInterrupt.length).toBeGreaterThan(afterFailure.length);
    expect(afterInterrupt.length).toBeLessThan(GOOD);
  });

  it('imports every good document exactly, reports every broken one, and exits 1', async () => {
    const before = (await storedRows()).length;
    const report = path.join(dir, 'report.json');
    const result = await run('import-legacy', { file: linesFile, report, 'batch-size': BATCH });
    expect(result.code, result.stderr).toBe(1);
    const written = await readReport(report);
    expect(written.counts).toEqual({
      documents: legacy.lines.length,
      imported: GOOD - before,
      already_present: before,
      rejected: legacy.broken.length,
      valid: GOOD,
    });
    expectEveryBrokenDocumentReported(written);
    expect(result.stdout).toContain(`imported:         ${GOOD - before}`);

    const rows = await expectConsistent();
    expect(rows).toHaveLength(GOOD);
    for (const user of users.slice(0, 3)) {
      expect((await reconcileUser(context.database.handle.db, user, 'UTC')).rows).toBe(0);
    }
  });

  it('answers analytics exactly as a recomputation from the documents does', async () => {
    const rows = legacy.good.map(model);
    for (const user of users) {
      const response = await context.app.inject({
        method: 'GET',
        url: `/api/v1/analytics/${user}`,
      });
      expect(response.statusCode, response.body).toBe(200);
      const data = response.json().data;
      delete data.last_updated;
      expect(data).toEqual(expectedAnalytics(rows, user, 'GHS', 'UTC'));
    }
  });

  it('decrypts every name and stores it under the current key ring', async () => {
    const result = await run('export', { format: 'ndjson' });
    expect(result.code, result.stderr).toBe(0);
    const exported = result.stdout
      .trim()
      .split('\n')
      .map(
        (line) =>
          JSON.parse(line) as { legacy_id: string | null; full_name: string; user_id: string },
      )
      .filter((t) => t.user_id.startsWith(`${prefix}-`));
    expect(exported).toHaveLength(GOOD);
    const names = new Map(legacy.good.map((g) => [g.legacyId, g.fullName]));
    for (const transaction of exported) {
      expect(transaction.full_name).toBe(names.get(transaction.legacy_id!));
    }
    const [stored] = await queryRows<{ full_name_ciphertext: string }>(
      context.database.handle.db,
      sql`select full_name_ciphertext from transactions where legacy_id = ${legacy.good[0]!.legacyId}`,
    );
    expect(stored!.full_name_ciphertext.startsWith(`v1.${keyRing.activeKeyId}.`)).toBe(true);
  });

  it('adds nothing when run again, from the same file or its --jsonArray form', async () => {
    const before = await rollups();
    for (const file of [linesFile, arrayFile]) {
      const report = path.join(dir, `again-${path.basename(file)}`);
      const result = await run('import-legacy', { file, report });
      expect(result.code, result.stderr).toBe(1);
      const written = await readReport(report);
      expect(written.counts).toMatchObject({
        imported: 0,
        already_present: GOOD,
        rejected: legacy.broken.length,
      });
      expect(written.rejected.map((r) => r.reason).sort()).toEqual(
        (await readReport(path.join(dir, 'report.json'))).rejected.map((r) => r.reason).sort(),
      );
    }
    expect(await storedRows()).toHaveLength(GOOD);
    expect(await rollups()).toEqual(before);
  });

  it('refuses an ObjectId already imported for another user', async () => {
    const taken = legacy.lines.find((line) => line.includes(legacy.good[3]!.legacyId))!;
    const file = path.join(dir, 'other-user.json');
    await writeFile(file, `${taken.replace(legacy.good[3]!.userId, `${prefix}-someone-else`)}\n`);
    const report = path.join(dir, 'other-user-report.json');
    expect((await run('import-legacy', { file, report })).code).toBe(1);
    expect((await readReport(report)).rejected).toEqual([
      {
        line: 1,
        document: 1,
        legacy_id: legacy.good[3]!.legacyId,
        reason: '_id: already imported for another user_id',
      },
    ]);
  });

  it('emits no events for imported rows by default', async () => {
    const [row] = await queryRows<{ n: string | number }>(
      context.database.handle.db,
      sql`select count(*) as n from events where user_id like ${`${prefix}-%`}`,
    );
    expect(Number(row!.n)).toBe(0);
  });
});

describe('fatal errors before any work', () => {
  it('exit 2: no LEGACY_SECRET_KEY, a directory for a file, an unknown currency or format', async () => {
    const noKey = await run('import-legacy', { file: linesFile }, { config: testConfig() });
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toMatch(/LEGACY_SECRET_KEY is not set/);
    expect((await run('import', { file: dir })).code).toBe(2);
    expect((await run('import-legacy', { file: linesFile, currency: 'XYZ' })).stderr).toMatch(
      /--currency/,
    );
    expect((await run('export', { format: 'xml' })).code).toBe(2);
    expect((await run('export', { since: 'soon' })).code).toBe(2);
  });
});

describe('old ids on the v1 routes', () => {
  const sample = () => legacy.good[7]!;

  it('GET reads an imported transaction by its ObjectId (any case) and by its new id alike', async () => {
    const old = sample();
    const byOld = await context.app.inject({
      method: 'GET',
      url: `/api/v1/transaction/${old.legacyId}`,
    });
    expect(byOld.statusCode, byOld.body).toBe(200);
    const data = byOld.json().data;
    expect(data).toMatchObject({
      id: idForObjectId(old.legacyId),
      legacy_id: old.legacyId,
      user_id: old.userId,
      full_name: old.fullName,
      transaction_date: new Date(old.dateMs).toISOString(),
      version: 1,
    });
    const byNew = await context.app.inject({
      method: 'GET',
      url: `/api/v1/transaction/${data.id}`,
    });
    expect(byNew.json().data).toEqual(data);
    const upper = await context.app.inject({
      method: 'GET',
      url: `/api/v1/transaction/${old.legacyId.toUpperCase()}`,
    });
    expect(upper.json().data).toEqual(data);
    const history = await context.app.inject({
      method: 'GET',
      url: `/api/v1/transaction/history/${old.userId}?limit=500`,
    });
    expect(history.json().data.find((t: { id: string }) => t.id === data.id)).toEqual(data);
  });

  it('an unknown ObjectId answers the old 404', async () => {
    const response = await context.app.inject({
      method: 'GET',
      url: '/api/v1/transaction/0123456789abcdef01234567',
    });
    expect(response.statusCode).toBe(404);
    expect(response.json().message).toBe(
      'Transaction with id: 0123456789abcdef01234567 not found.',
    );
    const update = await context.app.inject({
      method: 'PUT',
      url: '/api/v1/transaction/0123456789abcdef01234567',
      payload: { transaction_type: 'debit' },
    });
    expect(update.statusCode).toBe(404);
    expect(update.json().message).toBe('Transaction not found for ID: 0123456789abcdef01234567');
  });

  it('PUT, PATCH and DELETE take the ObjectId, and the rollups follow', async () => {
    const [first, second] = [legacy.good[11]!, legacy.good[12]!];
    const put = await context.app.inject({
      method: 'PUT',
      url: `/api/v1/transaction/${first.legacyId}`,
      payload: { transaction_amount: 1.25 },
    });
    expect(put.statusCode, put.body).toBe(200);
    expect(put.json().data).toMatchObject({
      legacy_id: first.legacyId,
      transaction_amount: 1.25,
      version: 2,
    });
    const patch = await context.app.inject({
      method: 'PATCH',
      url: `/api/v1/transaction/${first.legacyId}`,
      payload: { description: 'moved over' },
    });
    expect(patch.json().data).toMatchObject({ description: 'moved over', version: 3 });
    const removed = await context.app.inject({
      method: 'DELETE',
      url: `/api/v1/transaction/${second.legacyId}`,
    });
    expect(removed.statusCode).toBe(200);
    expect(removed.json().data).toBe(`Transaction with ID: ${second.legacyId} removed`);
    const gone = await context.app.inject({
      method: 'GET',
      url: `/api/v1/transaction/${second.legacyId}`,
    });
    expect(gone.statusCode).toBe(404);

    const rows = (await storedRows()).map(({ legacyId: _l, ...row }) => row);
    expect(rows).toHaveLength(GOOD - 1);
    expect(rows.find((r) => r.id === idForObjectId(first.legacyId))!.amountMinor).toBe(125n);
    expect(await rollups()).toEqual(expectedRollups(rows, 'UTC'));
  });

  it('native transactions show legacy_id null', async () => {
    const created = await context.app.inject({
      method: 'POST',
      url: '/api/v1/transaction/',
      payload: {
        user_id: 'native-user',
        full_name: 'New Person',
        transaction_amount: 5,
        transaction_type: 'credit',
      },
    });
    expect(created.statusCode).toBe(201);
    expect(created.json().data.legacy_id).toBeNull();
    expect(Object.keys(created.json().data).at(-1)).toBe('legacy_id');
  });
});

describe('--emit-events', () => {
  it('appends a transaction.created event per stored row, without the name', async () => {
    const small = makeLegacyExport({
      users: 3,
      good: 25,
      userPrefix: `${prefix}-events`,
      seed: 7,
      firstSerial: 1_000_000,
    });
    const file = path.join(dir, 'events.json');
    await writeFile(file, small.jsonLines());
    const result = await run('import-legacy', { file, 'emit-events': true });
    expect(result.code, result.stderr).toBe(0);
    const events = await queryRows<{
      type: string;
      transaction_id: string;
      payload: Record<string, any>;
    }>(
      context.database.handle.db,
      sql`select type, transaction_id::text as transaction_id, payload from events
        where user_id like ${`${prefix}-events-%`} order by sequence`,
    );
    expect(events).toHaveLength(25);
    for (const event of events) {
      expect(event.type).toBe('transaction.created');
      expect(event.payload.transaction.id).toBe(event.transaction_id);
      expect(event.payload.transaction.legacy_id).toMatch(/^[0-9a-f]{24}$/);
      expect(JSON.stringify(event.payload)).not.toMatch(/full_name/);
    }
    // Again: nothing stored, so no event either.
    expect((await run('import-legacy', { file, 'emit-events': true })).code).toBe(0);
    const [count] = await queryRows<{ n: string | number }>(
      context.database.handle.db,
      sql`select count(*) as n from events where user_id like ${`${prefix}-events-%`}`,
    );
    expect(Number(count!.n)).toBe(25);
  });
});

describe('export and import: a lossless round trip', () => {
  it('re-imports an NDJSON export into another database, every field as it was', async () => {
    // Native rows with what imported ones lack: descriptions, metadata, names that need quoting.
    const views: ({ id: string } & Record<string, unknown>)[] = [];
    for (const [i, name] of [
      '=cmd|" /C calc"!A0',
      'Ama "Nana" Owusu, Jr.',
      '  Zoë Ørsted  ',
    ].entries()) {
      const created = await context.app.inject({
        method: 'POST',
        url: '/api/v1/transaction/',
        payload: {
          user_id: `${prefix}-native`,
          full_name: name,
          transaction_amount: i === 0 ? '0.01' : i === 1 ? 123456.78 : 125000,
          transaction_type: i === 1 ? 'debit' : 'credit',
          currency: i === 2 ? 'JPY' : undefined,
          description: `line one\nline "two", ${i}`,
          metadata: { source: 'round-trip', n: String(i) },
        },
      });
      expect(created.statusCode, created.body).toBe(201);
      views.push(created.json().data);
    }
    const first = await run('export', { format: 'ndjson' });
    expect(first.code, first.stderr).toBe(0);
    // Each line is the API's view to the byte, in the order exports have always had: legacy_id
    // after id, then the view's fields as the API orders them.
    const lines = new Map(first.stdout.split('\n').map((line) => [line.slice(7, 43), line]));
    for (const { id, legacy_id, user_id, ...rest } of views) {
      expect(lines.get(id)).toBe(JSON.stringify({ id, legacy_id, user_id, ...rest }));
    }
    const file = path.join(dir, 'export.ndjson');
    await writeFile(file, first.stdout);

    const other = await createTestDatabase();
    try {
      const imported = await run(
        'import',
        { file, report: path.join(dir, 'reimport.json') },
        { database: other },
      );
      expect(imported.code, imported.stdout + imported.stderr).toBe(0);
      const again = await run('import', { file }, { database: other });
      expect(again.stdout).toMatch(/imported: {9}0\n/);
      const second = await run('export', { format: 'ndjson' }, { database: other });
      expect(second.stdout).toBe(first.stdout);
      expect(await rollups(other)).toEqual(await rollups());
      const csv = await run(
        'export',
        { format: 'csv', user: `${prefix}-native` },
        { database: other },
      );
      const lines = csv.stdout.split('\r\n');
      expect(lines[0]).toBe(
        'id,legacy_id,user_id,full_name,transaction_date,transaction_amount,currency,transaction_type,description,metadata,created_at,updated_at,version',
      );
      expect(csv.stdout).toContain(`"'=cmd|"" /C calc""!A0"`);
      expect(csv.stdout).toContain('"Ama ""Nana"" Owusu, Jr."');
      expect(csv.stdout).toContain('"line one\nline ""two"", 1"');
      expect(lines.filter((l) => l.startsWith('0'))).toHaveLength(3);
    } finally {
      await other.drop();
    }
  });

  it('--since and --user narrow the export', async () => {
    const user = legacy.good[0]!.userId;
    const mine = legacy.good.filter((g) => g.userId === user);
    const since = '2025-01-01';
    const result = await run('export', { user, since });
    const exported = result.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    const wanted = mine.filter(
      (g) => g.dateMs >= Date.parse(since) && g.legacyId !== legacy.good[12]!.legacyId,
    );
    expect(exported.map((t) => t.legacy_id).sort()).toEqual(wanted.map((g) => g.legacyId).sort());
  });
});

describe('import: what the API refuses stays out, and what goes in a PUT accepts again', () => {
  it('rejects each metadata the API refuses, imports those at the limits, and goes on', async () => {
    const owner = `meta-${process.pid}`;
    const emoji = '\u{1F600}';
    const keys = (n: number) =>
      Object.fromEntries(Array.from({ length: n }, (_, i) => [`key-${i}`, `value ${i}`]));
    const cases: { metadata: Record<string, string>; reason?: string }[] = [
      { metadata: keys(20) },
      { metadata: keys(21), reason: 'metadata: 21 keys, at most 20' },
      { metadata: { '': 'v' }, reason: 'metadata: key "": empty' },
      { metadata: { [emoji.repeat(64)]: 'v' } },
      {
        metadata: { [emoji.repeat(65)]: 'v' },
        reason: `metadata: key "${emoji.repeat(24)}…": 65 characters, at most 64`,
      },
      {
        metadata: { 'a\u0001b': 'v' },
        reason: 'metadata: key "a\\u0001b": contains a control character (U+0001)',
      },
      { metadata: { note: emoji.repeat(500) } },
      {
        metadata: { note: emoji.repeat(501) },
        reason: 'metadata: value of "note": 501 characters, at most 500',
      },
      {
        metadata: { note: 'a\u0000b' },
        reason: 'metadata: value of "note": contains NUL (U+0000)',
      },
    ];
    const lines = cases.map(({ metadata }) => ({
      id: uuidv7(),
      legacy_id: null,
      user_id: owner,
      full_name: 'Ama Owusu',
      transaction_date: '2024-01-15T10:30:00.123Z',
      transaction_amount: 12.5,
      transaction_type: 'credit',
      currency: 'GHS',
      description: null,
      metadata,
      created_at: '2024-01-15T10:31:00.000Z',
      updated_at: '2024-01-15T10:31:00.000Z',
      version: 1,
    }));
    const file = path.join(dir, 'metadata.ndjson');
    await writeFile(file, `${lines.map((line) => JSON.stringify(line)).join('\n')}\n`);
    const report = path.join(dir, 'metadata-report.json');

    const result = await run('import', { file, report });
    expect(result.code, result.stderr).toBe(1);
    const written = await readReport(report);
    const refused = cases.flatMap((c, i) => (c.reason ? [{ ...c, line: i + 1 }] : []));
    expect(written.counts).toMatchObject({
      documents: cases.length,
      imported: cases.length - refused.length,
      rejected: refused.length,
    });
    expect(written.rejected).toEqual(
      refused.map(({ line, reason }) => ({ line, document: line, legacy_id: null, reason })),
    );

    for (const [i, { metadata, reason }] of cases.entries()) {
      const id = lines[i]!.id;
      const stored = await context.app.inject({ method: 'GET', url: `/api/v1/transaction/${id}` });
      // Through the API, the same metadata is refused or accepted as the import refused it.
      const created = await context.app.inject({
        method: 'POST',
        url: '/api/v1/transaction/',
        payload: {
          user_id: `${owner}-api`,
          full_name: 'Ama Owusu',
          transaction_amount: 1,
          transaction_type: 'credit',
          metadata,
        },
      });
      if (reason) {
        expect(stored.statusCode, reason).toBe(404);
        expect(created.statusCode, reason).toBe(422);
        continue;
      }
      expect(created.statusCode, created.body).toBe(201);
      expect(stored.statusCode, stored.body).toBe(200);
      expect(stored.json().data.metadata).toEqual(metadata);
      const put = await context.app.inject({
        method: 'PUT',
        url: `/api/v1/transaction/${id}`,
        payload: { metadata: stored.json().data.metadata },
      });
      expect(put.statusCode, put.body).toBe(200);
      expect(put.json().data).toMatchObject({ metadata, version: 2 });
    }
  });
});
