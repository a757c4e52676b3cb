// Platforms in both spellings (TS and the OCI JSON keys) and the matcher interface (containerd's
// platforms package, reference §7.9).
/** An OCI platform in TS spelling (the JSON keys `os.version` and `os.features` are osVersion/osFeatures). */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
  osVersion?: string;
  osFeatures?: string[];
}

/** A platform as image indexes and manifests write it (OCI image-spec JSON). */
export interface OciPlatform {
  os: string;
  architecture: string;
  variant?: string;
  'os.version'?: string;
  'os.features'?: string[];
}

/** Either spelling; the functions here read both. */
export type PlatformLike = Platform | OciPlatform;

export interface PlatformMatcher {
  /** True when `p` is acceptable. */
  match(p: PlatformLike): boolean;
  /** True when `a` is preferred to `b` (a sort's less-than). */
  less(a: PlatformLike, b: PlatformLike): boolean;
}

/** Reads either spelling into a Platform (no normalisation). */
export function toPlatform(p: PlatformLike): Platform {
  const oci = p as OciPlatform;
  const ts = p as Platform;
  const out: Platform = { os: p.os ?? '', architecture: p.architecture ?? '' };
  if (p.variant) out.variant = p.variant;
  const osVersion = ts.osVersion ?? oci['os.version'];
  if (osVersion) out.osVersion = osVersion;
  const osFeatures = ts.osFeatures ?? oci['os.features'];
  if (osFeatures && osFeatures.length > 0) out.osFeatures = [...osFeatures];
  return out;
}

/** The OCI JSON form of a platform. */
export function toOciPlatform(p: PlatformLike): OciPlatform {
  const q = toPlatform(p);
  const out: OciPlatform = { architecture: q.architecture, os: q.os };
  if (q.osVersion) out['os.version'] = q.osVersion;
  if (q.osFeatures) out['os.features'] = q.osFeatures;
  if (q.variant) out.variant = q.variant;
  return out;
}
