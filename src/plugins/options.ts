// Reading a plugin's table from the configuration file: a wrong type is a start-up error that
// names the key.

export function numberOption(config: Record<string, unknown>, key: string): number | undefined {
  const v = config[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new Error(`${key} must be a non-negative number`);
  return v;
}

/** Refuses a key the plugin does not know, naming the ones it does. */
export function checkKeys(config: Record<string, unknown>, known: ReadonlySet<string>): void {
  for (const key of Object.keys(config)) {
    if (!known.has(key)) throw new Error(`unknown key ${JSON.stringify(key)} (known: ${[...known].join(', ')})`);
  }
}
