/**
 * Container ids and generated names.
 */
import { randomBytes, randomInt } from 'node:crypto';

/** A new container id: 64 hex digits, of which the first 12 are its short form. */
export function newContainerId(): string {
  return randomBytes(32).toString('hex');
}

const adjectives = [
  'brave', 'calm', 'eager', 'fond', 'gentle', 'happy', 'keen', 'lucid', 'merry', 'nimble',
  'proud', 'quiet', 'rapid', 'sharp', 'steady', 'tender', 'vivid', 'wise', 'young', 'zealous',
];
const nouns = [
  'otter', 'falcon', 'heron', 'badger', 'lynx', 'marten', 'osprey', 'raven', 'stoat', 'wren',
  'beaver', 'crane', 'ferret', 'gecko', 'ibis', 'koala', 'lemur', 'newt', 'puffin', 'tapir',
];

/** A readable name such as "keen_heron", for containers started without --name. */
export function generateName(): string {
  return `${adjectives[randomInt(adjectives.length)]}_${nouns[randomInt(nouns.length)]}`;
}

/** The longest container name: each is a file name in the store's names/. */
export const maxNameLength = 128;

/**
 * True for a name Docker would accept, [a-zA-Z0-9][a-zA-Z0-9_.-]+ (two
 * characters at least), of at most maxNameLength characters.
 */
export function isValidName(name: string): boolean {
  return name.length <= maxNameLength && /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/.test(name);
}

/**
 * True for a host name of RFC 1123: labels of letters, digits and '-', not
 * starting or ending with '-', joined by '.', within the kernel's 64 bytes.
 */
export function isValidHostname(name: string): boolean {
  const label = '[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?';
  return name.length <= 64 && new RegExp(`^${label}(?:\\.${label})*$`).test(name);
}
