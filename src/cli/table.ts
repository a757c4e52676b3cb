// Output for people (aligned columns, as ctr's tabwriter) and for scripts (--json).

export function printTable(headers: string[], rows: string[][], out: NodeJS.WritableStream = process.stdout): void {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] + 3))).join('').trimEnd() + '\n';
  out.write(line(headers));
  for (const row of rows) out.write(line(row));
}

/** One object as `key:  value` lines, the values aligned (as `berth pulls get` shows a pull). */
export function printFields(fields: Array<[key: string, value: string]>): void {
  const width = Math.max(...fields.map(([k]) => k.length));
  for (const [k, v] of fields) process.stdout.write(`${(k + ':').padEnd(width + 2)}${v}\n`);
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** Bytes as people read them: 1.5 MiB. */
export function humanSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let n = bytes;
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`;
}

/** A span of time in its largest whole unit: 3 seconds, 2 hours. */
function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const [n, unit] =
    s < 60 ? [s, 'second'] : s < 3600 ? [Math.round(s / 60), 'minute'] : s < 86400 ? [Math.round(s / 3600), 'hour'] : [Math.round(s / 86400), 'day'];
  return `${n} ${unit}${n === 1 ? '' : 's'}`;
}

/** How long ago a time was: 3 seconds ago, 2 hours ago. */
export function age(iso: string, now = Date.now()): string {
  return `${duration(now - Date.parse(iso))} ago`;
}

export function formatLabels(labels: Record<string, string>): string {
  const entries = Object.entries(labels);
  return entries.length === 0 ? '-' : entries.map(([k, v]) => `${k}=${v}`).join(',');
}

/** How far ahead a time is: in 3 hours; `expired 2 minutes ago` once past. */
export function until(iso: string, now = Date.now()): string {
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return iso;
  return at <= now ? `expired ${duration(now - at)} ago` : `in ${duration(at - now)}`;
}
