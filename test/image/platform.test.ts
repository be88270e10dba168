import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Digest } from '../../src/digest.js';
import { selectPlatform, parsePlatform, formatPlatform, type Descriptor, type Platform } from '../../src/image/index.js';

let n = 0;
const entry = (platform: Platform, annotations?: Record<string, string>): Descriptor => ({
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  digest: `sha256:${String(n++).padStart(64, '0')}` as Digest,
  size: 1,
  platform,
  annotations,
});

describe('selectPlatform', () => {
  const attestation = entry({ os: 'unknown', architecture: 'unknown' }, { 'vnd.docker.reference.type': 'attestation-manifest' });
  const arm64 = entry({ os: 'linux', architecture: 'arm64', variant: 'v8' });
  const amd64 = entry({ os: 'linux', architecture: 'amd64' });
  const armv6 = entry({ os: 'linux', architecture: 'arm', variant: 'v6' });
  const armv7 = entry({ os: 'linux', architecture: 'arm', variant: 'v7' });
  const arm64bare = entry({ os: 'linux', architecture: 'arm64' });
  const windows = entry({ os: 'windows', architecture: 'amd64' });

  const cases: [string, Descriptor[], string, Descriptor | undefined][] = [
    ['amd64 over arm64 and the attestation listed first', [attestation, arm64, amd64], 'linux/amd64', amd64],
    ['nothing for s390x', [attestation, arm64, amd64], 'linux/s390x', undefined],
    ['arm64/v8 for arm64', [amd64, arm64], 'linux/arm64', arm64],
    ['arm64 without a variant for arm64/v8', [amd64, arm64bare], 'linux/arm64/v8', arm64bare],
    ['arm/v7 for arm/v7 when v6 is listed first', [armv6, armv7], 'linux/arm/v7', armv7],
    ['arm/v6 as the fallback for arm/v7', [armv6], 'linux/arm/v7', armv6],
    ['no arm/v7 for arm/v6', [armv7], 'linux/arm/v6', undefined],
    ['not windows for linux', [windows], 'linux/amd64', undefined],
    ['arm/v7 for a bare arm', [armv6, armv7], 'linux/arm', armv7],
    ['arm/v6 for a bare arm without v7', [armv6], 'linux/arm', armv6],
    ['arm/v7 then v6 for arm/v8 (32-bit)', [armv6, armv7], 'linux/arm/v8', armv7],
    ['arm/v7 for armhf', [armv6, armv7], 'linux/armhf', armv7],
    ['arm64/v8 for aarch64', [amd64, arm64], 'linux/aarch64', arm64],
    ['nothing 32-bit for arm64', [armv7], 'linux/arm64', undefined],
  ];
  for (const [name, manifests, want, got] of cases) {
    test(`picks ${name}`, () => assert.equal(selectPlatform(manifests, parsePlatform(want)!), got));
  }
});

describe('parsePlatform', () => {
  const normalized: [string, string][] = [
    ['Linux/AMD64', 'linux/amd64'],
    ['linux/x86_64', 'linux/amd64'],
    ['linux/amd64/v1', 'linux/amd64'],
    ['linux/amd64/v3', 'linux/amd64/v3'],
    ['linux/aarch64', 'linux/arm64'],
    ['linux/arm64/v8', 'linux/arm64'],
    ['linux/armhf', 'linux/arm/v7'],
    ['linux/armel', 'linux/arm/v6'],
    ['linux/i386', 'linux/386'],
  ];
  for (const [given, want] of normalized) {
    test(`normalizes ${given} to ${want}`, () => assert.equal(formatPlatform(parsePlatform(given)!), want));
  }

  test('round-trips os/arch[/variant] and refuses other shapes', () => {
    assert.equal(formatPlatform(parsePlatform('linux/arm/v6')!), 'linux/arm/v6');
    assert.equal(formatPlatform(parsePlatform('linux/amd64')!), 'linux/amd64');
    for (const bad of ['linux', 'linux/', '/amd64', 'a/b/c/d', '']) assert.equal(parsePlatform(bad), undefined, bad);
  });
});
