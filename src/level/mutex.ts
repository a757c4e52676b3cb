// An async mutex: LevelDB has no transactions, so metadata writers take turns.

export class Mutex {
  private tail: Promise<void> = Promise.resolve();
  private held = 0;

  /** Resolves with the release function once every earlier holder has released. */
  acquire(): Promise<() => void> {
    let release!: () => void;
    const next = new Promise<void>((resolve) => (release = resolve));
    const ready = this.tail.then(() => {
      this.held++;
      let done = false;
      return () => {
        if (done) return;
        done = true;
        this.held--;
        release();
      };
    });
    this.tail = this.tail.then(() => next);
    return ready;
  }

  get locked(): boolean {
    return this.held > 0;
  }
}
