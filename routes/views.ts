// What the API shows of each object: camelCase JSON with RFC 3339 nanosecond times.
import { formatTimestamp } from '../store/timestamp.js';
import type { Info, Status } from '../store/types.js';

export function infoView(info: Info) {
  return {
    digest: info.digest,
    size: info.size,
    createdAt: formatTimestamp(info.createdAt),
    updatedAt: formatTimestamp(info.updatedAt),
    labels: info.labels,
  };
}

export function statusView(status: Status) {
  return {
    ref: status.ref,
    offset: status.offset,
    total: status.total,
    ...(status.expected ? { expected: status.expected } : {}),
    startedAt: formatTimestamp(status.startedAt),
    updatedAt: formatTimestamp(status.updatedAt),
  };
}
