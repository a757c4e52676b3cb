// chainIDs (image-spec identity.ChainIDs): the name of the snapshot that holds layers 0..n
// applied in order. chain[0] = diffID[0]; chain[n] = sha256(chain[n-1] + " " + diffID[n]).
import { createHash } from 'node:crypto';

export function chainIds(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  for (const diffId of diffIds) {
    const prev = out[out.length - 1];
    out.push(prev === undefined ? diffId : `sha256:${createHash('sha256').update(`${prev} ${diffId}`).digest('hex')}`);
  }
  return out;
}

/** The chainID of the whole stack ("" for none). */
export const chainId = (diffIds: readonly string[]): string => chainIds(diffIds).at(-1) ?? '';
