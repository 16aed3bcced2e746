import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { AppError, CommitOutcomeUnknown } from '../../platform/errors.js';
import { errorResponses, WRITE_OUTCOME_UNKNOWN_MESSAGE } from '../../platform/http-errors.js';
import {
  replayableHeaders,
  sendOutcome,
  type Idempotency,
  type StoredResponse,
} from '../../platform/idempotency.js';
import { ownerOf } from '../../platform/auth.js';
import type { DbTx } from '../../db/client.js';
import { sendTaggedBody } from '../../platform/envelopes.js';
import { historyNotFound } from './transactions.errors.js';
import { IF_MATCH_LENGTH_MAX } from './transactions.limits.js';
import type { TransactionRow } from './transactions.repository.js';
import {
  CreateTransactionBody,
  DeleteEnvelope,
  HistoryEnvelope,
  HistoryParams,
  HistoryQuery,
  TransactionEnvelope,
  TransactionIdParams,
  UpdateTransactionBody,
} from './transactions.schemas.js';
import type { TransactionsService, VersionPrecondition } from './transactions.service.js';

export interface TransactionsRoutesOptions {
  transactions: TransactionsService;
  idempotency: Idempotency;
}

const TAGS = ['transactions'];

const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({
      description:
        'Makes the write safe to retry: the same key and body within 24 hours replays the first ' +
        'response (with `Idempotent-Replayed: true`).',
    }),
  ),
});
const WriteHeaders = Type.Object({
  ...IdempotencyHeaders.properties,
  'if-match': Type.Optional(
    Type.String({
      // A few entity tags at most; bounded so a header can never cost much to read.
      maxLength: IF_MATCH_LENGTH_MAX,
      description: 'The ETag of the version you read; a stale one answers 412.',
    }),
  ),
});

const etagOf = (row: TransactionRow) => `"${row.version}"`;

/** Reads `If-Match`: `*`, or a list of strong ETags (weak ones never match, RFC 9110 13.1.1). */
function readIfMatch(request: FastifyRequest): VersionPrecondition | undefined {
  const header = request.headers['if-match'];
  if (header === undefined) return undefined;
  if (header.trim() === '*') return '*';
  return header
    .split(',')
    .map((tag) => /^\s*"([^"]*)"\s*$/.exec(tag)?.[1])
    .filter((v): v is string => v !== undefined);
}

export const transactionsRoutes: FastifyPluginAsyncTypebox<TransactionsRoutesOptions> = async (
  app,
  { transactions, idempotency },
) => {
  /** Serializes through the route's response schema, so replays store the exact bytes. */
  function respond(
    reply: FastifyReply,
    status: number,
    payload: unknown,
    headers: Record<string, string> = {},
  ) {
    void reply.code(status);
    // Response schemas here serialize to JSON text, never to a buffer.
    return {
      status,
      headers: replayableHeaders(headers),
      body: reply.serialize(payload) as string,
    };
  }

  /**
   * Runs a write (once per Idempotency-Key) and answers with the record. The user's cached reads
   * are invalidated only after the database transaction has committed: a reader can never cache
   * what it read before the write under the generation that follows it.
   */
  async function writeTransaction(
    request: FastifyRequest,
    reply: FastifyReply,
    write: (dbTx: DbTx | undefined, touched: (userId: string) => void) => Promise<TransactionRow>,
    answer: (row: TransactionRow) => StoredResponse,
    options?: { atomic: boolean; id?: string },
  ): Promise<void> {
    let written: TransactionRow | undefined;
    let user: string | undefined;
    let outcome;
    try {
      outcome = await idempotency.execute(
        request,
        async (dbTx) => {
          written = await write(dbTx, (userId) => (user = userId));
          return answer(written);
        },
        options,
      );
    } catch (error) {
      if (!(error instanceof CommitOutcomeUnknown)) throw error;
      // It may have been applied: treat it as a write for the cache and read replicas (best
      // effort: the database or Redis may be what failed), and say that nobody knows.
      if (user !== undefined) await transactions.committed({ userId: user }).catch(() => undefined);
      throw new AppError(
        'WRITE_OUTCOME_UNKNOWN',
        options?.id === undefined
          ? WRITE_OUTCOME_UNKNOWN_MESSAGE
          : `${WRITE_OUTCOME_UNKNOWN_MESSAGE} (it would be /api/v1/transaction/${options.id})`,
      );
    }
    // Before the answer leaves: a client that reads right after must not hit the old cache.
    if (written) await transactions.committed(written);
    sendOutcome(reply, outcome);
  }

  /** The record itself, in the envelope, with its ETag (and Location when created). */
  const recordAnswer =
    (reply: FastifyReply, status: 200 | 201, message: string) =>
    (row: TransactionRow): StoredResponse =>
      respond(
        reply,
        status,
        { data: transactions.toView(row), code: status, message },
        {
          etag: etagOf(row),
          ...(status === 201 ? { location: `/api/v1/transaction/${row.id}` } : {}),
        },
      );

  const createRoute = {
    schema: {
      tags: TAGS,
      summary: 'Record a transaction',
      description:
        'Also served at `POST /api/v1/transaction/` (with the trailing slash, the path the ' +
        'original service used): the same operation, without a redirect.',
      headers: IdempotencyHeaders,
      body: CreateTransactionBody,
      response: { 201: TransactionEnvelope, ...errorResponses(409, 413, 415, 422, 503, 504) },
    },
    config: {
      unavailableMessage: 'An error occurred while adding the transaction',
      access: { scope: 'transactions:write', owner: 'body:user_id' },
    },
  } as const;
  // Old clients post to the path with and without the trailing slash; neither redirects. The
  // document names the one without (trailing slashes confuse generated clients) and says so.
  for (const url of ['/api/v1/transaction/', '/api/v1/transaction']) {
    const hide = url.endsWith('/');
    app.post(
      url,
      { ...createRoute, schema: { ...createRoute.schema, hide } },
      async (request, reply) => {
        const row = transactions.prepareCreate(transactions.checkCreate(request.body));
        // Built before the write, which is then a single atomic statement: no transaction around
        // it is needed for the answer to be all or nothing.
        const answer = recordAnswer(reply, 201, 'Transaction added successfully.')(row);
        await writeTransaction(
          request,
          reply,
          (dbTx, touched) => {
            touched(row.userId);
            return transactions.create(row, { dbTx });
          },
          () => answer,
          { atomic: true, id: row.id },
        );
      },
    );
  }

  app.get(
    '/api/v1/transaction/:id',
    {
      schema: {
        tags: TAGS,
        summary: 'Read one transaction',
        params: TransactionIdParams,
        response: { 200: TransactionEnvelope, ...errorResponses(404, 503) },
      },
      config: {
        unavailableMessage: 'An error occurred while retrieving transaction data',
        access: { scope: 'transactions:read', owner: 'record' },
      },
    },
    async (request, reply) => {
      const row = await transactions.get(request.params.id, ownerOf(request));
      void reply.header('etag', etagOf(row));
      return {
        data: transactions.toView(row),
        code: 200,
        message: 'Transaction data retrieved successfully',
      };
    },
  );

  app.get(
    '/api/v1/transaction/history/:user_id',
    {
      schema: {
        tags: TAGS,
        summary: "A user's transactions, newest first",
        description:
          'Keyset-paginated: pass `pagination.next_cursor` as `cursor` for the next page. ' +
          '404 when the user has no transactions at all; 200 with `[]` when filters exclude all.',
        params: HistoryParams,
        querystring: HistoryQuery,
        response: { 200: HistoryEnvelope, ...errorResponses(404, 422, 503) },
      },
      config: {
        access: { scope: 'transactions:read', owner: 'param:user_id' },
        // Another user's history, to a user token, looks exactly like a user without any.
        notFound: (request) => historyNotFound((request.params as { user_id: string }).user_id),
      },
    },
    async (request, reply) => {
      // The finished body, often from the cache: sent as is, past the response serializer, with
      // the tag computed when it was rendered.
      return sendTaggedBody(
        reply,
        await transactions.history(request.params.user_id, request.query),
      );
    },
  );

  for (const method of ['PUT', 'PATCH'] as const) {
    app.route({
      method,
      url: '/api/v1/transaction/:id',
      schema: {
        tags: TAGS,
        summary: `Update a transaction (partial; ${method === 'PUT' ? 'PATCH' : 'PUT'} is the same)`,
        params: TransactionIdParams,
        headers: WriteHeaders,
        body: UpdateTransactionBody,
        response: {
          200: TransactionEnvelope,
          ...errorResponses(404, 409, 412, 413, 415, 422, 503, 504),
        },
      },
      config: { access: { scope: 'transactions:write', owner: 'record' } },
      handler: async (request, reply) => {
        await writeTransaction(
          request,
          reply,
          (dbTx, touched) =>
            transactions.update(request.params.id, request.body, {
              dbTx,
              ifMatch: readIfMatch(request),
              owner: ownerOf(request),
              touched,
            }),
          recordAnswer(reply, 200, 'Transaction updated successfully'),
        );
      },
    });
  }

  app.delete(
    '/api/v1/transaction/:id',
    {
      schema: {
        tags: TAGS,
        summary: 'Delete a transaction',
        params: TransactionIdParams,
        headers: WriteHeaders,
        response: { 200: DeleteEnvelope, ...errorResponses(404, 409, 412, 422, 503, 504) },
      },
      config: { access: { scope: 'transactions:write', owner: 'record' } },
    },
    async (request, reply) => {
      const { id } = request.params;
      await writeTransaction(
        request,
        reply,
        (dbTx, touched) =>
          transactions.remove(id, {
            dbTx,
            ifMatch: readIfMatch(request),
            owner: ownerOf(request),
            touched,
          }),
        () =>
          respond(reply, 200, {
            data: `Transaction with ID: ${id} removed`,
            code: 200,
            message: 'Transaction deleted successfully',
          }),
      );
    },
  );
};
