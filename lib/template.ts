import { hasControlCharacter } from './key.js';

/**
 * Prefix templates: `app/{service}/` or `k8s/{kubernetes.namespace}/` take
 * their values from each event's JSON fields, so one stream fans out to several
 * destinations.
 *
 * A value is usable when it is a non-empty string, a number or a boolean,
 * without `..` and without control characters. When it is not (or the event
 * is not a JSON object, or the field is missing) `fill` says why, and the
 * event goes to the dead-letter prefix instead: it is never dropped.
 */

export interface PrefixTemplate {
  /** The template as written. */
  readonly source: string;
  /** The field paths it reads, e.g. `[['kubernetes', 'namespace']]`. */
  readonly fields: readonly (readonly string[])[];
  /** The prefix for one event, or the reason it cannot be filled. */
  fill(event: unknown): { prefix: string } | { miss: string };
}

const PLACEHOLDER = /\{([^{}]*)\}/g;
const FIELD_PATH = /^[A-Za-z0-9_@$-]+(\.[A-Za-z0-9_@$-]+)*$/;

/** `null` when `source` has no placeholders; throws on a malformed one (the message says which). */
export function compileTemplate(source: string): PrefixTemplate | null {
  if (!source.includes('{') && !source.includes('}')) return null;
  const literals: string[] = [];
  const fields: string[][] = [];
  let last = 0;
  for (const m of source.matchAll(PLACEHOLDER)) {
    const path = m[1] as string;
    if (!FIELD_PATH.test(path)) {
      throw new Error(`placeholder {${path}} is not a field name or dotted path like {service} or {kubernetes.namespace}`);
    }
    literals.push(source.slice(last, m.index));
    fields.push(path.split('.'));
    last = (m.index as number) + m[0].length;
  }
  const tail = source.slice(last);
  if (literals.join('').includes('{') || literals.join('').includes('}') || tail.includes('{') || tail.includes('}')) {
    throw new Error('unbalanced { or } outside a {field} placeholder');
  }
  return {
    source,
    fields,
    fill(event) {
      if (event === null || typeof event !== 'object' || Array.isArray(event)) {
        return { miss: 'event is not a JSON object' };
      }
      let prefix = '';
      for (let i = 0; i < fields.length; i++) {
        const path = fields[i] as string[];
        const value = lookup(event, path);
        const text = valueText(value);
        if (typeof text !== 'string') return { miss: `field ${path.join('.')} ${text.miss}` };
        prefix += (literals[i] as string) + text;
      }
      return { prefix: prefix + tail };
    },
  };
}

function lookup(event: object, path: readonly string[]): unknown {
  let at: unknown = event;
  for (const name of path) {
    if (at === null || typeof at !== 'object' || !Object.hasOwn(at, name)) return undefined;
    at = (at as Record<string, unknown>)[name];
  }
  return at;
}

function valueText(value: unknown): string | { miss: string } {
  if (value === undefined) return { miss: 'is missing' };
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value !== 'string') return { miss: `is ${value === null ? 'null' : Array.isArray(value) ? 'an array' : 'an object'}, not a string` };
  if (value === '') return { miss: 'is empty' };
  if (value.includes('..')) return { miss: 'contains ".."' };
  if (hasControlCharacter(value)) return { miss: 'contains a control character' };
  return value;
}
