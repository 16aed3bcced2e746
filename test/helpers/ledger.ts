import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { expect } from 'vitest';
import { transactionBody, uniqueUserId } from './factories.js';

/*
 * A user's ledger driven through the API (`inject`), with what every read must show kept beside
 * it: history, all-time and range analytics are checked against it exactly (a stale cached read
 * fails). And the app's /metrics and /readyz as tests read them.
 */

/** Sum of a metric's samples (all label sets) in the app's /metrics. */
export async function metric(app: FastifyInstance, name: string): Promise<number> {
  const response = await app.inject({ method: 'GET', url: '/metrics' });
  expect(response.statusCode).toBe(200);
  let total = 0;
  for (const line of response.body.split('\n')) {
    const match = /^([a-z_]+)(?:\{[^}]*\})? (\S+)$/.exec(line);
    if (match?.[1] === name) total += Number(match[2]);
  }
  return total;
}

export async function readyz(app: FastifyInstance): Promise<{ status: number; cache: unknown }> {
  const response = await app.inject({ method: 'GET', url: '/readyz' });
  const body = response.json<{ checks?: { cache?: unknown } }>();
  return { status: response.statusCode, cache: body.checks?.cache };
}

/** Polls /readyz, boundedly, until the cache check says `want`. */
export async function cacheBecomes(
  app: FastifyInstance,
  want: string,
  within = 10_000,
): Promise<void> {
  const deadline = Date.now() + within;
  let last: unknown;
  while (Date.now() < deadline) {
    const ready = await readyz(app);
    expect(ready.status).toBe(200);
    last = ready.cache;
    if (last === want) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`/readyz cache stayed ${String(last)} for ${within} ms (wanted ${want})`);
}

/** What a user's transactions should be, kept beside the API. */
export interface Expected {
  id: string;
  amount: number;
  type: 'credit' | 'debit';
  date: string;
  name: string;
}

export class LedgerUser {
  constructor(
    readonly app: FastifyInstance,
    readonly id = uniqueUserId('ledger'),
    readonly rows = new Map<string, Expected>(),
  ) {}

  /** The same user (and expectations), through another app. */
  on(app: FastifyInstance): LedgerUser {
    return new LedgerUser(app, this.id, this.rows);
  }

  async create(
    amount: number,
    type: 'credit' | 'debit',
    date: string,
    name = 'Ama Owusu',
  ): Promise<string> {
    const response = await this.app.inject({
      method: 'POST',
      url: '/api/v1/transaction/',
      payload: transactionBody({
        user_id: this.id,
        full_name: name,
        transaction_amount: amount,
        transaction_type: type,
        transaction_date: date,
      }),
    });
    expect(response.statusCode, response.body).toBe(201);
    const { id } = response.json<{ data: { id: string } }>().data;
    this.rows.set(id, { id, amount, type, date, name });
    return id;
  }

  async update(id: string, changes: { amount?: number; name?: string }): Promise<void> {
    const response = await this.app.inject({
      method: 'PATCH',
      url: `/api/v1/transaction/${id}`,
      payload: {
        ...(changes.amount === undefined ? {} : { transaction_amount: changes.amount }),
        ...(changes.name === undefined ? {} : { full_name: changes.name }),
      },
    });
    expect(response.statusCode, response.body).toBe(200);
    const row = this.rows.get(id)!;
    this.rows.set(id, {
      ...row,
      amount: changes.amount ?? row.amount,
      name: changes.name ?? row.name,
    });
  }

  async remove(id: string): Promise<void> {
    const response = await this.app.inject({ method: 'DELETE', url: `/api/v1/transaction/${id}` });
    expect(response.statusCode, response.body).toBe(200);
    this.rows.delete(id);
  }

  private async get(url: string): Promise<LightMyRequestResponse> {
    const response = await this.app.inject({ method: 'GET', url });
    expect(response.statusCode, `${url}: ${response.body}`).toBe(200);
    return response;
  }

  history() {
    return this.get(`/api/v1/transaction/history/${this.id}?limit=50`);
  }
  analytics() {
    return this.get(`/api/v1/analytics/${this.id}`);
  }
  range() {
    return this.get(
      `/api/v1/analytics/range/${this.id}?start_date=2024-10-01&end_date=2024-10-31T23:59:59Z`,
    );
  }

  /** Reads history, all-time and range analytics, and checks each against what was written. */
  async expectCurrent(): Promise<void> {
    const rows = [...this.rows.values()];
    const history = (await this.history()).json<{
      data: { id: string; transaction_amount: number; full_name: string }[];
    }>().data;
    const seen = history
      .map((row) => ({ id: row.id, amount: row.transaction_amount, name: row.full_name }))
      .sort((a, b) => a.id.localeCompare(b.id));
    const wanted = rows
      .map((row) => ({ id: row.id, amount: row.amount, name: row.name }))
      .sort((a, b) => a.id.localeCompare(b.id));
    expect(seen).toEqual(wanted);

    const figures = (of: Expected[]) => {
      const credit = of.filter((r) => r.type === 'credit').reduce((s, r) => s + r.amount, 0);
      const debit = of.filter((r) => r.type === 'debit').reduce((s, r) => s + r.amount, 0);
      return {
        transaction_count: of.length,
        credit_total: credit,
        debit_total: debit,
        net_total: credit - debit,
      };
    };
    expect((await this.analytics()).json().data).toMatchObject(figures(rows));
    const inOctober = rows.filter((r) => r.date.startsWith('2024-10'));
    expect((await this.range()).json().data).toMatchObject(figures(inOctober));
  }
}
