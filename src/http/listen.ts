// Where the management API may listen, and how: without a token only on loopback or a unix
// socket (anything else needs `insecure_listen`, said deliberately); a unix socket is mode 0660,
// group `socket_group` when set (containerd's `[grpc] gid`), and is never connectable with
// other permissions, not even for an instant.
import type { FastifyInstance } from 'fastify';
import { execFile } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { chmod, chown, lstat, mkdtemp, readFile, rename, rm, rmdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { invalidArgument } from '../../store/errors.js';
import type { ListenAddress } from '../config.js';

/** 127.0.0.0/8, ::1 and IPv4-mapped 127.0.0.0/8. */
function loopbackIp(ip: string): boolean {
  if (isIP(ip) === 4) return ip.startsWith('127.');
  if (isIP(ip) !== 6) return false;
  let canonical: string;
  try {
    canonical = new URL(`http://[${ip}]`).hostname; // [::1], [::ffff:7f00:1]
  } catch {
    return false; // with a zone (fe80::1%eth0): a link, not the loopback
  }
  return canonical === '[::1]' || /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(canonical);
}

/** Whether every address `host` stands for is a loopback one (a name is resolved). */
export async function isLoopback(host: string): Promise<boolean> {
  if (isIP(host)) return loopbackIp(host);
  let addresses: { address: string }[];
  try {
    addresses = await lookup(host, { all: true });
  } catch (err) {
    throw invalidArgument(`address ${host}: cannot resolve it: ${(err as Error).message}`, err);
  }
  return addresses.length > 0 && addresses.every((a) => loopbackIp(a.address));
}

/**
 * Refuses an address anyone on the network may reach when the API has no token, unless
 * `insecure_listen` allows it; the message names both settings. True when it is allowed so.
 */
export async function checkListenAddress(
  address: ListenAddress,
  shown: string,
  opts: { token: boolean; insecure: boolean },
): Promise<boolean> {
  if (address.kind === 'unix' || opts.token) return false;
  if (await isLoopback(address.host)) return false;
  if (opts.insecure) return true;
  throw invalidArgument(
    `refusing to serve the management API on ${shown} without a token: it is not a loopback address, so anyone ` +
      'who reaches it could delete images and run containers. Set auth_token_file (berth serve --auth-token-file FILE) ' +
      'to require a token, or insecure_listen = true (berth serve --insecure-listen) to allow it deliberately',
  );
}

const execFileP = promisify(execFile);

/** A group's id: a number as it is; a name from /etc/group, else through NSS (`getent group`). */
export async function groupId(group: string): Promise<number> {
  if (/^\d+$/.test(group)) return Number(group);
  const etc = await readFile('/etc/group', 'utf8').catch(() => '');
  for (const line of etc.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  try {
    const { stdout } = await execFileP('getent', ['group', group]);
    const gid = stdout.split(':')[2];
    if (gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  } catch {
    // no getent, or no such group
  }
  throw invalidArgument(`socket_group ${JSON.stringify(group)}: no such group`);
}

/** A socket file left by a process that no longer holds the root; anything else there is an error. */
async function removeStaleSocket(path: string): Promise<void> {
  const found = await lstat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (found === undefined) return;
  if (!found.isSocket()) throw invalidArgument(`address unix://${path}: ${path} exists and is not a socket`);
  await rm(path);
}

/**
 * Listens on the unix socket `path`, mode 0660 and group `group` when given. The socket is made
 * in a private folder (0700) beside `path`, given its mode and group there, and renamed into
 * place: nobody can connect to it before it has them. Returns what removes it at close (the
 * listener unlinks only the name it was made under).
 */
export async function listenUnix(app: FastifyInstance, path: string, group: string | undefined): Promise<() => Promise<void>> {
  const gid = group === undefined ? undefined : await groupId(group);
  await removeStaleSocket(path);
  const dir = await mkdtemp(join(dirname(path), `.${basename(path).slice(0, 8)}-`));
  try {
    const made = join(dir, 's');
    await app.listen({ path: made });
    if (gid !== undefined) {
      try {
        await chown(made, -1, gid);
      } catch (err) {
        throw invalidArgument(`socket_group ${JSON.stringify(group)}: cannot give ${path} to group ${gid}: ${(err as Error).message}`, err);
      }
    }
    await chmod(made, 0o660);
    await rename(made, path);
  } finally {
    await rmdir(dir).catch(() => rm(dir, { recursive: true, force: true }));
  }
  const { ino } = await lstat(path);
  return async () => {
    // Only the socket this server made: another may have taken the path since.
    const now = await lstat(path).catch(() => undefined);
    if (now?.isSocket() && now.ino === ino) await rm(path, { force: true });
  };
}
