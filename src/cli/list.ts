// The list verbs (`content ls`, `images ls`, `tasks ls`, ...): one implementation of their
// options — `--filter F...` (repeat for OR), `-q` and `--json`, each where the verb has it — and
// of their output: a table for people, one key per line with -q, the items as JSON for scripts.
import type { Command } from 'commander';
import { collect } from './args.js';
import { printJson, printTable } from './table.js';

export interface ListVerb<T> {
  /** The items, from the server (`filter` as given on the command line). Given first, as T is inferred from it. */
  fetch: (filter: string[] | undefined, cmd: Command) => Promise<{ items: T[] }>;
  /** The help of `--filter`: what it filters on. None: the verb takes no filter. */
  filterHelp?: string;
  /** `-q`: its help and what it prints of each item. None: the verb has no -q. */
  quiet?: { help: string; key: (item: T) => string };
  columns: string[];
  row: (item: T) => string[];
}

/** Gives `cmd` the list options the verb has and the action that lists. */
export function listVerb<T>(cmd: Command, verb: ListVerb<T>): Command {
  if (verb.filterHelp) cmd.option('--filter <expr>', verb.filterHelp, collect);
  if (verb.quiet) cmd.option('-q, --quiet', verb.quiet.help);
  return cmd
    .option('--json', 'print JSON')
    .action(async (opts: { filter?: string[]; quiet?: boolean; json?: boolean }, self: Command) => {
      const { items } = await verb.fetch(opts.filter, self);
      const { quiet } = verb;
      if (opts.json) return printJson(items);
      if (opts.quiet && quiet) return items.forEach((item) => process.stdout.write(quiet.key(item) + '\n'));
      printTable(verb.columns, items.map(verb.row));
    });
}
