// Reading a plugin's table from the configuration file: a wrong type is a start-up error that
// names the key.

export function numberOption(config: Record<string, unknown>, key: string): number | undefined {
  const v = config[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new Error(`${key} must be a non-negative number`);
  return v;
}
