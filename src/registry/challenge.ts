/**
 * Parsing the WWW-Authenticate header (RFC 9110 section 11.6.1): a list of
 * challenges, each an auth-scheme followed by either a token68 or a list of
 * name=value parameters whose values are tokens or quoted strings.
 */
import { MinidockError } from '../errors.js';

/** One authentication challenge. */
export interface Challenge {
  /** The auth-scheme, lower-cased: "bearer", "basic". */
  scheme: string;
  /** Parameters by lower-cased name, values unquoted and unescaped. */
  params: Record<string, string>;
  /** The token68 form, when the challenge carries one instead of parameters. */
  token68?: string;
}

const tchar = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;
const token68Pattern = /^[A-Za-z0-9\-._~+/]+=*/;

/**
 * Parses a WWW-Authenticate header value into its challenges, in order.
 * Scheme and parameter names are case-insensitive and come back lower-cased;
 * quoted values may hold commas and backslash escapes. Throws a MinidockError
 * (ERR_BAD_CHALLENGE) naming the offset of the first thing that breaks the
 * grammar, or when a parameter repeats within one challenge.
 */
export function parseChallenges(header: string): Challenge[] {
  const s = header;
  let i = 0;
  const fail = (why: string): never => {
    throw new MinidockError('ERR_BAD_CHALLENGE', `parse WWW-Authenticate header: ${why}`);
  };
  const skipSpace = (): void => {
    while (s[i] === ' ' || s[i] === '\t') i++;
  };
  const readToken = (): string => {
    const start = i;
    while (i < s.length && tchar.test(s[i]!)) i++;
    return s.slice(start, i);
  };
  const readQuoted = (): string => {
    let out = '';
    i++; // the opening quote
    for (;;) {
      if (i >= s.length) fail('unterminated quoted string');
      const c = s[i]!;
      if (c === '"') {
        i++;
        return out;
      }
      if (c === '\\') {
        i++;
        if (i >= s.length) fail('unterminated quoted string');
      }
      const code = s.charCodeAt(i);
      if ((code < 0x20 && code !== 0x09) || code === 0x7f) fail(`control character at offset ${i}`);
      out += s[i];
      i++;
    }
  };
  const expectEndOfElement = (): void => {
    skipSpace();
    if (i < s.length && s[i] !== ',') fail(`unexpected ${JSON.stringify(s[i])} at offset ${i}`);
  };

  const challenges: { scheme: string; params: Map<string, string>; token68?: string }[] = [];
  let current: (typeof challenges)[number] | undefined;
  // True right after "scheme SP": what follows must be a parameter.
  let wantParam = false;
  skipSpace();
  if (i >= s.length) fail('empty header');

  while (i < s.length) {
    // Empty list elements are allowed ("a, , b").
    if (s[i] === ',') {
      i++;
      wantParam = false;
      skipSpace();
      continue;
    }

    const name = readToken();
    if (name === '') fail(`unexpected ${JSON.stringify(s[i])} at offset ${i}`);
    const afterName = i;
    skipSpace();

    if (s[i] === '=') {
      // An auth-param of the current challenge.
      const c = current ?? fail(`parameter ${JSON.stringify(name)} before any scheme`);
      if (c.token68 !== undefined) fail(`parameter ${JSON.stringify(name)} after a token68`);
      i++;
      skipSpace();
      const value = s[i] === '"' ? readQuoted() : readToken();
      if (value === '' && s[i - 1] !== '"') fail(`parameter ${JSON.stringify(name)} has no value`);
      const key = name.toLowerCase();
      if (c.params.has(key)) fail(`parameter ${JSON.stringify(key)} given twice`);
      c.params.set(key, value);
      wantParam = false;
      expectEndOfElement();
      continue;
    }

    // A new challenge: the scheme, then a token68, parameters, or nothing.
    if (wantParam) fail(`expected a parameter at offset ${afterName - name.length}`);
    i = afterName;
    current = { scheme: name.toLowerCase(), params: new Map() };
    challenges.push(current);
    if (s[i] !== ' ' && s[i] !== '\t') {
      expectEndOfElement();
      continue;
    }
    skipSpace();
    const t68 = token68Pattern.exec(s.slice(i))?.[0];
    if (t68 !== undefined) {
      const save = i;
      i += t68.length;
      skipSpace();
      if (i >= s.length || s[i] === ',') {
        current.token68 = t68;
        continue;
      }
      // Not a token68 after all: the start of "name=value".
      i = save;
    }
    wantParam = true;
  }

  return challenges.map((c) => {
    const out: Challenge = { scheme: c.scheme, params: Object.fromEntries(c.params) };
    if (c.token68 !== undefined) out.token68 = c.token68;
    return out;
  });
}
