/**
 * A small scriptable HTTP server for registry-client tests: a mock that
 * misbehaves on purpose where a real registry cannot. It listens on a
 * loopback address at a free port and records every request it gets.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
}

export interface MockServer {
  /** "http://127.0.0.1:port" */
  origin: string;
  /** "127.0.0.1:port", usable as a reference's registry. */
  host: string;
  requests: RecordedRequest[];
  /** Requests whose path starts with prefix. */
  requestsTo(prefix: string): RecordedRequest[];
  close(): Promise<void>;
}

export type Handler = (req: IncomingMessage, res: ServerResponse, mock: MockServer) => void;

/** Starts a mock on address (default 127.0.0.1) at a free port. */
export async function startMock(handler: Handler, address = '127.0.0.1'): Promise<MockServer> {
  const sockets = new Set<Socket>();
  const server = createServer();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, address, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const mock: MockServer = {
    origin: `http://${address}:${port}`,
    host: `${address}:${port}`,
    requests: [],
    requestsTo: (prefix) => mock.requests.filter((r) => r.url.startsWith(prefix)),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    mock.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    // A client that hangs up mid-body is part of several tests.
    res.on('error', () => {});
    try {
      handler(req, res, mock);
    } catch (err) {
      res.statusCode = 599;
      res.end(String(err));
    }
  });
  return mock;
}

/** Sends a registry-style JSON error body. */
export function sendError(res: ServerResponse, status: number, code: string, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ errors: [{ code, message }] }));
}
