import { JsonFields, NOT_AN_OBJECT, NOT_JSON } from './jsonFields.js';
import { prefixProblem } from './key.js';

/**
 * Prefix templates: `app/{service}/` or `k8s/{kubernetes.namespace}/` take
 * their values from each event's JSON fields, so one stream fans out to several
 * destinations.
 *
 * A value is usable when it is a non-empty string, a number or a boolean, and
 * the prefix it fills passes the rule every prefix passes (`prefixProblem`:
 * no control characters, no `.` or `..` segments). When it is not (or the
 * event is not a JSON object, or the field is missing) `fill` says why, and
 * the event goes to the dead-letter prefix instead: it is never dropped.
 */

export interface PrefixTemplate {
  /** The template as written. */
  readonly source: string;
  /** The field paths it reads, e.g. `[['kubernetes', 'namespace']]`. */
  readonly fields: readonly (readonly string[])[];
  /** The prefix for one event, or the reason it cannot be filled. */
  fill(event: unknown): { prefix: string } | { miss: string };
  /**
   * The same for an event given as the bytes of its JSON: what `fill` gives
   * for `JSON.parse` of them, without building the parsed value.
   */
  fillFromJson(bytes: Uint8Array): { prefix: string } | { miss: string };
  /** For an event's payload as a sink takes it: a string or bytes are its JSON, anything else is the event itself. */
  fillFromPayload(payload: unknown): { prefix: string } | { miss: string };
}

type Filled = { prefix: string } | { miss: string };

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
  // The template's own text must pass the prefix rule whatever the values are.
  const ownProblem = prefixProblem(`${literals.join('x')}x${tail}`);
  if (ownProblem !== null) throw new Error(`its text outside the placeholders ${ownProblem}`);
  const reader = JsonFields.supports(fields) ? new JsonFields(fields) : null;
  const fillValues = (values: readonly unknown[]): Filled => {
    let prefix = '';
    for (let i = 0; i < fields.length; i++) {
      const text = valueText(values[i]);
      if (typeof text !== 'string') return { miss: `field ${(fields[i] as string[]).join('.')} ${text.miss}` };
      prefix += (literals[i] as string) + text;
    }
    prefix += tail;
    const problem = prefixProblem(prefix);
    return problem === null ? { prefix } : { miss: `filled prefix ${JSON.stringify(prefix.length > 60 ? `${prefix.slice(0, 60)}…` : prefix)} ${problem}` };
  };
  const fill = (event: unknown): Filled => {
    if (event === null || typeof event !== 'object' || Array.isArray(event)) return NOT_OBJECT_MISS;
    return fillValues(fields.map((path) => lookup(event, path)));
  };
  const fillFromText = (text: string): Filled => {
    const event = parseJson(text);
    return event === UNPARSABLE ? NOT_JSON_MISS : fill(event);
  };
  const fillFromJson = (bytes: Uint8Array): Filled => {
    if (reader === null) return fillFromText(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
    const values = reader.read(bytes);
    if (values === NOT_JSON) return NOT_JSON_MISS;
    if (values === NOT_AN_OBJECT) return NOT_OBJECT_MISS;
    return fillValues(values);
  };
  return {
    source,
    fields,
    fill,
    fillFromJson,
    fillFromPayload(payload) {
      if (payload instanceof Uint8Array) return fillFromJson(payload);
      return typeof payload === 'string' ? fillFromText(payload) : fill(payload);
    },
  };
}

const NOT_JSON_MISS = Object.freeze({ miss: 'event is not JSON' });
const NOT_OBJECT_MISS = Object.freeze({ miss: 'event is not a JSON object' });

const UNPARSABLE = Symbol('unparsable');

/** `JSON.parse(text)`, or `UNPARSABLE`. */
function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return UNPARSABLE;
  }
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
  return value === '' ? { miss: 'is empty' } : value;
}
