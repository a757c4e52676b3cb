// containerd's distribution source labels (`containerd.io/distribution.source.<registry>` =
// comma-separated repositories): where a blob is known to be, per registry. The pull writes them;
// a push reads them to mount a blob from another repository of the same registry instead of
// uploading it, and adds the repository it pushed to (containerd's appendDistributionSourceLabel).
import type { Labels } from '../../store/types.js';

export const sourceLabel = (domain: string): string => `containerd.io/distribution.source.${domain}`;

/** The repositories of `domain` the labels say hold the blob. */
export function sourceRepositories(labels: Labels, domain: string): string[] {
  return (labels[sourceLabel(domain)] ?? '').split(',').filter(Boolean);
}

/** The label with `repository` added, or undefined when it names it already. */
export function withSource(labels: Labels, domain: string, repository: string): Labels | undefined {
  const repos = sourceRepositories(labels, domain);
  if (repos.includes(repository)) return undefined;
  return { [sourceLabel(domain)]: [...repos, repository].join(',') };
}
