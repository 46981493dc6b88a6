/** A flag's value as a positive integer (`fallback` when it is not given), or an error naming the flag. */
export function positiveFlag(flags: Record<string, string | boolean | undefined>, name: string, fallback: number): number {
  const text = flags[name];
  if (text === undefined) return fallback;
  const value = Number(text);
  if (typeof text !== 'string' || !Number.isInteger(value) || value < 1) throw new Error(`--${name}: got ${JSON.stringify(text)}, expected a positive integer`);
  return value;
}
