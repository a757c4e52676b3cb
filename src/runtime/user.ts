// The user a container process runs as, resolved as containerd's WithUser / WithAdditionalGIDs
// do: from the USER string of an image (or a caller's override) and the /etc/passwd and
// /etc/group files of the container's own root file system — never the host's.
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { resolve } from 'node:path';

import { invalidArgument, isMissingFile } from '../../store/errors.js';
import { rootPath, TooManyLinksError } from '../unpack/root-path.js';

export interface ResolvedUser {
  uid: number;
  gid: number;
  /** Supplementary groups, the primary gid first (as the runtime spec's additionalGids). */
  additionalGids: number[];
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
}

interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

/** Ids a USER string may name: 0 … 2^31−1 (containerd's range check). */
const maxId = 2 ** 31 - 1;

/** Go's strconv.Atoi accepts an optional sign and leading zeros. */
const numeric = /^[+-]?\d+$/;

// moby/sys/user: one entry per non-empty line, fields split on ':', missing fields empty.
function parseLines(text: string | undefined): string[][] {
  if (text === undefined) return [];
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .map((line) => line.split(':'));
}

const toId = (field: string | undefined): number => (field && numeric.test(field) ? Number(field) : 0);

/**
 * The text of the file at `path` inside `rootfs`, undefined when missing. Symlinks on the way
 * resolve inside the rootfs (unpack's rootPath, containerd's fs.RootPath), so an image's
 * /etc/passwd → /../../etc/passwd reads the image's file, never the host's; the last component is
 * opened with O_NOFOLLOW, so a symlink swapped in after resolution is refused, not followed.
 */
async function readFileInRoot(rootfs: string, path: string): Promise<string | undefined> {
  let file;
  try {
    file = await open(rootPath(resolve(rootfs), path), constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    if (err instanceof TooManyLinksError) throw invalidArgument(`too many levels of symbolic links resolving ${path} in ${rootfs}`, err);
    if (isMissingFile(err) || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw err;
  }
  try {
    return await file.readFile('utf8');
  } finally {
    await file.close();
  }
}

async function readPasswd(rootfs: string): Promise<PasswdEntry[] | undefined> {
  const text = await readFileInRoot(rootfs, '/etc/passwd');
  if (text === undefined) return undefined;
  return parseLines(text).map((f) => ({ name: f[0], uid: toId(f[2]), gid: toId(f[3]) }));
}

async function readGroup(rootfs: string): Promise<GroupEntry[] | undefined> {
  const text = await readFileInRoot(rootfs, '/etc/group');
  if (text === undefined) return undefined;
  return parseLines(text).map((f) => ({
    name: f[0],
    gid: toId(f[2]),
    members: (f[3] ?? '').split(',').filter((m) => m !== ''),
  }));
}

function parseId(value: string, user: string, what: 'uid' | 'gid'): number {
  const n = Number(value);
  if (n < 0 || n > maxId) throw invalidArgument(`invalid USER value ${JSON.stringify(user)}: ${what} out of range`);
  return n;
}

async function userByName(rootfs: string, name: string): Promise<PasswdEntry> {
  const entry = (await readPasswd(rootfs))?.find((u) => u.name === name);
  if (!entry) throw invalidArgument(`no users found: user ${JSON.stringify(name)} is not in /etc/passwd of ${rootfs}`);
  return entry;
}

async function gidByName(rootfs: string, name: string): Promise<number> {
  const entry = (await readGroup(rootfs))?.find((g) => g.name === name);
  if (!entry) throw invalidArgument(`no groups found: group ${JSON.stringify(name)} is not in /etc/group of ${rootfs}`);
  return entry.gid;
}

/** WithUser: `uid`, `name`, `uid:gid`, `name:group` and the mixed forms. */
async function resolveIds(rootfs: string, user: string): Promise<{ uid: number; gid: number }> {
  const parts = user.split(':');
  if (parts.length > 2) throw invalidArgument(`invalid USER value ${user}`);
  if (parts.length === 1) {
    if (!numeric.test(user)) {
      const entry = await userByName(rootfs, user);
      return { uid: entry.uid, gid: entry.gid };
    }
    // A numeric uid runs even when the image does not know it: gid 0 then.
    const uid = parseId(user, user, 'uid');
    const entry = (await readPasswd(rootfs))?.find((u) => u.uid === uid);
    return entry ? { uid: entry.uid, gid: entry.gid } : { uid, gid: 0 };
  }
  const [userPart, groupPart] = parts;
  const uid = numeric.test(userPart) ? parseId(userPart, user, 'uid') : (await userByName(rootfs, userPart)).uid;
  const gid = numeric.test(groupPart) ? parseId(groupPart, user, 'gid') : await gidByName(rootfs, groupPart);
  return { uid, gid };
}

/**
 * WithAdditionalGIDs: the groups of /etc/group that list the user as a member, except a group
 * named like the user. A uid is first named through /etc/passwd; none when the files are
 * missing or the uid has no passwd entry.
 */
async function supplementaryGids(rootfs: string, user: { uid: number } | { name: string }): Promise<number[]> {
  const name = 'name' in user ? user.name : (await readPasswd(rootfs))?.find((u) => u.uid === user.uid)?.name;
  if (name === undefined) return [];
  const groups = (await readGroup(rootfs)) ?? [];
  return groups.filter((g) => g.name !== name && g.members.includes(name)).map((g) => g.gid);
}

/**
 * USER string + root file system → uid, gid and supplementary gids (primary gid first). An empty
 * USER is root (0:0) with root's supplementary groups, as WithImageConfig does for an image
 * without USER.
 */
export async function resolveUser(rootfs: string, user: string): Promise<ResolvedUser> {
  const { uid, gid } = user === '' ? { uid: 0, gid: 0 } : await resolveIds(rootfs, user);
  const extra = await supplementaryGids(rootfs, user === '' ? { name: 'root' } : { uid });
  return { uid, gid, additionalGids: extra.includes(gid) ? extra : [gid, ...extra] };
}
