// The `berth` command line, in the spirit of containerd's `ctr`.
import { Command } from 'commander';
import { defaultAddress } from '../config.js';
import { ApiError, BerthClient } from './client.js';
import { registerContent } from './content.js';
import { registerPlugins } from './plugins.js';
import { registerServe } from './serve.js';

export async function main(argv: string[]): Promise<void> {
  const program = new Command('berth')
    .description('a content store and registry puller modelled on containerd')
    .option('-a, --address <addr>', `server address: HOST:PORT or unix:///path (env BERTH_ADDRESS, default ${defaultAddress})`)
    .showHelpAfterError()
    .configureOutput({ outputError: (str, write) => write(str) });

  let client: BerthClient | undefined;
  const getClient = () => (client ??= new BerthClient(program.opts<{ address?: string }>().address || undefined));

  registerServe(program);
  registerPlugins(program, getClient);
  registerContent(program, getClient);

  try {
    await program.parseAsync(argv);
  } catch (err) {
    process.stderr.write(`berth: ${(err as Error).message}\n`);
    process.exitCode = err instanceof ApiError && err.status === 0 ? 2 : 1;
  } finally {
    await client?.close();
  }
}
