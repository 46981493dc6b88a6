import { JsonFields, NOT_AN_OBJECT, NOT_JSON } from './jsonFields.js';

/**
 * Reads a few fields of an event, whatever form its payload takes: bytes
 * (every line, in lines mode) go through the `JsonFields` scanner, which
 * never builds the parsed value; a string is parsed with `JSON.parse`; any
 * other payload is the event itself. Everything that reads fields of events
 * (a prefix template, the `time` field) reads them through one reader, so
 * that a line is scanned once however many fields are wanted.
 */

/** A field path: a name, or names joined by dots (`service`, `kubernetes.namespace`, `@timestamp`). */
export const FIELD_PATH = /^[A-Za-z0-9_@$-]+(\.[A-Za-z0-9_@$-]+)*$/;

/** The values of the paths (in their order; `undefined` where a path leads nowhere), or `NOT_AN_OBJECT`, or `NOT_JSON`. */
export type Fields = readonly unknown[] | null;
export { NOT_AN_OBJECT, NOT_JSON };

export interface FieldReader {
  readonly paths: readonly (readonly string[])[];
  /** From an event given as its payload, as a sink takes it. */
  fromPayload(payload: unknown): Fields;
  /** From an event given as the bytes of its JSON: what `fromObject(JSON.parse(...))` gives, without building the value. */
  fromJson(bytes: Uint8Array): Fields;
  /** From an event that is a value already (`NOT_AN_OBJECT` unless it is a plain object). */
  fromObject(event: unknown): Fields;
}

/** `first`: bytes are read only up to the first value of the (one) path (see `JsonFields`); strings and objects are read whole. */
export function fieldReader(paths: readonly (readonly string[])[], { first = false }: { first?: boolean } = {}): FieldReader {
  const scanner = JsonFields.supports(paths) ? new JsonFields(paths, { first }) : null;
  const fromObject = (event: unknown): Fields => {
    if (event === null || typeof event !== 'object' || Array.isArray(event)) return NOT_AN_OBJECT;
    return paths.map((path) => lookup(event, path));
  };
  const fromText = (text: string): Fields => {
    const event = parseJson(text);
    return event === UNPARSABLE ? NOT_JSON : fromObject(event);
  };
  const fromJson = (bytes: Uint8Array): Fields => {
    if (scanner === null) return fromText(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
    return scanner.read(bytes);
  };
  return {
    paths,
    fromObject,
    fromJson,
    fromPayload(payload) {
      if (payload instanceof Uint8Array) return fromJson(payload);
      return typeof payload === 'string' ? fromText(payload) : fromObject(payload);
    },
  };
}

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
