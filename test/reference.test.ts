import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InvalidReferenceError } from '../src/errors.js';
import { familiarName, formatReference, isLoopbackRegistry, parseReference } from '../src/reference.js';

const hex = 'a'.repeat(64);

describe('parseReference', () => {
  const good: [string, string, string][] = [
    ['busybox', 'docker.io/library/busybox:latest', 'busybox'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36', 'busybox'],
    ['library/busybox', 'docker.io/library/busybox:latest', 'busybox'],
    ['team/app', 'docker.io/team/app:latest', 'team/app'],
    ['docker.io/busybox', 'docker.io/library/busybox:latest', 'busybox'],
    ['index.docker.io/library/busybox', 'docker.io/library/busybox:latest', 'busybox'],
    ['127.0.0.1:5000/library/debian:bookworm', '127.0.0.1:5000/library/debian:bookworm', '127.0.0.1:5000/library/debian'],
    ['localhost/app', 'localhost/app:latest', 'localhost/app'],
    ['localhost:5000/a/b/c:v1.2-rc_3', 'localhost:5000/a/b/c:v1.2-rc_3', 'localhost:5000/a/b/c'],
    ['ghcr.io/owner/repo', 'ghcr.io/owner/repo:latest', 'ghcr.io/owner/repo'],
    ['[::1]:5000/x', '[::1]:5000/x:latest', '[::1]:5000/x'],
    [`busybox@sha256:${hex}`, `docker.io/library/busybox@sha256:${hex}`, 'busybox'],
    [`busybox:1.36@sha256:${hex}`, `docker.io/library/busybox:1.36@sha256:${hex}`, 'busybox'],
    ['my-app__x/y.z', 'docker.io/my-app__x/y.z:latest', 'my-app__x/y.z'],
  ];
  for (const [input, full, familiar] of good) {
    test(`normalizes ${input}`, () => {
      const ref = parseReference(input);
      assert.equal(formatReference(ref), full);
      assert.equal(familiarName(ref), familiar);
    });
  }

  const bad: [string, RegExp][] = [
    ['', /empty reference/],
    ['Busybox', /must be lowercase/],
    ['team/App:1', /must be lowercase/],
    ['bad::ref', /tag|path component/],
    ['busybox:', /tag ""/],
    ['busybox:-x', /tag "-x"/],
    [`busybox:${'a'.repeat(129)}`, /tag/],
    ['a//b', /empty path component/],
    ['/busybox', /empty path component/],
    ['busybox/', /empty path component/],
    ['bad ref!', /characters outside/],
    ['-lead', /characters outside/],
    ['busybox@sha256:1234', /digest/],
    [`busybox@md5:${hex}`, /digest/],
    [`busybox@sha256:${'A'.repeat(64)}`, /digest/],
    ['host:99999999999999999999/x', /registry port/],
    ['host:99999/x', /registry port 99999 is not in 1-65535/],
    ['my-app__x.y/z', /registry host/],
  ];
  for (const [input, reason] of bad) {
    test(`refuses ${JSON.stringify(input)}`, () => {
      assert.throws(
        () => parseReference(input),
        (err: unknown) => err instanceof InvalidReferenceError && reason.test(err.message) && err.message.startsWith('invalid reference format'),
      );
    });
  }
});

describe('isLoopbackRegistry', () => {
  for (const [host, want] of [
    ['127.0.0.1:5000', true],
    ['127.1.2.3', true],
    ['localhost:5000', true],
    ['localhost', true],
    ['[::1]:5000', true],
    ['docker.io', false],
    ['128.0.0.1:5000', false],
    ['127.0.0.1.example.com', false],
    ['localhost.example.com', false],
  ] as const) {
    test(`${host} → ${want}`, () => assert.equal(isLoopbackRegistry(host), want));
  }
});
