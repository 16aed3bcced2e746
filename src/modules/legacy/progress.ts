/**
 * Progress of a long CLI run: on a terminal, one line redrawn in place (rows, rows/s, ETA); when
 * the output is a file or a pipe, a plain line every few seconds, so logs stay readable.
 */
const TTY_REDRAW_MS = 250;
const LOG_EVERY_MS = 5_000;

export interface ProgressSink {
  write(text: string): unknown;
  isTTY?: boolean | undefined;
}

export interface Progress {
  /** `rows` done so far; `fraction` of the whole, when known (0-1). */
  update(rows: number, fraction: number | undefined): void;
  /** Clears the terminal line; the caller prints its summary next. */
  done(): void;
}

function duration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n: number) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

export function createProgress(
  sink: ProgressSink,
  label: string,
  options: { now?: () => number; intervalMs?: number } = {},
): Progress {
  const now = options.now ?? (() => Date.now());
  const tty = sink.isTTY === true;
  const interval = options.intervalMs ?? (tty ? TTY_REDRAW_MS : LOG_EVERY_MS);
  const started = now();
  let last = started;
  let drawn = false;

  function line(rows: number, fraction: number | undefined): string {
    const seconds = (now() - started) / 1000;
    const rate = seconds > 0 ? rows / seconds : 0;
    const parts = [
      `${label} ${rows.toLocaleString('en')}`,
      `${Math.round(rate).toLocaleString('en')}/s`,
    ];
    if (fraction !== undefined && fraction > 0) {
      parts.push(`${(fraction * 100).toFixed(1)}%`);
      parts.push(`ETA ${duration((seconds / fraction) * (1 - fraction))}`);
    }
    return parts.join('  ');
  }

  return {
    update(rows, fraction) {
      const t = now();
      if (t - last < interval) return;
      last = t;
      if (tty) {
        sink.write(`\r\x1b[2K${line(rows, fraction)}`);
        drawn = true;
      } else {
        sink.write(`${new Date(t).toISOString()} ${line(rows, fraction)}\n`);
      }
    },
    done() {
      if (tty && drawn) sink.write('\r\x1b[2K');
    },
  };
}
