/**
 * Reads a few fields out of one JSON text given as bytes, and says whether the
 * whole text is valid JSON, without building the value: routing by a
 * `{field}` template needs one field of each line and the certainty that the
 * line is JSON, and `JSON.parse` spends most of its time building objects
 * nobody reads.
 *
 * It accepts exactly what `JSON.parse(bytes.toString('utf8'))` accepts
 * (RFC 8259: no comments, no trailing commas, no raw control characters in
 * strings, whitespace only ` \t\n\r`); bytes that are not UTF-8 are accepted
 * inside strings, as the decoder would turn them into U+FFFD. A field is read
 * as `JSON.parse` would leave it: the last of duplicate keys wins, and a key
 * written with escapes matches its decoded name. The tests check both against
 * `JSON.parse` on generated and mutated lines.
 */

/** Stand-ins for a field that holds an object or an array (their contents are not read). */
export const AN_OBJECT: Readonly<Record<string, never>> = Object.freeze({});
export const AN_ARRAY: readonly never[] = Object.freeze([]);

/** What a field holds: the value `JSON.parse` would give, `AN_OBJECT` or `AN_ARRAY`; `undefined` when it is missing. */
export type FieldValue = string | number | boolean | null | typeof AN_OBJECT | typeof AN_ARRAY | undefined;

/** What `read` gives for a text that is not JSON. */
export const NOT_JSON = null;
/** What `read` gives for JSON whose top-level value is not an object. */
export const NOT_AN_OBJECT: readonly FieldValue[] = Object.freeze([]);

interface Node {
  /** The keys that lead on from here (its value is an object to look into), and where each leads. */
  names: string[];
  kids: Node[];
  /** The index of the field it reads, or -1 (a node only on the way to others). */
  field: number;
  /** The fields under this node (itself, for a leaf): reset when its key appears again. */
  fields: number[];
}

// Buffer's own decoders, used on any Uint8Array without wrapping it in a Buffer first.
const { utf8Slice, latin1Slice } = Buffer.prototype as unknown as Record<'utf8Slice' | 'latin1Slice', (this: Uint8Array, start: number, end: number) => string>;

const OBJECT = 1;
const ARRAY = 2;
/** Stacks up to this deep are kept from one read to the next. */
const KEPT_DEPTH = 64;

/**
 * A reader for field paths such as `[['service'], ['kubernetes', 'namespace']]`.
 * Paths that could read an array's own property (`0`, `length`) are refused:
 * use `JSON.parse` for those.
 *
 * With `first` (one path only) it stops once it has read the path's value:
 * what comes after is neither read nor checked, so the first of repeated
 * keys counts, and a text broken only after it gives its value (for a field
 * that only orders events, such as their time, and never decides where a
 * line goes).
 */
export class JsonFields {
  readonly paths: readonly (readonly string[])[];
  readonly #root: Node;
  /** Open containers while a text is read: their kind and, for an object on a path, its node (entries past the current depth are stale). */
  readonly #kinds: number[] = [];
  readonly #nodes: (Node | null)[] = [];
  readonly #first: boolean;

  static supports(paths: readonly (readonly string[])[]): boolean {
    return paths.every((path) => path.length > 0 && path.every((name) => !/^(\d+|length)$/.test(name)));
  }

  constructor(paths: readonly (readonly string[])[], { first = false }: { first?: boolean } = {}) {
    if (!JsonFields.supports(paths)) throw new Error('JsonFields: a path is empty or names an array index or length');
    if (first && paths.length !== 1) throw new Error('JsonFields: first reads one path');
    this.paths = paths;
    this.#first = first;
    this.#root = { names: [], kids: [], field: -1, fields: [] };
    paths.forEach((path, index) => {
      let node = this.#root;
      for (let d = 0; d < path.length; d++) {
        const name = path[d] as string;
        let child = node.kids[node.names.indexOf(name)];
        if (!child) {
          child = { names: [], kids: [], field: -1, fields: [] };
          node.names.push(name);
          node.kids.push(child);
        }
        if (d === path.length - 1) child.field = index;
        child.fields.push(index);
        node = child;
      }
    });
  }

  /**
   * The values of the fields (in the order of `paths`; `undefined` where the
   * path leads nowhere), `NOT_AN_OBJECT` or `NOT_JSON`.
   */
  read(b: Uint8Array): readonly FieldValue[] | null {
    const n = b.length;
    const values: FieldValue[] = new Array(this.paths.length).fill(undefined);
    // Open containers: their kind and, for an object on a path, its node. The reader's own stacks, used again
    // by every read: a new pair per line was about 300 of the 450 bytes reading a line allocated.
    const kinds = this.#kinds;
    const nodes = this.#nodes;
    if (kinds.length > KEPT_DEPTH) {
      // The last text nested deeper than log lines do: its stacks are not kept.
      kinds.length = 0;
      nodes.length = 0;
    }
    let open = 0;
    let node: Node | null = null;
    let expectKey = false;
    // The node of the value about to be read (null: on no path); the whole text is the root.
    let next: Node | null = this.#root;
    let i = skipSpace(b, 0, n);
    const start = i;
    for (;;) {
      let target = next;
      next = null;
      if (expectKey) {
        expectKey = false;
        if (b[i] !== 0x22) return NOT_JSON;
        const end = skipString(b, i, n);
        if (end < 0) return NOT_JSON;
        if (node !== null) target = childFor(node, b, i, end);
        i = skipSpace(b, end, n);
        if (b[i] !== 0x3a /* : */) return NOT_JSON;
        i = skipSpace(b, i + 1, n);
        // A repeated key: the last one wins, so forget what the earlier one held.
        if (target !== null) for (const f of target.fields) values[f] = undefined;
      }
      const leaf = target !== null && target.field !== -1 ? target.field : -1;
      const c = b[i];
      if (c === 0x7b /* { */) {
        if (leaf !== -1) values[leaf] = AN_OBJECT;
        i = skipSpace(b, i + 1, n);
        if (b[i] !== 0x7d /* } */) {
          node = target !== null && target.names.length > 0 ? target : null;
          kinds[open] = OBJECT;
          nodes[open++] = node;
          expectKey = true;
          continue;
        }
        i += 1;
      } else if (c === 0x5b /* [ */) {
        if (leaf !== -1) values[leaf] = AN_ARRAY;
        i = skipSpace(b, i + 1, n);
        if (b[i] !== 0x5d /* ] */) {
          kinds[open] = ARRAY;
          nodes[open++] = null;
          continue;
        }
        i += 1;
      } else if (c === 0x22 /* " */) {
        const end = skipString(b, i, n);
        if (end < 0) return NOT_JSON;
        if (leaf !== -1) values[leaf] = decodeString(b, i, end);
        i = end;
      } else if (c === 0x2d /* - */ || (c !== undefined && c >= 0x30 && c <= 0x39)) {
        const end = skipNumber(b, i, n);
        if (end < 0) return NOT_JSON;
        if (leaf !== -1) values[leaf] = Number(latin1Slice.call(b, i, end));
        i = end;
      } else if (c === 0x74 /* t */ && b[i + 1] === 0x72 && b[i + 2] === 0x75 && b[i + 3] === 0x65) {
        if (leaf !== -1) values[leaf] = true;
        i += 4;
      } else if (c === 0x66 /* f */ && b[i + 1] === 0x61 && b[i + 2] === 0x6c && b[i + 3] === 0x73 && b[i + 4] === 0x65) {
        if (leaf !== -1) values[leaf] = false;
        i += 5;
      } else if (c === 0x6e /* n */ && b[i + 1] === 0x75 && b[i + 2] === 0x6c && b[i + 3] === 0x6c) {
        if (leaf !== -1) values[leaf] = null;
        i += 4;
      } else {
        return NOT_JSON;
      }
      if (leaf !== -1 && this.#first) return values;
      // After a value: a separator, the end of containers, or the end of the text.
      for (;;) {
        i = skipSpace(b, i, n);
        if (open === 0) return i !== n ? NOT_JSON : b[start] === 0x7b ? values : NOT_AN_OBJECT;
        const sep = b[i];
        const kind = kinds[open - 1];
        if (sep === 0x2c /* , */) {
          i = skipSpace(b, i + 1, n);
          if (kind === OBJECT) {
            node = nodes[open - 1] as Node | null;
            expectKey = true;
          }
          break;
        }
        if (sep !== (kind === OBJECT ? 0x7d /* } */ : 0x5d) /* ] */) return NOT_JSON;
        open -= 1;
        i += 1;
      }
    }
  }
}

/** The child of `node` that the key token `b[start, end)` names, or null. */
function childFor(node: Node, b: Uint8Array, start: number, end: number): Node | null {
  const { names, kids } = node;
  for (let k = 0; k < names.length; k++) if (keyEquals(b, start, end, names[k] as string)) return kids[k] as Node;
  return null;
}

function skipSpace(b: Uint8Array, i: number, n: number): number {
  while (i < n) {
    const c = b[i];
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
    i++;
  }
  return i;
}

/** Bytes that stand for themselves inside a string: all but `"`, `\\` and control characters. */
const PLAIN = new Uint8Array(256).fill(1, 0x20);
PLAIN[0x22] = 0;
PLAIN[0x5c] = 0;

/** `b[i]` is `"`: the index after the closing quote, or -1. */
function skipString(b: Uint8Array, i: number, n: number): number {
  i++;
  for (;;) {
    while (i < n && PLAIN[b[i] as number] === 1) i++;
    if (i >= n) return -1;
    const c = b[i];
    if (c === 0x22) return i + 1;
    if (c !== 0x5c) return -1; // a control character
    const e = b[i + 1];
    if (e === 0x75 /* u */) {
      if (!isHex(b[i + 2]) || !isHex(b[i + 3]) || !isHex(b[i + 4]) || !isHex(b[i + 5])) return -1;
      i += 6;
    } else if (e === 0x22 || e === 0x5c || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) {
      i += 2;
    } else {
      return -1;
    }
  }
}

function isHex(c: number | undefined): boolean {
  return c !== undefined && ((c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66));
}

function isDigit(c: number | undefined): boolean {
  return c !== undefined && c >= 0x30 && c <= 0x39;
}

/** A number at `i`: the index after it, or -1. */
function skipNumber(b: Uint8Array, i: number, n: number): number {
  if (b[i] === 0x2d) i++;
  if (b[i] === 0x30) {
    i++;
  } else if (isDigit(b[i])) {
    while (i < n && isDigit(b[i])) i++;
  } else {
    return -1;
  }
  if (b[i] === 0x2e /* . */) {
    i++;
    if (!isDigit(b[i])) return -1;
    while (i < n && isDigit(b[i])) i++;
  }
  if (b[i] === 0x65 || b[i] === 0x45 /* e E */) {
    i++;
    if (b[i] === 0x2b || b[i] === 0x2d) i++;
    if (!isDigit(b[i])) return -1;
    while (i < n && isDigit(b[i])) i++;
  }
  return i;
}

/** Whether the string token `b[start, end)` (quotes included) means `name` (an ASCII name). */
function keyEquals(b: Uint8Array, start: number, end: number, name: string): boolean {
  const len = end - start - 2;
  let k = 0;
  for (; k < len && k < name.length; k++) {
    const c = b[start + 1 + k] as number;
    if (c === 0x5c) return decodeString(b, start, end) === name; // escapes: compare the decoded key (rare)
    if (c !== name.charCodeAt(k)) return false;
  }
  // No escape within the name's length: a longer key decodes to more than the name.
  return len === name.length;
}

/** The string token `b[start, end)` (quotes included), decoded as `JSON.parse` would. */
function decodeString(b: Uint8Array, start: number, end: number): string {
  for (let k = start + 1; k < end - 1; k++) if (b[k] === 0x5c) return JSON.parse(utf8Slice.call(b, start, end)) as string;
  return utf8Slice.call(b, start + 1, end - 1);
}
