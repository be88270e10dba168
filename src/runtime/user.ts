/**
 * Resolving `User` (from the image or `-u`) to numeric ids, as Docker does:
 * "name", "uid", "name:group", "uid:gid"; names are looked up in the image's
 * own /etc/passwd and /etc/group, never the host's.
 */
import { MinidockError } from '../errors.js';

export interface ResolvedUser {
  uid: number;
  gid: number;
  /** Supplementary groups: every group in /etc/group listing the user as a member. */
  groups: number[];
  /** The user's home from /etc/passwd, or "/" when unknown (Docker's default). */
  home: string;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

function parsePasswd(text: string): PasswdEntry[] {
  return text
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.split(':'))
    .filter((f) => f.length >= 7 && /^\d+$/.test(f[2]!) && /^\d+$/.test(f[3]!))
    .map((f) => ({ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), home: f[5]! }));
}

function parseGroup(text: string): GroupEntry[] {
  return text
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.split(':'))
    .filter((f) => f.length >= 4 && /^\d+$/.test(f[2]!))
    .map((f) => ({ name: f[0]!, gid: Number(f[2]), members: f[3]!.split(',').filter(Boolean) }));
}

const maxId = 2 ** 32 - 2;

function numeric(s: string): number | undefined {
  if (!/^\d+$/.test(s)) return undefined;
  const n = Number(s);
  return n <= maxId ? n : undefined;
}

/**
 * Resolves spec ("" means root) against the image's passwd and group files.
 * readFile returns a file of the image's merged rootfs, or undefined when
 * the image has none; it is only called when a name must be looked up.
 */
export async function resolveUser(
  spec: string,
  readFile: (path: string) => Promise<string | undefined>,
): Promise<ResolvedUser> {
  const [userPart = '', groupPart] = spec.split(':', 2) as [string, string | undefined];
  let passwd: PasswdEntry[] | undefined;
  let group: GroupEntry[] | undefined;
  const loadPasswd = async () => (passwd ??= parsePasswd((await readFile('/etc/passwd')) ?? ''));
  const loadGroup = async () => (group ??= parseGroup((await readFile('/etc/group')) ?? ''));

  let uid: number;
  let gid = 0;
  let home = '/';
  let name: string | undefined;
  const uidNumber = userPart === '' ? 0 : numeric(userPart);
  if (uidNumber !== undefined) {
    uid = uidNumber;
    const entry = (await loadPasswd()).find((e) => e.uid === uid);
    if (entry) {
      gid = entry.gid;
      home = entry.home;
      name = entry.name;
    }
  } else {
    const entry = (await loadPasswd()).find((e) => e.name === userPart);
    if (!entry) {
      throw new MinidockError('ERR_BAD_USER', `resolve user ${JSON.stringify(userPart)}: no matching entries in passwd file`, {
        hint: 'give a numeric uid[:gid], or a user the image defines in /etc/passwd',
      });
    }
    uid = entry.uid;
    gid = entry.gid;
    home = entry.home;
    name = entry.name;
  }

  if (groupPart !== undefined) {
    const gidNumber = numeric(groupPart);
    if (gidNumber !== undefined) {
      gid = gidNumber;
    } else {
      const g = (await loadGroup()).find((e) => e.name === groupPart);
      if (!g) {
        throw new MinidockError('ERR_BAD_USER', `resolve group ${JSON.stringify(groupPart)}: no matching entries in group file`);
      }
      gid = g.gid;
    }
  }

  // Supplementary groups come from the group file when the user has a name
  // there; an explicit group replaces the primary group only (Docker's rule).
  const groups =
    name === undefined
      ? []
      : (await loadGroup()).filter((g) => g.members.includes(name) && g.gid !== gid).map((g) => g.gid);
  return { uid, gid, groups: [...new Set(groups)], home: home || '/' };
}
