// One writer per ref at a time, within this process (as containerd's locks.go). A root folder
// is owned by one process (see src/rootlock.ts), so an in-process map is the whole story.
import { unavailable } from './errors.js';

export class RefLocks {
  private readonly held = new Map<string, Date>();

  /** Takes the lock or throws `unavailable`; returns the release function (idempotent). */
  tryLock(ref: string): () => void {
    const since = this.held.get(ref);
    if (since) {
      const ms = Date.now() - since.getTime();
      throw unavailable(`ref ${ref} locked for ${formatDuration(ms)} (since ${since.toISOString()})`);
    }
    const mine = new Date();
    this.held.set(ref, mine);
    return () => {
      if (this.held.get(ref) === mine) this.held.delete(ref);
    };
  }

  isLocked(ref: string): boolean {
    return this.held.has(ref);
  }
}

function formatDuration(ms: number): string {
  return ms < 1000 ? `${ms}ms` : `${(ms / 1000).toFixed(3)}s`;
}
