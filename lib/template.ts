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
 *
 * `{kafka:key}`, `{kafka:topic}`, `{kafka:partition}` and `{kafka:header.NAME}`
 * take a Kafka record's key, topic, partition or header (as UTF-8) instead:
 * only Kafka workers fill them (`meta`), and a sink of another input refuses
 * such a template (see `resolveOptions`).
 */

/** The value of a `{kafka:...}` placeholder (`key`, `topic`, `partition`, `header.NAME`) for one event; `undefined` when it has none. */
export type MetaValues = (name: string) => string | undefined;

export interface PrefixTemplate {
  /** The template as written. */
  readonly source: string;
  /** The field paths it reads, e.g. `[['kubernetes', 'namespace']]`. */
  readonly fields: readonly (readonly string[])[];
  /** The names of its `{kafka:...}` placeholders, e.g. `['key', 'header.service']`. */
  readonly meta: readonly string[];
  /** The prefix for one event, or the reason it cannot be filled. */
  fill(event: unknown, meta?: MetaValues): { prefix: string } | { miss: string };
  /**
   * The same for an event given as the bytes of its JSON: what `fill` gives
   * for `JSON.parse` of them, without building the parsed value.
   */
  fillFromJson(bytes: Uint8Array, meta?: MetaValues): { prefix: string } | { miss: string };
  /** For an event's payload as a sink takes it: a string or bytes are its JSON, anything else is the event itself. */
  fillFromPayload(payload: unknown, meta?: MetaValues): { prefix: string } | { miss: string };
  /**
   * From fields read already (by a `FieldReader` whose first paths are
   * `fields`, in order: a reader of more fields reads a line once for all).
   */
  fillFromFields(values: Fields, meta?: MetaValues): { prefix: string } | { miss: string };
}

const META = /^kafka:(key|topic|partition|header\.[A-Za-z0-9_.-]+)$/;

type Filled = { prefix: string } | { miss: string };

const PLACEHOLDER = /\{([^{}]*)\}/g;

/** `null` when `source` has no placeholders; throws on a malformed one (the message says which). */
export function compileTemplate(source: string): PrefixTemplate | null {
  if (!source.includes('{') && !source.includes('}')) return null;
  const literals: string[] = [];
  const fields: string[][] = [];
  const meta: string[] = [];
  /** Per placeholder: the index of its field, or the name of its `{kafka:...}` value. */
  const slots: (number | string)[] = [];
  let last = 0;
  for (const m of source.matchAll(PLACEHOLDER)) {
    const path = m[1] as string;
    const metaName = META.exec(path)?.[1];
    if (metaName !== undefined) {
      meta.push(metaName);
      slots.push(metaName);
    } else if (FIELD_PATH.test(path)) {
      slots.push(fields.length);
      fields.push(path.split('.'));
    } else {
      throw new Error(`placeholder {${path}} is not a field name or dotted path like {service} or {kubernetes.namespace} (or, for Kafka, {kafka:key}, {kafka:topic}, {kafka:partition} or {kafka:header.NAME})`);
    }
    literals.push(source.slice(last, m.index));
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
  const none: Fields = [];
  /**
   * The prefix of a template of one `{field}` follows from the field's text
   * alone, so what each text fills (and whether that passes the prefix rule)
   * is worked out once per text, not for every event (building the prefix
   * and running the prefix rule's regular expression on it). Bounded as the
   * router's own caches are.
   */
  const byText = slots.length === 1 && typeof slots[0] === 'number' ? new Map<string, Filled>() : null;
  const checked = (prefix: string): Filled => {
    const problem = prefixProblem(prefix);
    return problem === null ? { prefix } : { miss: `filled prefix ${JSON.stringify(prefix.length > 60 ? `${prefix.slice(0, 60)}…` : prefix)} ${problem}` };
  };
  const fillFromFields = (values: Fields, metaValues?: MetaValues): Filled => {
    if (fields.length > 0) {
      if (values === NOT_JSON) return NOT_JSON_MISS;
      if (values === NOT_AN_OBJECT) return NOT_OBJECT_MISS;
    }
    if (byText !== null) {
      const text = valueText((values as readonly unknown[])[0]);
      // A value that fills no prefix, or a long one (a cache of such keys would hold up to MEMO_LIMIT lines' worth), goes the general way.
      if (typeof text === 'string' && text.length <= MEMO_TEXT_CHARS) {
        let filled = byText.get(text);
        if (filled === undefined) {
          if (byText.size >= MEMO_LIMIT) byText.clear();
          filled = Object.freeze(checked((literals[0] as string) + text + tail));
          byText.set(text, filled);
        }
        return filled;
      }
    }
    let prefix = '';
    for (let i = 0; i < slots.length; i++) {
      const slot = slots[i] as number | string;
      let text;
      if (typeof slot === 'number') {
        text = valueText((values as readonly unknown[])[slot]);
        if (typeof text !== 'string') return { miss: `field ${(fields[slot] as string[]).join('.')} ${text.miss}` };
      } else {
        text = metaText(metaValues?.(slot));
        if (typeof text !== 'string') return { miss: `{kafka:${slot}} ${text.miss}` };
      }
      prefix += (literals[i] as string) + text;
    }
    return checked(prefix + tail);
  };
  // A template of `{kafka:...}` placeholders only reads nothing of the event (which need not be JSON).
  return {
    source,
    fields,
    meta,
    fill: (event, metaValues) => fillFromFields(fields.length > 0 ? reader.fromObject(event) : none, metaValues),
    fillFromJson: (bytes, metaValues) => fillFromFields(fields.length > 0 ? reader.fromJson(bytes) : none, metaValues),
    fillFromPayload: (payload, metaValues) => fillFromFields(fields.length > 0 ? reader.fromPayload(payload) : none, metaValues),
    fillFromFields,
  };
}

/** Texts whose filled prefix a one-field template keeps (then it starts over), as many as the router keeps prefixes. */
const MEMO_LIMIT = 4096;
/** The longest value text kept (UTF-16 units): the cache then holds at most about 2 MiB of keys, 4 MiB with their prefixes. */
const MEMO_TEXT_CHARS = 256;

const NOT_JSON_MISS = Object.freeze({ miss: 'event is not JSON' });
const NOT_OBJECT_MISS = Object.freeze({ miss: 'event is not a JSON object' });

function metaText(value: string | undefined): string | { miss: string } {
  if (value === undefined) return { miss: 'is missing (the record has none)' };
  return value === '' ? { miss: 'is empty' } : value;
}

function valueText(value: unknown): string | { miss: string } {
  if (value === undefined) return { miss: 'is missing' };
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value !== 'string') return { miss: `is ${value === null ? 'null' : Array.isArray(value) ? 'an array' : 'an object'}, not a string` };
  return value === '' ? { miss: 'is empty' } : value;
}
