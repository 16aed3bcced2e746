/**
 * The schedule both background loops of this module run on (the event worker and the JetStream
 * relay): one pass at a time, every `pollMs`, at once when nudged (a write committed) or when a
 * pass ends with more to do. A pass runs steps while one asks for more, and ends at a throw.
 */
export interface LoopOptions {
  pollMs: number;
  /** One step of work; true when there is more to do at once (a full batch). */
  step(): Promise<boolean>;
  /** Whether another step may follow in this pass (the worker's: a free slot); default yes. */
  mayContinue?(): boolean;
  /** A pass ended without a throw. */
  succeeded(): void;
  /** A step threw (the pass ends); true to start the next pass at once instead of at the poll. */
  failed(error: unknown): boolean;
}

export interface Loop {
  /** Run a pass now, or right after the one running. */
  nudge(): void;
  /** Schedules nothing more, and resolves once the pass running (if any) has ended. */
  stop(): Promise<void>;
}

/** Starts the loop: its first pass runs on the next turn of the event loop. */
export function startLoop(options: LoopOptions): Loop {
  let stopped = false;
  let running: Promise<void> | undefined;
  let again = false;
  let timer: NodeJS.Timeout | undefined;

  function schedule(delayMs: number): void {
    if (stopped) return;
    clearTimeout(timer);
    timer = setTimeout(() => void tick(), delayMs);
    timer.unref();
  }

  function nudge(): void {
    if (stopped) return;
    if (running) again = true;
    else schedule(0);
  }

  async function tick(): Promise<void> {
    if (running || stopped) {
      again = true;
      return;
    }
    running = (async () => {
      try {
        do {
          again = false;
          if (await options.step()) again = true;
        } while (again && !stopped && (options.mayContinue?.() ?? true));
        options.succeeded();
      } catch (error) {
        if (options.failed(error)) again = true;
      }
    })();
    await running;
    running = undefined;
    schedule(again ? 0 : options.pollMs);
  }

  schedule(0);
  return {
    nudge,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
