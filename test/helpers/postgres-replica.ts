import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { appendFile, chown, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);
/** The OS user PostgreSQL's server binaries run as (they refuse root). */
const PG_USER = 'postgres';

/**
 * A private PostgreSQL primary and its streaming replica (initdb, then `pg_basebackup -R`), on
 * free loopback ports, in a temporary directory of the `postgres` user. Nothing of the machine's
 * own server is touched. `stop()` always removes both.
 */
export interface StreamingPair {
  primaryUrl: string;
  replicaUrl: string;
  /** Runs SQL on the replica (pause or resume replay, settings). */
  onReplica(text: string): Promise<pg.QueryResult>;
  /** Runs SQL on the primary. */
  onPrimary(text: string): Promise<pg.QueryResult>;
  /** Waits until the replica has replayed everything the primary has written so far. */
  caughtUp(timeoutMs?: number): Promise<void>;
  /** Stops the replica's server (it can be started again). */
  stopReplica(): Promise<void>;
  startReplica(): Promise<void>;
  stop(): Promise<void>;
}

/** The directory of the newest installed PostgreSQL's server binaries. */
export function postgresBinDir(): string {
  try {
    const dir = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
    if (existsSync(path.join(dir, 'initdb'))) return dir;
  } catch {
    // No pg_config: look where Debian-style packages put the versions.
  }
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => existsSync(path.join(root, v, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (!versions[0]) throw new Error('PostgreSQL server binaries (initdb) not found');
  return path.join(root, versions[0], 'bin');
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

async function asPostgres(bin: string, args: string[]): Promise<void> {
  const asRoot = process.getuid?.() === 0;
  const [command, argv] = asRoot ? ['runuser', ['-u', PG_USER, '--', bin, ...args]] : [bin, args];
  await run(command, argv, { timeout: 120_000 });
}

async function query(url: string, text: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    return await client.query(text);
  } finally {
    await client.end();
  }
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // Not up yet.
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Starts a primary and one streaming replica; call `stop()` in the test's afterAll. */
export async function startStreamingPair(): Promise<StreamingPair> {
  const bin = postgresBinDir();
  const root = await mkdtemp(path.join(tmpdir(), 'fido-pg-pair-'));
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync('id', ['-u', PG_USER], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', PG_USER], { encoding: 'utf8' }).trim());
    await chown(root, uid, gid);
  }
  const primaryDir = path.join(root, 'primary');
  const replicaDir = path.join(root, 'replica');
  const [primaryPort, replicaPort] = [await freePort(), await freePort()];
  const pgCtl = path.join(bin, 'pg_ctl');
  const running = new Set<string>();
  const stopServer = async (dir: string) => {
    if (!running.delete(dir)) return;
    await asPostgres(pgCtl, ['-D', dir, '-m', 'immediate', '-w', 'stop']).catch(() => undefined);
  };
  // Last resort if the test runner exits without calling stop().
  const onExit = () => {
    for (const dir of running) {
      try {
        execFileSync('runuser', ['-u', PG_USER, '--', pgCtl, '-D', dir, '-m', 'immediate', 'stop']);
      } catch {
        // Already gone.
      }
    }
  };
  process.once('exit', onExit);
  const startServer = async (dir: string, port: number) => {
    await asPostgres(pgCtl, ['-D', dir, '-l', path.join(root, `${port}.log`), '-w', 'start']);
    running.add(dir);
  };

  const stop = async () => {
    await stopServer(replicaDir);
    await stopServer(primaryDir);
    process.off('exit', onExit);
    await rm(root, { recursive: true, force: true });
  };

  try {
    await asPostgres(path.join(bin, 'initdb'), [
      '-D',
      primaryDir,
      '-U',
      PG_USER,
      '--auth=trust',
      '-E',
      'UTF8',
      '--no-sync',
    ]);
    await appendFile(
      path.join(primaryDir, 'postgresql.conf'),
      [
        `port = ${primaryPort}`,
        `listen_addresses = '127.0.0.1'`,
        `unix_socket_directories = '${root}'`,
        'wal_level = replica',
        'max_wal_senders = 4',
        'max_connections = 60',
        'hot_standby = on',
        // A test server: durability is not what is tested.
        'fsync = off',
        'full_page_writes = off',
        '',
      ].join('\n'),
    );
    await appendFile(
      path.join(primaryDir, 'pg_hba.conf'),
      'host replication postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 trust\n',
    );
    await startServer(primaryDir, primaryPort);
    await asPostgres(path.join(bin, 'pg_basebackup'), [
      '-h',
      '127.0.0.1',
      '-p',
      String(primaryPort),
      '-U',
      PG_USER,
      '-D',
      replicaDir,
      '-R',
      '-X',
      'stream',
      '-c',
      'fast',
      '--no-sync',
    ]);
    await appendFile(path.join(replicaDir, 'postgresql.conf'), `port = ${replicaPort}\n`);
    await startServer(replicaDir, replicaPort);
  } catch (error) {
    await stop();
    throw error;
  }

  const primaryUrl = `postgres://${PG_USER}@127.0.0.1:${primaryPort}/postgres`;
  const replicaUrl = `postgres://${PG_USER}@127.0.0.1:${replicaPort}/postgres`;
  const pair: StreamingPair = {
    primaryUrl,
    replicaUrl,
    onReplica: (text) => query(replicaUrl, text),
    onPrimary: (text) => query(primaryUrl, text),
    async caughtUp(timeoutMs = 30_000) {
      // The insert position, as the service takes it: everything written so far.
      const target = (await query(primaryUrl, 'select pg_current_wal_insert_lsn()::text as lsn'))
        .rows[0].lsn as string;
      let checks = 0;
      await until(
        'replica caught up',
        async () => {
          checks += 1;
          // A position just past a page header is only reached with the next record: write one.
          if (checks % 20 === 0) await query(primaryUrl, 'select pg_current_xact_id()');
          const { rows } = await query(
            replicaUrl,
            `select pg_last_wal_replay_lsn() >= '${target}'::pg_lsn as done`,
          );
          return rows[0].done === true;
        },
        timeoutMs,
      );
    },
    stopReplica: () => stopServer(replicaDir),
    async startReplica() {
      await startServer(replicaDir, replicaPort);
    },
    stop,
  };
  try {
    await until(
      'replica streaming',
      async () => (await query(replicaUrl, 'select pg_is_in_recovery() as r')).rows[0].r === true,
      30_000,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return pair;
}
