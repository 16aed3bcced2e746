import type { FastifyBaseLogger } from 'fastify';

/**
 * Logs a dependency's outage once when it starts and once when it ends, however many calls fail
 * or succeed in between: a down Redis must not write a line per request.
 */
export function outageLog(
  logger: Pick<FastifyBaseLogger, 'warn' | 'info'>,
  fields: Record<string, string>,
  messages: { down: string; up: string },
) {
  let down = false;
  return {
    failed(error: unknown): void {
      if (down) return;
      down = true;
      logger.warn({ err: error, ...fields }, messages.down);
    },
    succeeded(): void {
      if (!down) return;
      down = false;
      logger.info(fields, messages.up);
    },
  };
}
