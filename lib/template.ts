import { FIELD_PATH, fieldReader, NOT_AN_OBJECT, NOT_JSON, type Fields } from './fields.js';
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
  /**
   * From fields read already (by a `FieldReader` whose first paths are
   * `fields`, in order: a reader of more fields reads a line once for all).
   */
  fillFromFields(values: Fields): { prefix: string } | { miss: string };
}

type Filled = { prefix: string } | { miss: string };

const PLACEHOLDER = /\{([^{}]*)\}/g;

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
  const reader = fieldReader(fields);
  const fillFromFields = (values: Fields): Filled => {
    if (values === NOT_JSON) return NOT_JSON_MISS;
    if (values === NOT_AN_OBJECT) return NOT_OBJECT_MISS;
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
  return {
    source,
    fields,
    fill: (event) => fillFromFields(reader.fromObject(event)),
    fillFromJson: (bytes) => fillFromFields(reader.fromJson(bytes)),
    fillFromPayload: (payload) => fillFromFields(reader.fromPayload(payload)),
    fillFromFields,
  };
}

const NOT_JSON_MISS = Object.freeze({ miss: 'event is not JSON' });
const NOT_OBJECT_MISS = Object.freeze({ miss: 'event is not a JSON object' });

function valueText(value: unknown): string | { miss: string } {
  if (value === undefined) return { miss: 'is missing' };
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value !== 'string') return { miss: `is ${value === null ? 'null' : Array.isArray(value) ? 'an array' : 'an object'}, not a string` };
  return value === '' ? { miss: 'is empty' } : value;
}
