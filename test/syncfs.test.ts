// syncfs(2) through libc (src/unpack/syncfs.ts): the unpack's durability flush is one system call
// on the snapshots' file system, made by the server itself, never a spawned `sync` process.
// Checked with strace (Debian `strace`) on a real folder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { syncFileSystem, syncFileSystemSync } from '../src/unpack/syncfs.js';
import { tempDir } from './fixtures/helpers.js';

const projectRoot = join(import.meta.dirname, '..');

test('each call is one syncfs(2) on a descriptor of the folder, in this process, with no child process', async (t) => {
  const dir = await tempDir(t, 'berth-syncfs-');
  writeFileSync(join(dir, 'dirty'), Buffer.alloc(1 << 20, 1));
  const script = join(dir, 'calls.mjs');
  const module = pathToFileURL(join(projectRoot, 'src/unpack/syncfs.ts')).href;
  writeFileSync(
    script,
    `const { syncFileSystem, syncFileSystemSync } = await import(${JSON.stringify(module)});
     syncFileSystemSync(process.argv[2]);
     await syncFileSystem(process.argv[2]);
     process.stdout.write('synced\\n');`,
  );
  const trace = join(dir, 'strace.out');
  const out = await new Promise<string>((resolve, reject) =>
    execFile(
      'strace',
      ['-f', '-qq', '-e', 'trace=syncfs,execve', '-o', trace, process.execPath, '--import', 'tsx', script, dir],
      { cwd: projectRoot },
      (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)),
    ),
  );
  assert.equal(out, 'synced\n');
  const lines = readFileSync(trace, 'utf8').split('\n').filter(Boolean);
  const syncs = lines.filter((l) => /\bsyncfs\(/.test(l));
  assert.equal(syncs.length, 2, `two calls, one each:\n${lines.join('\n')}`);
  for (const l of syncs) assert.match(l, /syncfs\(\d+\)\s+= 0/, l);
  const execs = lines.filter((l) => /\bexecve\(/.test(l));
  assert.equal(execs.length, 1, `only node itself is executed, no \`sync\`:\n${execs.join('\n')}`);
});

test('a path that cannot be opened is an error naming it, from either call', async (t) => {
  const missing = join(await tempDir(t, 'berth-syncfs-'), 'missing');
  assert.throws(() => syncFileSystemSync(missing), (err: Error) => err.message.includes(missing));
  await assert.rejects(syncFileSystem(missing), (err: Error) => err.message.includes(missing));
});
