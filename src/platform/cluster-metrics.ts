import cluster from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';

/*
 * Under WEB_CONCURRENCY > 1 a scrape lands on whichever HTTP process accepts it. That process asks
 * the supervisor, which asks every HTTP process for its metrics (prom-client's AggregatorRegistry
 * over the cluster's IPC channel) and answers with their sum: one scrape shows the whole server,
 * and counters never jump between processes.
 */

const SCRAPE_REQUEST = 'fido:metrics-scrape';
const SCRAPE_RESULT = 'fido:metrics-scrape-result';
/** prom-client gives each process 5 s to answer; the asking process waits a little longer. */
const SCRAPE_TIMEOUT_MS = 7_000;

interface ScrapeRequest {
  type: typeof SCRAPE_REQUEST;
  id: number;
}
interface ScrapeResult {
  type: typeof SCRAPE_RESULT;
  id: number;
  text?: string;
  error?: string;
}

/** In the supervisor: answers its HTTP processes' scrape requests with every process's sum. */
export function serveClusterMetrics(): void {
  const aggregator = new AggregatorRegistry();
  cluster.on('message', (worker, message: Partial<ScrapeRequest> | undefined) => {
    if (message?.type !== SCRAPE_REQUEST || typeof message.id !== 'number') return;
    const { id } = message;
    const answer = (result: Omit<ScrapeResult, 'type' | 'id'>) => {
      if (worker.isConnected()) worker.send({ type: SCRAPE_RESULT, id, ...result });
    };
    aggregator.clusterMetrics().then(
      (text) => answer({ text }),
      (error: unknown) => answer({ error: String((error as Error)?.message ?? error) }),
    );
  });
}

/**
 * In an HTTP process under the supervisor: a function scraping the whole server, and this
 * process's `registry` offered to the supervisor's aggregation. Undefined in a process of its own
 * (WEB_CONCURRENCY=1, the worker entry, tests): its registry is the whole story.
 */
export function wholeServerScrape(registry: Registry): (() => Promise<string>) | undefined {
  if (!cluster.isWorker || !process.send) return undefined;
  // Constructed in a worker, it answers the supervisor's requests with these registries.
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([registry]);
  const pending = new Map<number, (result: ScrapeResult) => void>();
  let nextId = 0;
  process.on('message', (message: Partial<ScrapeResult> | undefined) => {
    if (message?.type !== SCRAPE_RESULT || typeof message.id !== 'number') return;
    pending.get(message.id)?.(message as ScrapeResult);
  });
  return () =>
    new Promise<string>((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(
        () => settle({ type: SCRAPE_RESULT, id, error: 'timed out' }),
        SCRAPE_TIMEOUT_MS,
      );
      function settle(result: ScrapeResult) {
        clearTimeout(timer);
        pending.delete(id);
        if (result.text !== undefined) resolve(result.text);
        else
          reject(new Error(`metrics of the other HTTP processes: ${result.error ?? 'no answer'}`));
      }
      pending.set(id, settle);
      process.send!({ type: SCRAPE_REQUEST, id } satisfies ScrapeRequest);
    });
}
