// The `berth` command line, in the spirit of containerd's `ctr`.
import { Command, Option } from 'commander';
import { ApiError, BerthClient } from '../client/http.js';
import { defaultAddress, readTokenFile } from '../config.js';
import { buildInfo } from '../version.js';
import { registerContainers, separateRunArgs } from './containers.js';
import { registerExec } from './exec.js';
import { registerConfig } from './config.js';
import { registerContent } from './content.js';
import { registerEvents } from './events.js';
import { registerFleet } from './fleet.js';
import { registerGc } from './gc.js';
import { registerImages } from './images.js';
import { registerLeases } from './leases.js';
import { registerNamespaces } from './namespaces.js';
import { registerPlugins } from './plugins.js';
import { registerPulls } from './pulls.js';
import { registerPush } from './push.js';
import { registerRegistry } from './registry.js';
import { registerServe } from './serve.js';
import { registerSnapshots } from './snapshots.js';

export async function main(argv: string[]): Promise<void> {
  // `berth … | head`: when the reader goes away, stop at once and quietly (as a C tool killed by
  // SIGPIPE does, but exiting 0 rather than 141) — not with an unhandled EPIPE stack.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
  const program = new Command('berth')
    .description('a content store and registry puller modelled on containerd')
    .option('-a, --address <addr>', `server address: HOST:PORT or unix:///path (env BERTH_ADDRESS, default ${defaultAddress})`)
    .addOption(
      new Option('-n, --namespace <ns>', 'namespace to work in (sent as the Berth-Namespace header)')
        .env('BERTH_NAMESPACE')
        .default('default'),
    )
    .option('--lease <id>', 'make what the command writes (content, images with gc.expire) a resource of this lease')
    .option('--token-file <file>', "the server's API token (its auth_token_file), sent as Authorization: Bearer (env BERTH_TOKEN: the token itself)")
    .version(`berth ${buildInfo().version} (commit ${buildInfo().commit})`, '-V, --version', 'print the version and the commit it was built from')
    .showHelpAfterError()
    .configureOutput({ outputError: (str, write) => write(str) });

  let client: BerthClient | undefined;
  // --token-file wins over BERTH_TOKEN; read before any command runs (getClient is synchronous).
  let token = process.env.BERTH_TOKEN?.trim() || undefined;
  program.hook('preAction', async () => {
    const file = program.opts<{ tokenFile?: string }>().tokenFile;
    if (file) token = await readTokenFile(file, '--token-file');
    else if (token !== undefined && !/^[\x21-\x7e]+$/.test(token)) throw new Error('BERTH_TOKEN: the token must be one word of printable ASCII characters');
  });
  const getClient = () => {
    const opts = program.opts<{ address?: string; namespace?: string; lease?: string }>();
    return (client ??= new BerthClient(opts.address || undefined, { namespace: opts.namespace, lease: opts.lease, token }));
  };

  registerServe(program);
  registerConfig(program);
  registerPlugins(program, getClient);
  registerContent(program, getClient);
  registerNamespaces(program, getClient);
  registerPulls(program, getClient);
  registerPush(program, getClient);
  registerImages(program, getClient);
  registerLeases(program, getClient);
  registerSnapshots(program, getClient);
  registerContainers(program, getClient);
  registerExec(program, getClient);
  registerGc(program, getClient);
  registerEvents(program, getClient);
  registerRegistry(program, getClient);
  registerFleet(program, getClient);

  try {
    await program.parseAsync(separateRunArgs(argv));
  } catch (err) {
    const hint = err instanceof ApiError && err.status === 401 ? ` (the CLI sends the token in BERTH_TOKEN or from --token-file)` : '';
    process.stderr.write(`berth: ${(err as Error).message}${hint}\n`);
    process.exitCode = err instanceof ApiError && err.status === 0 ? 2 : 1;
  } finally {
    await client?.close();
  }
}
