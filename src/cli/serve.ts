// `berth serve`: runs the server until SIGINT or SIGTERM.
import type { Command } from 'commander';
import { loadConfig } from '../config.js';

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the berth server (content store and HTTP API)')
    .option('--root <dir>', 'persistent data folder (default /var/lib/berth as root, else ~/.local/share/berth)')
    .option('--state <dir>', 'runtime state folder (default /run/berth as root)')
    .option('--config <file>', 'TOML configuration file (every key and its default: berth config default; check one: berth config check FILE)')
    .option('--log-level <level>', 'fatal, error, warn, info, debug or trace')
    .option('--registry-address <host:port>', "serve the store as an OCI registry (pull API only) on this address; see `berth registry`")
    .option('--auth-token-file <file>', 'require Authorization: Bearer <the token in FILE> on every request but GET /healthz (auth_token_file)')
    .option('--insecure-listen', 'allow an address that is neither loopback nor a unix socket without a token (insecure_listen)')
    .addHelpText(
      'after',
      '\nListens on --address (HOST:PORT or unix:///path; default 127.0.0.1:7420, loopback only).\n' +
        'Any other address than loopback or a unix socket needs a token (--auth-token-file): without one berth\n' +
        'refuses to start, unless --insecure-listen says so deliberately. A unix socket is mode 0660, its group\n' +
        'socket_group (configuration file) when set. Clients send the token with BERTH_TOKEN or --token-file.\n' +
        'With --registry-address, also serves the OCI distribution pull API there (and nothing else).\n' +
        'With OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) in the environment, sends its spans\n' +
        'over OTLP/HTTP (service.name berth; the other OTEL_* variables as README "Traces" lists them).',
    )
    .action(async (_opts: unknown, cmd: Command) => {
      // --address is the program's global option (clients use it too), hence optsWithGlobals.
      const opts = cmd.optsWithGlobals<{
        root?: string;
        state?: string;
        address?: string;
        config?: string;
        logLevel?: string;
        registryAddress?: string;
        authTokenFile?: string;
        insecureListen?: boolean;
      }>();
      const config = await loadConfig(opts.config, {
        root: opts.root,
        state: opts.state,
        address: opts.address,
        logLevel: opts.logLevel,
        authTokenFile: opts.authTokenFile,
        insecureListen: opts.insecureListen,
      });
      if (opts.registryAddress) {
        const key = 'io.berth.service.v1.registry';
        config.plugins = { ...config.plugins, [key]: { ...config.plugins[key], address: opts.registryAddress } };
      }
      // Loaded here, not at the top: the client commands need none of the server (~0.5 s to load).
      const { startServer } = await import('../server.js');
      const server = await startServer(config);
      const { buildInfo } = await import('../version.js');
      server.app.log.info({ root: config.root, url: server.url, ...buildInfo() }, 'berth serving');
      const stop = async (signal: string) => {
        server.app.log.info({ signal }, 'shutting down');
        await server.close();
        process.exit(0);
      };
      process.once('SIGINT', () => void stop('SIGINT'));
      process.once('SIGTERM', () => void stop('SIGTERM'));
    });
}
