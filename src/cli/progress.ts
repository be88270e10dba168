/**
 * Drawing pull progress. On a terminal (and unless --quiet or NO_COLOR
 * says otherwise) each layer gets a line with a live bar, redrawn in place,
 * as Docker does; otherwise one plain line per finished layer.
 */
import type { ProgressEvent } from '../pull/index.js';
import { humanSize } from './output.js';

export interface ProgressRenderer {
  update(e: ProgressEvent): void;
  /** Stops redrawing; leaves the final state on screen. */
  done(): void;
}

const labels: Record<ProgressEvent['phase'], string> = {
  waiting: 'Waiting',
  downloading: 'Downloading',
  verifying: 'Verifying Checksum',
  complete: 'Pull complete',
  exists: 'Already exists',
};

function shortId(digest: string): string {
  return digest.slice(digest.indexOf(':') + 1, digest.indexOf(':') + 13);
}

/** Returns a renderer for stream, or one that prints nothing when quiet. */
export function progressRenderer(stream: NodeJS.WriteStream, options: { quiet: boolean }): ProgressRenderer {
  if (options.quiet) return { update() {}, done() {} };
  if (!stream.isTTY) return lineRenderer(stream);
  return barRenderer(stream);
}

function lineRenderer(stream: NodeJS.WriteStream): ProgressRenderer {
  const printed = new Set<string>();
  return {
    update(e) {
      if ((e.phase === 'complete' || e.phase === 'exists') && !printed.has(e.digest)) {
        printed.add(e.digest);
        stream.write(`${shortId(e.digest)}: ${labels[e.phase]}\n`);
      }
    },
    done() {},
  };
}

function barRenderer(stream: NodeJS.WriteStream): ProgressRenderer {
  const order: string[] = [];
  const state = new Map<string, ProgressEvent & { started: number }>();
  let drawn = 0;
  let timer: NodeJS.Timeout | undefined;

  const line = (e: ProgressEvent & { started: number }): string => {
    const id = shortId(e.digest);
    if (e.phase !== 'downloading') return `${id}: ${labels[e.phase]}`;
    const width = 40;
    const frac = e.total > 0 ? Math.min(1, e.complete / e.total) : 0;
    const filled = Math.floor(frac * width);
    const bar = '='.repeat(Math.max(0, filled - 1)) + (filled > 0 ? '>' : '') + ' '.repeat(width - filled);
    const secs = (Date.now() - e.started) / 1000;
    const speed = secs > 0.2 ? ` ${humanSize(e.complete / secs)}/s` : '';
    return `${id}: ${labels[e.phase]} [${bar}] ${humanSize(e.complete)}/${humanSize(e.total)}${speed}`;
  };

  const draw = () => {
    let out = drawn > 0 ? `\x1b[${drawn}A` : '';
    for (const d of order) out += `\x1b[2K${line(state.get(d)!)}\n`;
    drawn = order.length;
    stream.write(out);
  };

  return {
    update(e) {
      const old = state.get(e.digest);
      if (!old) order.push(e.digest);
      state.set(e.digest, { ...e, started: old?.started ?? Date.now() });
      if (!timer) {
        timer = setInterval(draw, 100);
        timer.unref();
      }
    },
    done() {
      if (timer) clearInterval(timer);
      if (order.length > 0) draw();
    },
  };
}
