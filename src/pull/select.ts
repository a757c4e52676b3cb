// Choosing the manifests a pull follows from an index (containerd's LimitManifests +
// FilterPlatforms).
import { notFound } from '../../store/errors.js';
import type { PlatformLike, PlatformMatcher } from '../oci/platforms/types.js';

export interface SelectOptions {
  /**
   * Throw not_found when no child is left. containerd's LimitManifests does so only with a
   * limit (a pull); with limit 0 (a fetch) an index with no match yields no children.
   * Default: `limit > 0`.
   */
  requireMatch?: boolean;
  /** The index's digest, named in the not_found message. */
  index?: string;
}

/**
 * The children of an index that a pull follows (containerd's FilterPlatforms + LimitManifests):
 * children with a platform that `matcher` refuses are dropped (those without one are kept),
 * the rest stable-sorted by preference with platform-less children last, and the first `limit`
 * kept (0 = all). None left → not_found `no match for platform in manifest`.
 */
export function selectManifests<T extends { platform?: PlatformLike }>(
  children: readonly T[],
  matcher: PlatformMatcher,
  limit: number,
  opts: SelectOptions = {},
): T[] {
  const kept = children.filter((c) => !c.platform || matcher.match(c.platform));
  // Array.prototype.sort is stable, as sort.SliceStable.
  kept.sort((a, b) => {
    if (!a.platform) return b.platform ? 1 : 0;
    if (!b.platform) return -1;
    if (matcher.less(a.platform, b.platform)) return -1;
    if (matcher.less(b.platform, a.platform)) return 1;
    return 0;
  });
  if (kept.length === 0 && (opts.requireMatch ?? limit > 0)) {
    throw notFound(`no match for platform in manifest${opts.index ? ` ${opts.index}` : ''}`);
  }
  return limit > 0 ? kept.slice(0, limit) : kept;
}
