// `berth config default` and `berth config check FILE`: the configuration file, from the table of
// settings the server checks files against (src/settings.ts).
import type { Command } from 'commander';
import { loadConfig } from '../config.js';
import { renderDefaultConfig } from '../settings.js';

export function registerConfig(program: Command): void {
  const config = program.command('config').description('the server\'s configuration file: every key with its default; check a file');
  config
    .command('default')
    .description('print a configuration file with every key, its default and what it does (contrib/berth.toml)')
    .action(() => {
      process.stdout.write(renderDefaultConfig());
    });
  config
    .command('check <file>')
    .description('check a configuration file as `berth serve --config FILE` would: name the wrong key or value and exit 1, else print "FILE: ok"')
    .addHelpText(
      'after',
      '\nChecks every key and the kind and range of every value, and that the plugins it names exist.\n' +
        'What only the running server can know (a hosts_dir that exists, a snapshotter that loads) is\n' +
        'checked when `berth serve` starts.',
    )
    .action(async (file: string) => {
      const cfg = await loadConfig(file);
      // The server's own check of plugin names (PluginSet.init); loaded here, not at the top: ~0.5 s.
      const { pluginsFor } = await import('../plugins/index.js');
      const known = new Set(pluginsFor(cfg).map((r) => `${r.type}.${r.id}`));
      for (const [what, names] of [['plugins', Object.keys(cfg.plugins)], ['required_plugins', cfg.requiredPlugins]] as const) {
        for (const name of names) {
          if (!known.has(name)) throw new Error(`config ${file}: ${what} names unknown plugin ${name} (known: ${[...known].join(', ')})`);
        }
      }
      process.stdout.write(`${file}: ok\n`);
    });
}
