// A transfer (a pull or a push) that `berth pull` / `berth push` follows to its end: progress
// finished in every case, Ctrl-C or SIGTERM cancelling it on the server (exit code 130), the
// final state printed as JSON with --json, and a transfer that did not end done thrown.
import { printJson } from './table.js';

export interface Transfer {
  id: string;
  state: string;
  error?: { message: string };
}

export interface FollowTransferOptions<T extends Transfer> {
  /** `pull` or `push`, for the error of one that did not end done. */
  kind: string;
  /** Follows the transfer until it ends (aborted by `signal` on Ctrl-C); its final state. */
  follow: (signal: AbortSignal) => Promise<T>;
  /** Cancels the transfer on the server; its final state. */
  cancel: () => Promise<T>;
  progress?: { finish(final?: T): void };
  /** Print the final state as JSON. */
  json?: boolean;
  /** Said on stderr (without --json) when an interrupt cancelled the transfer. */
  cancelledNote: string;
}

/** The transfer's final state when done; undefined when interrupted; throws when it failed. */
export async function followTransfer<T extends Transfer>(opts: FollowTransferOptions<T>): Promise<T | undefined> {
  const abort = new AbortController();
  const interrupt = () => abort.abort();
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  let final: T;
  try {
    final = await opts.follow(abort.signal);
  } catch (err) {
    if (!abort.signal.aborted) {
      opts.progress?.finish();
      throw err;
    }
    // Interrupted: cancel it on the server (what it moved so far stays, for the next try).
    final = await opts.cancel();
    opts.progress?.finish(final);
    if (opts.json) printJson(final);
    else process.stderr.write(`${opts.cancelledNote}\n`);
    process.exitCode = 130;
    return undefined;
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
  }
  opts.progress?.finish(final);
  if (opts.json) printJson(final);
  if (final.state !== 'done') throw new Error(final.error?.message ?? `${opts.kind} ${final.id} ${final.state}`);
  return final;
}
