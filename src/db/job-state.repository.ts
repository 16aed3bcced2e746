import { runStatement, type Db, type Statement } from './client.js';
import { jobState } from './schema/index.js';
import { ident, idents } from './sql.js';

const J = ident(jobState);
const c = idents(jobState);

/** Prepared statements: the relays read and write their cursors on every step. */
const READ_JOB_STATE: Statement = {
  name: 'job_state_read',
  text: `select ${c.value} as value from ${J} where ${c.name} = $1::text`,
};

const WRITE_JOB_STATE: Statement = {
  name: 'job_state_write',
  text: `insert into ${J} (${c.name}, ${c.value}, ${c.updatedAt}) values ($1::text, $2::text, now())
    on conflict (${c.name}) do update set ${c.value} = excluded.${c.value},
      ${c.updatedAt} = excluded.${c.updatedAt}`,
};

/** A named value background work keeps between runs (`job_state`), or undefined if never kept. */
export async function readJobState(db: Db, name: string): Promise<string | undefined> {
  const [row] = await runStatement<{ value: string }>(db, READ_JOB_STATE, [name]);
  return row?.value;
}

export async function writeJobState(db: Db, name: string, value: string): Promise<void> {
  await runStatement(db, WRITE_JOB_STATE, [name, value]);
}
