// Worker entry when berth runs from TypeScript sources (tsx): Node's Worker cannot start a .ts
// file itself, so this registers tsx in the worker and then loads the real entry.
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
