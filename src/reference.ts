/**
 * Image references, parsed and normalized as Docker does:
 *
 *   busybox                      → docker.io/library/busybox:latest
 *   127.0.0.1:5000/team/app:v1   → registry 127.0.0.1:5000, repository team/app
 *   app@sha256:<hex>             → pinned by digest (a tag, if also given, is kept
 *                                  for display only)
 *
 * A first component is a registry host when it holds "." or ":" or is
 * "localhost" (distribution/reference's rule).
 */
import { parseReferenceDigest, type Digest } from './digest.js';
import { InvalidReferenceError } from './errors.js';

export const defaultRegistry = 'docker.io';

/** A parsed, normalized image reference. */
export interface Reference {
  /** Registry host as written, with port: "docker.io", "127.0.0.1:5000". */
  registry: string;
  /** Repository path: "library/busybox". */
  repository: string;
  tag?: string;
  digest?: Digest;
}

const component = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const tagPattern = /^[\w][\w.-]{0,127}$/;
const hostPattern =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?$/;

/**
 * Parses s into a normalized Reference. Throws InvalidReferenceError, naming
 * the input and the broken rule, before any I/O is done.
 */
export function parseReference(s: string): Reference {
  const fail = (reason: string): never => {
    throw new InvalidReferenceError(s, reason);
  };
  if (s === '') fail('empty reference');
  if (s.length > 4096) fail('too long');

  let rest = s;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = parseReferenceDigest(s, rest.slice(at + 1));
    rest = rest.slice(0, at);
  }

  // A tag follows the last ":" that comes after the last "/"; an earlier ":"
  // belongs to the registry's port.
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!tagPattern.test(tag)) fail(`tag ${JSON.stringify(tag)} must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`);
  }

  const parts = rest.split('/');
  let registry = defaultRegistry;
  const first = parts[0]!;
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    if (!hostPattern.test(first)) fail(`registry host ${JSON.stringify(first)} is not a valid host[:port]`);
    const port = /:([0-9]+)$/.exec(first)?.[1];
    if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) fail(`registry port ${port} is not in 1-65535`);
    registry = first;
    parts.shift();
  }
  if (registry === 'index.docker.io' || registry === 'registry-1.docker.io') registry = defaultRegistry;

  for (const p of parts) {
    if (p === '') fail('empty path component');
    if (/[A-Z]/.test(p)) fail('repository name must be lowercase');
    if (!component.test(p)) fail(`path component ${JSON.stringify(p)} has characters outside [a-z0-9._-]`);
  }
  if (registry === defaultRegistry && parts.length === 1) parts.unshift('library');
  const repository = parts.join('/');
  if (repository.length > 255) fail('repository name longer than 255 characters');

  if (tag === undefined && digest === undefined) tag = 'latest';
  return { registry, repository, tag, digest };
}

/** Formats r in full: "docker.io/library/busybox:latest[@sha256:…]". */
export function formatReference(r: Reference): string {
  let s = `${r.registry}/${r.repository}`;
  if (r.tag !== undefined) s += `:${r.tag}`;
  if (r.digest !== undefined) s += `@${r.digest}`;
  return s;
}

/** Formats r's repository as Docker's `images` shows it: "busybox", "127.0.0.1:5000/x". */
export function familiarName(r: Reference): string {
  if (r.registry === defaultRegistry) {
    return r.repository.startsWith('library/') ? r.repository.slice('library/'.length) : r.repository;
  }
  return `${r.registry}/${r.repository}`;
}

/** True when host (with optional port) names a loopback registry, spoken to over plain HTTP. */
export function isLoopbackRegistry(registry: string): boolean {
  const host = registry.replace(/:[0-9]+$/, '').replace(/^\[(.*)\]$/, '$1');
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
