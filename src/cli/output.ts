/**
 * Terminal output helpers: tables, sizes, relative times, and the logger
 * that writes to stderr.
 */
import type { Logger } from '../log.js';

export type LogLevel = 'debug' | 'info' | 'warn';

/** A Logger writing "minidock: level: message" lines to stderr from `level` up. */
export function stderrLogger(level: LogLevel): Logger {
  const rank = { debug: 0, info: 1, warn: 2 }[level];
  const write = (l: LogLevel, r: number) => (m: string) => {
    if (r >= rank) process.stderr.write(`${l === 'warn' ? 'warning: ' : ''}${m}\n`);
  };
  return { debug: write('debug', 0), info: write('info', 1), warn: write('warn', 2) };
}

/** Formats rows as space-padded columns, like Docker's tables (three spaces between columns). */
export function table(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all
    .map((r) =>
      r
        .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]! + 3)))
        .join('')
        .trimEnd(),
    )
    .join('\n');
}

/** Formats bytes as Docker does: decimal units, three significant digits ("1.23MB", "4.1kB"). */
export function humanSize(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = bytes;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  const s = i === 0 ? String(v) : v.toPrecision(3).replace(/\.?0+$/, '');
  return `${s}${units[i]}`;
}

/** Formats the time since `iso` as Docker does ("3 minutes", "About an hour", "2 days"). */
export function humanDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 1) return 'Less than a second';
  if (s === 1) return '1 second';
  if (s < 60) return `${s} seconds`;
  const m = Math.round(s / 60);
  if (m === 1) return 'About a minute';
  if (m < 60) return `${m} minutes`;
  const h = Math.round(s / 3600);
  if (h === 1) return 'About an hour';
  if (h < 48) return `${h} hours`;
  const d = Math.round(h / 24);
  if (d < 14) return `${d} days`;
  if (d < 60) return `${Math.round(d / 7)} weeks`;
  if (d < 730) return `${Math.round(d / 30)} months`;
  return `${Math.round(d / 365)} years`;
}

export function ago(iso: string | undefined, now = Date.now()): string {
  if (!iso) return 'N/A';
  const t = Date.parse(iso);
  return Number.isNaN(t) ? 'N/A' : `${humanDuration(now - t)} ago`;
}

/**
 * Text from an image (a file name, a link target, a history line) made safe
 * for a terminal and for line-oriented output: control characters (C0, DEL
 * and C1) become escapes such as `\n` and `\x1b`, so a name can neither
 * drive the terminal nor forge a line of its own. JSON output needs none of
 * this.
 */
export function printable(text: string): string {
  return text.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => {
    const named: Record<string, string> = { '\n': '\\n', '\t': '\\t', '\r': '\\r' };
    return named[c] ?? `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
  });
}
