// Where registry credentials come from: berth's own configuration first, then a docker
// `config.json` (`auths`, then `credHelpers`/`credsStore` through `docker-credential-<helper>`).
// Every lookup is by the exact registry host, so credentials never go to another host.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { isMissingFile } from '../../store/errors.js';
import type { Credentials, CredentialsFn } from './auth.js';

export interface DockerConfig {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

/** Docker's names for Docker Hub, which credentials files use interchangeably. */
const hubAliases = ['registry-1.docker.io', 'docker.io', 'index.docker.io', 'https://index.docker.io/v1/'];

function keysFor(host: string): string[] {
  return hubAliases.includes(host) ? hubAliases : [host, `https://${host}`, `http://${host}`];
}

export async function readDockerConfig(path = process.env.DOCKER_CONFIG ? join(process.env.DOCKER_CONFIG, 'config.json') : join(homedir(), '.docker', 'config.json')): Promise<DockerConfig> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as DockerConfig;
  } catch (err) {
    if (isMissingFile(err)) return {};
    throw new Error(`cannot read docker config ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** Runs `docker-credential-<helper> get` with the host on stdin (the credential helper protocol). */
function fromHelper(helper: string, host: string): Promise<Credentials | undefined> {
  return new Promise((resolve, reject) => {
    const child = execFile(`docker-credential-${helper}`, ['get'], { timeout: 10_000 }, (err, stdout) => {
      if (err) {
        // "credentials not found" is an answer, not a failure.
        if (/not found/i.test(stdout) || (err as NodeJS.ErrnoException).code === 'ENOENT') return resolve(undefined);
        return reject(new Error(`docker-credential-${helper}: ${err.message}`, { cause: err }));
      }
      try {
        const { Username, Secret } = JSON.parse(stdout) as { Username: string; Secret: string };
        resolve(Secret ? { username: Username === '<token>' ? '' : Username, secret: Secret } : undefined);
      } catch (e) {
        reject(new Error(`docker-credential-${helper}: unreadable answer`, { cause: e }));
      }
    });
    child.stdin?.end(host);
  });
}

/**
 * Credentials for a host: `configured` (berth's config, by host) first, then the docker config.
 */
export function credentialsFrom(configured: Record<string, Credentials>, docker: DockerConfig): CredentialsFn {
  return async (host) => {
    for (const key of keysFor(host)) if (configured[key]) return configured[key];
    for (const key of keysFor(host)) {
      const helper = docker.credHelpers?.[key];
      if (helper) return fromHelper(helper, key);
    }
    for (const key of keysFor(host)) {
      const entry = docker.auths?.[key];
      if (!entry) continue;
      if (entry.identitytoken) return { username: '', secret: entry.identitytoken };
      if (entry.auth) {
        const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
        const i = decoded.indexOf(':');
        if (i > 0) return { username: decoded.slice(0, i), secret: decoded.slice(i + 1) };
      }
      if (entry.username && entry.password) return { username: entry.username, secret: entry.password };
    }
    if (docker.credsStore) return fromHelper(docker.credsStore, keysFor(host)[0]);
    return undefined;
  };
}
