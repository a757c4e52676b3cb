// `berth containers ...`, `berth tasks ...` and `berth run` (as `ctr run`: pull if missing,
// unpack, create the container, start its task, stream its output, exit with its exit code).
import type { Command } from 'commander';
import { ApiError, BerthClient, seg } from '../client/http.js';
import type { Container, ContainerCreate, ContainerList, ExitStatus, PluginList, SnapshotUpdate, Task, TaskKill, TaskList } from '../client/types.js';
import { parseDockerRef } from '../remotes/reference.js';
import { collect, labelPatch } from './args.js';
import { attachProcess } from './exec.js';
import { listVerb } from './list.js';
import { pullImage } from './pulls.js';
import { age, formatLabels, printJson } from './table.js';

/** Options of `berth` itself that take a value. */
const globalValued = new Set(['-a', '--address', '-n', '--namespace', '--lease', '--token-file']);

/** Commands whose process's args follow their operands: the options that take a value, the operands before the args. */
const commandLines: Record<string, { valued: Set<string>; operands: number }> = {
  run: { valued: new Set(['--env', '--cwd', '--user', '--snapshotter', '--label']), operands: 2 },
  exec: { valued: new Set(['--env', '--cwd']), operands: 1 },
};

/**
 * `berth [global options] run [run options] IMAGE ID ARGS...` (and `exec [options] CONTAINER
 * ARGS...`): everything after ID belongs to the container, options included, so a `--` is put
 * before it for commander.
 */
export function separateRunArgs(argv: string[]): string[] {
  let i = 2;
  while (i < argv.length && argv[i].startsWith('-') && argv[i] !== '--') i += globalValued.has(argv[i]) ? 2 : 1;
  const line = commandLines[argv[i]];
  if (!line) return argv;
  let operands = 0;
  for (let j = i + 1; j < argv.length; j++) {
    const a = argv[j];
    if (a === '--') return argv;
    if (a.startsWith('-') && a.length > 1) {
      if (line.valued.has(a)) j++;
      continue;
    }
    if (++operands === line.operands) return [...argv.slice(0, j + 1), '--', ...argv.slice(j + 1)];
  }
  return argv;
}

const notFound = (err: unknown): boolean => err instanceof ApiError && err.code === 'not_found';

/** The stored name of an image: as given, or normalised (`busybox` → `docker.io/library/busybox:latest`). */
async function findImage(c: BerthClient, ref: string): Promise<string | undefined> {
  const names = [ref];
  try {
    const normal = parseDockerRef(ref).toString();
    if (normal !== ref) names.push(normal);
  } catch {
    // not a reference: only the name as given
  }
  for (const name of names) {
    try {
      await c.json('GET', `/v1/images/${seg(name)}`);
      return name;
    } catch (err) {
      if (!notFound(err)) throw err;
    }
  }
  return undefined;
}

/** Copies a task's output stream (followed to its end) to `out`. */
async function pipeLogs(c: BerthClient, id: string, stream: 'stdout' | 'stderr', out: NodeJS.WritableStream): Promise<void> {
  const res = await c.send('GET', `/v1/containers/${seg(id)}/task/logs`, { query: { follow: 'true', stream }, bodyTimeout: 0 });
  for await (const chunk of res.body) {
    if (!out.write(chunk as Buffer)) await new Promise((r) => out.once('drain', r));
  }
}

/** Refuses at once, naming the reason, when the server has no working runtime plugin. */
async function requireRuntime(c: BerthClient): Promise<void> {
  const { items } = await c.json<PluginList>('GET', '/v1/plugins');
  const runtimes = items.filter((p) => p.type === 'io.berth.runtime.v1');
  if (runtimes.some((p) => p.status === 'ok')) return;
  const why = runtimes.map((p) => `${p.type}.${p.id} ${p.status === 'skip' ? 'skipped' : 'failed'}${p.message ? `: ${p.message}` : ''}`).join('; ');
  throw new Error(`cannot run containers: the server has no runtime (${why || 'io.berth.runtime.v1 is not loaded'}; see berth plugins ls)`);
}

/** Runs `work` with Ctrl-C (and SIGTERM) sending SIGTERM to the container's task, twice SIGKILL. */
async function forwardingSignals<T>(c: BerthClient, id: string, work: () => Promise<T>): Promise<T> {
  let signals = 0;
  const forward = () => {
    void c.json('POST', `/v1/containers/${seg(id)}/task/kill`, { json: { signal: ++signals > 1 ? 'SIGKILL' : 'SIGTERM' } satisfies TaskKill }).catch(() => {});
  };
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  try {
    return await work();
  } finally {
    process.off('SIGINT', forward);
    process.off('SIGTERM', forward);
  }
}

/** Starts the task, streams its logs until it exits; answers its exit code. */
async function runDetached(c: BerthClient, id: string): Promise<number> {
  const task = `/v1/containers/${seg(id)}/task`;
  await c.json<Task>('POST', task);
  return forwardingSignals(c, id, async () => {
    await Promise.all([pipeLogs(c, id, 'stdout', process.stdout), pipeLogs(c, id, 'stderr', process.stderr)]);
    return (await c.json<ExitStatus>('GET', `${task}/wait`, { bodyTimeout: 0 })).exitCode;
  });
}

/** Starts the task attached; with a raw terminal Ctrl-C is a key for the container, else it signals the task. */
async function runAttached(c: BerthClient, id: string, flags: { tty: boolean; stdin: boolean }): Promise<number> {
  const attach = () => attachProcess(c, `/v1/containers/${seg(id)}/task/attach`, {}, flags);
  return flags.tty && flags.stdin && process.stdin.isTTY ? attach() : forwardingSignals(c, id, attach);
}

export function registerContainers(program: Command, client: () => BerthClient): void {
  program
    .command('run <image> <id> [args...]')
    .description('run a container: check the server has a runtime, pull the image if missing, unpack it, create the container, start it, stream its output')
    .option('--rm', 'delete the task and the container when it exits')
    .option('--env <K=V>', 'set an environment variable (repeatable); K alone removes it', collect)
    .option('--cwd <dir>', 'working directory in the container (default: the image\'s)')
    .option('--user <user>', 'user to run as: uid, name, uid:gid or name:group (default: the image\'s)')
    .option('--snapshotter <name>', 'snapshotter for the root file system (default: the server\'s)')
    .option('--label <k=v>', 'label the container (repeatable)', collect)
    .option('-t, --tty', 'give the container a terminal (the local one goes raw; its size follows this one)')
    .option('-i, --interactive', 'forward stdin to the container')
    .addHelpText(
      'after',
      '\nEverything after ID goes to the container untouched, options included:' +
        '\n  berth run --rm IMAGE ID sh -c \'exit 7\'   runs sh -c \'exit 7\' and exits with 7.' +
        '\n  berth run -t -i --rm IMAGE ID sh         an interactive shell.' +
        '\nWithout ARGS the image\'s Cmd runs. Ctrl-C sends SIGTERM to the container (twice: SIGKILL);' +
        '\nwith -t -i on a terminal it is a key typed into the container\'s terminal.',
    )
    .action(
      async (
        image: string,
        id: string,
        args: string[],
        opts: { rm?: boolean; env?: string[]; cwd?: string; user?: string; snapshotter?: string; label?: string[]; tty?: boolean; interactive?: boolean },
      ) => {
        const c = client();
        // Nothing is pulled or unpacked for a container that cannot run.
        await requireRuntime(c);
        let name = await findImage(c, image);
        if (!name) {
          const pulled = await pullImage(c, image, { snapshotter: opts.snapshotter });
          if (!pulled) return; // interrupted: exit code set
          name = pulled.image!;
        }
        await c.json<Container>('POST', '/v1/containers', {
          json: {
            id,
            image: name,
            args: args.length ? args : undefined,
            env: opts.env,
            cwd: opts.cwd || undefined,
            user: opts.user || undefined,
            snapshotter: opts.snapshotter || undefined,
            tty: opts.tty || undefined,
            labels: opts.label ? Object.fromEntries(opts.label.map((l) => [l.split('=')[0], l.slice(l.indexOf('=') + 1)])) : undefined,
          } satisfies ContainerCreate,
        });
        const task = `/v1/containers/${seg(id)}/task`;
        let exitCode: number;
        try {
          // -t/-i: started attached, its terminal (or stdin) on this process from its first byte.
          exitCode =
            opts.tty || opts.interactive ? await runAttached(c, id, { tty: opts.tty === true, stdin: opts.interactive === true }) : await runDetached(c, id);
        } finally {
          if (opts.rm) {
            await c.json('DELETE', task).catch((err) => {
              if (!notFound(err)) throw err;
            });
            await c.json('DELETE', `/v1/containers/${seg(id)}`);
          }
        }
        process.exitCode = exitCode;
      },
    );

  const containers = program.command('containers').alias('container').description('manage containers (metadata: image, spec, root file system)');

  listVerb(containers.command('ls').alias('list').description('list containers'), {
    fetch: (filter) => client().json<ContainerList>('GET', '/v1/containers', { query: { filter } }),
    filterHelp: 'containerd filter on id, image, runtime.name, snapshotter, labels.<key> (repeat for OR)',
    quiet: { help: 'print only ids', key: (x) => x.id },
    columns: ['CONTAINER', 'IMAGE', 'RUNTIME', 'CREATED'],
    row: (x) => [x.id, x.image, x.runtime.name, age(x.createdAt)],
  });

  containers
    .command('info <id>')
    .description('show a container, with its OCI spec, as JSON')
    .action(async (id: string) => printJson(await client().json<Container>('GET', `/v1/containers/${seg(id)}`)));

  containers
    .command('rm <id...>')
    .alias('remove')
    .description('delete containers and their snapshots (a container with a task: delete the task first)')
    .option('--keep-snapshot', 'keep the container\'s snapshot (labelled containerd.io/gc.root, so the GC leaves it)')
    .action(async (ids: string[], opts: { keepSnapshot?: boolean }) => {
      for (const id of ids) {
        await client().json('DELETE', `/v1/containers/${seg(id)}`, { query: { keepSnapshot: opts.keepSnapshot ? 'true' : undefined } });
        process.stdout.write(id + '\n');
      }
    });

  containers
    .command('label <id> [labels...]')
    .description('set (k=v) or remove (k=) labels of a container')
    .option('--replace', 'replace all labels with the ones given')
    .action(async (id: string, labels: string[], opts: { replace?: boolean }) => {
      const c = await client().json<Container>('PATCH', `/v1/containers/${seg(id)}`, { json: labelPatch(labels, opts.replace) satisfies SnapshotUpdate });
      process.stdout.write(`${c.id} ${formatLabels(c.labels)}\n`);
    });

  const tasks = program.command('tasks').alias('task').description('manage tasks (the processes of containers)');

  listVerb(tasks.command('ls').alias('list').description('list tasks'), {
    fetch: () => client().json<TaskList>('GET', '/v1/tasks'),
    columns: ['TASK', 'PID', 'STATUS'],
    row: (t) => [t.id, String(t.pid), t.status === 'stopped' ? `stopped (exit ${t.exitCode})` : t.status.toUpperCase()],
  });

  tasks
    .command('kill <id>')
    .description('signal a task\'s process')
    .option('-s, --signal <signal>', 'signal name or number', 'SIGTERM')
    .option('-a, --all', 'signal every process of the container')
    .action(async (id: string, opts: { signal: string; all?: boolean }) => {
      const signal = /^\d+$/.test(opts.signal) ? Number(opts.signal) : opts.signal;
      await client().json('POST', `/v1/containers/${seg(id)}/task/kill`, { json: { signal, all: opts.all || undefined } satisfies TaskKill });
    });

  tasks
    .command('rm <id...>')
    .alias('delete')
    .description('delete stopped tasks (their root file systems are unmounted)')
    .action(async (ids: string[]) => {
      for (const id of ids) {
        const exit = await client().json<ExitStatus>('DELETE', `/v1/containers/${seg(id)}/task`);
        process.stdout.write(`${id}: exit ${exit.exitCode}\n`);
      }
    });

  tasks
    .command('wait <id>')
    .description('wait for a task to exit; exits with its exit code')
    .action(async (id: string) => {
      const exit = await client().json<ExitStatus>('GET', `/v1/containers/${seg(id)}/task/wait`, { bodyTimeout: 0 });
      process.stdout.write(`${exit.exitCode}\n`);
      process.exitCode = exit.exitCode;
    });

  tasks
    .command('logs <id>')
    .description('print a task\'s output')
    .option('-f, --follow', 'go on printing until the task exits')
    .option('--stderr', 'print its stderr instead of its stdout')
    .action(async (id: string, opts: { follow?: boolean; stderr?: boolean }) => {
      const stream = opts.stderr ? 'stderr' : 'stdout';
      const res = await client().send('GET', `/v1/containers/${seg(id)}/task/logs`, {
        query: { stream, ...(opts.follow ? { follow: 'true' } : {}) },
        bodyTimeout: 0,
      });
      for await (const chunk of res.body) process.stdout.write(chunk as Buffer);
    });
}
