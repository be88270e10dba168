/**
 * Platform matching: which entry of an index runs on this machine.
 */
import type { Descriptor, Platform } from './types.js';

const nodeArchToOCI: Record<string, string> = {
  x64: 'amd64',
  arm64: 'arm64',
  arm: 'arm',
  ia32: '386',
  ppc64: 'ppc64le',
  s390x: 's390x',
  riscv64: 'riscv64',
  loong64: 'loong64',
  mips64el: 'mips64le',
};

/** Returns the platform of the running machine in OCI terms. */
export function hostPlatform(): Platform {
  const architecture = nodeArchToOCI[process.arch] ?? process.arch;
  const platform: Platform = { os: 'linux', architecture };
  if (architecture === 'arm64') platform.variant = 'v8';
  if (architecture === 'arm') {
    const v = (process.config.variables as Record<string, unknown>).arm_version;
    platform.variant = `v${typeof v === 'string' || typeof v === 'number' ? v : '7'}`;
  }
  return platform;
}

// Other names people give architectures, as containerd normalizes them:
// name → [architecture, variant when the name implies one].
const archAliases: Record<string, [string, string?]> = {
  x86_64: ['amd64'],
  'x86-64': ['amd64'],
  aarch64: ['arm64'],
  armhf: ['arm', 'v7'],
  armel: ['arm', 'v6'],
  i386: ['386'],
};

/**
 * Parses "os/arch[/variant]", normalized as Docker does: lower case,
 * aarch64 is arm64, x86_64 is amd64, armhf is arm/v7, armel arm/v6, and
 * arm64's "v8" and amd64's "v1" variants are the architecture's default
 * and dropped. Returns undefined when s has the wrong shape.
 */
export function parsePlatform(s: string): Platform | undefined {
  const parts = s.toLowerCase().split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p === '')) return undefined;
  const [os, arch, given] = parts as [string, string, string?];
  const [architecture, implied] = archAliases[arch] ?? [arch];
  let variant = given ?? implied;
  if ((architecture === 'arm64' && variant === 'v8') || (architecture === 'amd64' && variant === 'v1')) variant = undefined;
  const p: Platform = { os, architecture };
  if (variant !== undefined) p.variant = variant;
  return p;
}

/** Formats a platform as "os/arch[/variant]". */
export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/**
 * The variants that can run where `want` runs, best first. arm64 treats a
 * missing variant as v8; 32-bit arm falls back from v8 to v7 to v6 to v5, as
 * containerd's platform matcher does.
 */
function compatibleVariants(want: Platform): (string | undefined)[] {
  if (want.architecture === 'arm64') {
    return want.variant === undefined || want.variant === 'v8' ? ['v8', undefined] : [want.variant];
  }
  if (want.architecture === 'arm') {
    const order = ['v8', 'v7', 'v6', 'v5'];
    const start = order.indexOf(want.variant ?? 'v7');
    return start < 0 ? [want.variant] : [...order.slice(start), undefined];
  }
  return want.variant === undefined ? [undefined] : [want.variant, undefined];
}

/** True for index entries that describe attestations, not runnable images. */
export function isAttestation(d: Descriptor): boolean {
  return (
    (d.platform?.os === 'unknown' && d.platform?.architecture === 'unknown') ||
    d.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest'
  );
}

/**
 * Picks the entry of an index's manifests that best matches want, skipping
 * attestations. Returns undefined when none matches.
 */
export function selectPlatform(manifests: Descriptor[], want: Platform): Descriptor | undefined {
  const candidates = manifests.filter(
    (d) =>
      !isAttestation(d) &&
      d.platform !== undefined &&
      d.platform.os === want.os &&
      d.platform.architecture === want.architecture,
  );
  for (const variant of compatibleVariants(want)) {
    const hit = candidates.find((d) => d.platform?.variant === variant);
    if (hit) return hit;
  }
  // An image that names no variant, or a variant we do not rank, still runs
  // when the architecture is one without variants (amd64, ppc64le, ...).
  if (want.architecture !== 'arm' && want.architecture !== 'arm64') return candidates[0];
  return undefined;
}
