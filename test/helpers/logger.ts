/**
 * A Logger for tests that keeps every line, to check what was (and was not)
 * logged.
 */
import type { Logger } from '../../src/log.js';

/** Returns a Logger whose lines ("debug …", "info …", "warn …") land in .lines. */
export function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    debug: (m) => lines.push(`debug ${m}`),
    info: (m) => lines.push(`info ${m}`),
    warn: (m) => lines.push(`warn ${m}`),
  };
}
