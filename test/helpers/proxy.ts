/**
 * A proxy for tests, in front of a real registry: it passes everything
 * through, except what a test asks it to do wrong on purpose (a mock where
 * the real registry cannot misbehave): stall a blob mid-body while the
 * connection stays open, or answer some requests itself (a 429, say).
 */
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface ProxyOptions {
  /**
   * The first GET of this blob without a Range header stops after `after`
   * bytes of its body and then sends nothing more.
   */
  stall?: { blob: string; after: number };
  /** Answers a request itself when it returns true; otherwise it is passed on. */
  intercept?: (req: IncomingMessage, res: ServerResponse) => boolean;
}

export interface TestProxy {
  /** "127.0.0.1:PORT", usable as a reference's registry. */
  host: string;
  /** Range headers of the GETs of the stalled blob, in order (undefined for none). */
  ranges: (string | undefined)[];
  /** Resolves once the stalled blob's first bytes went out and the rest is held back. */
  stalled: Promise<void>;
  close(): Promise<void>;
}

/** Starts a proxy to upstream ("http://127.0.0.1:PORT") on 127.0.0.1 at a free port. */
export async function startProxy(upstream: string, options: ProxyOptions = {}): Promise<TestProxy> {
  const sockets = new Set<Socket>();
  const ranges: (string | undefined)[] = [];
  let onStall!: () => void;
  const stalled = new Promise<void>((resolve) => (onStall = resolve));
  let stalledOnce = false;
  const server = createServer((req, res) => {
    res.on('error', () => {});
    if (options.intercept?.(req, res)) return;
    const stallOpt = options.stall;
    const isBlob = stallOpt !== undefined && req.method === 'GET' && req.url?.endsWith(`/blobs/${stallOpt.blob}`);
    if (isBlob) ranges.push(req.headers.range);
    const stall = isBlob && req.headers.range === undefined && !stalledOnce;
    if (stall) stalledOnce = true;
    const up = request(`${upstream}${req.url}`, { method: req.method, headers: req.headers }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      if (!stall) {
        upRes.pipe(res);
        return;
      }
      let sent = 0;
      upRes.on('data', (chunk: Buffer) => {
        if (sent >= stallOpt!.after) return;
        const part = chunk.subarray(0, stallOpt!.after - sent);
        sent += part.length;
        res.write(part);
        if (sent >= stallOpt!.after) onStall();
      });
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    ranges,
    stalled,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
