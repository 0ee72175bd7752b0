/**
 * The registration form: the one schema the web checks requests against and
 * the worker checks queue messages against.
 */
import { boolean, mixed, object, string, ValidationError, type InferType } from 'yup';
import { isDjangoEmail } from './email.ts';

/** Caps on the fields the schema does not name, so the service cannot store arbitrary blobs. */
export const LIMITS = {
  /** Keys in the whole form, nested ones included. */
  maxKeys: 64,
  /** Depth of nested objects and arrays below the form itself. */
  maxDepth: 3,
  /** Items of any one array. */
  maxArrayItems: 32,
  /** Characters (code points) of a string in a field the schema does not name. */
  maxExtraStringLength: 2000,
  /** Characters of a key. */
  maxKeyLength: 100,
  /** Characters (code points, as Django's max_length counts) of a named string field that has a limit. */
  maxFieldLength: 255,
  /** Field errors reported for one form; the walk stops once this many are found. */
  maxErrors: 20,
} as const;

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

// Type errors carry fixed messages: yup's defaults print the offending value
// (echoing input, and recursing without bound on deeply nested values).
/** Characters as Python's len() counts them (code points), which Django's max_length checks. */
export function codePoints(value: string): number {
  let n = value.length;
  // Each surrogate pair is one code point: subtract one per high surrogate followed by a low one.
  for (let i = 0; i < value.length - 1; i++) {
    const c = value.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = value.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n -= 1;
        i += 1;
      }
    }
  }
  return n;
}

// A string, of at most `max` characters (the UI's max_length, in code points); null: no limit.
const text = (max: number | null = LIMITS.maxFieldLength) => {
  const plain = string().strict().typeError('must be a string');
  if (max === null) return plain;
  return plain.test({
    name: 'max',
    params: { max },
    message: 'must be at most ${max} characters',
    test: (value) => value === undefined || codePoints(value) <= max,
  });
};
const requiredText = () => text().required('is required');
// The UI's EmailField (max_length 255) with Django's EmailValidator (services/common/email.ts).
const email = () =>
  requiredText().test('email', 'must be an e-mail address', (value) => value === undefined || isDjangoEmail(value));

const known = object({
  company_name: requiredText(),
  contact_name: requiredText(),
  email_address1: email(),
  email_address2: email().test('same-email', 'must equal email_address1 (ignoring case)', (value, ctx) => {
    const first: unknown = (ctx.parent as Record<string, unknown>).email_address1;
    return typeof value !== 'string' || typeof first !== 'string' || value.toLowerCase() === first.toLowerCase();
  }),
  website: requiredText(),
  phone_number: text().optional(),
  exporting: mixed<'True' | 'False' | boolean>()
    .required('is required')
    .oneOf(['True', 'False', true, false], 'must be "True", "False" or a boolean'),
  agree_terms: boolean().strict().typeError('must be true').required('is required').oneOf([true], 'must be true'),
  marketing_source: mixed<string | string[]>()
    .optional()
    .test(
      'string-or-list',
      `must be a string or a list of at most ${LIMITS.maxArrayItems} strings of at most ${LIMITS.maxFieldLength} characters`,
      (value) => {
        if (value === undefined) return true;
        const items: unknown[] = Array.isArray(value) ? value : [value];
        return (
          items.length <= LIMITS.maxArrayItems &&
          items.every((item) => typeof item === 'string' && item.length <= LIMITS.maxFieldLength)
        );
      },
    ),
  opt_in: boolean().strict().typeError('must be a boolean').optional(),
  // CharFields of the UI without max_length: bounded only by MAX_BODY_BYTES.
  marketing_source_bank: text(null).optional(),
  marketing_source_other: text(null).optional(),
}).strict();

/** yup's description of the named fields (types, required, tests with their params); test/openapi.test.ts checks openapi.json against it. */
export function describeNamedFields(): ReturnType<typeof known.describe> {
  return known.describe();
}

/** The fields the schema names, as validated. */
export type KnownFields = InferType<typeof known>;

/** JSON values allowed in fields the schema does not name. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** A validated form: the named fields plus the capped extra fields. */
export type FormData = KnownFields & Record<string, JsonValue | undefined>;

/** One reason a form is refused. */
export interface FieldError {
  /** Dotted path of the field (`data` itself is the empty path). */
  field: string;
  message: string;
}

export type ValidationResult = { ok: true; value: FormData } | { ok: false; errors: FieldError[] };

const KNOWN_KEYS = new Set(Object.keys(known.fields));

/** What a named field may hold before yup sees it (yup is only ever given primitives or a short list of them). */
const EXPECTED: Readonly<Record<string, string>> = {
  exporting: '"True", "False" or a boolean',
  agree_terms: 'true',
  opt_in: 'a boolean',
  marketing_source: `a string or a list of at most ${LIMITS.maxArrayItems} strings of at most ${LIMITS.maxFieldLength} characters`,
};

/** Field errors, capped at LIMITS.maxErrors; walks stop once it is full. */
class Errors {
  readonly list: FieldError[] = [];
  get full(): boolean {
    return this.list.length >= LIMITS.maxErrors;
  }
  add(field: string, message: string): void {
    if (!this.full) this.list.push({ field, message });
  }
}

interface Budget {
  keys: number;
}

/**
 * Validates form data and returns a freshly built copy of it: nothing of the
 * input object (prototype, getters, forbidden keys) reaches the result.
 * Errors name each failing field (at most LIMITS.maxErrors of them).
 */
export function validateForm(input: unknown): ValidationResult {
  if (!isPlainObject(input)) return { ok: false, errors: [{ field: '', message: 'data must be a JSON object' }] };
  const errors = new Errors();
  const budget: Budget = { keys: 0 };
  const extras: Record<string, JsonValue> = {};
  const named: Record<string, unknown> = {};
  const badShape = new Set<string>();
  for (const key of Object.keys(input)) {
    if (errors.full || budget.keys > LIMITS.maxKeys) break;
    const value = input[key];
    if (!checkKey(key, key, errors, budget)) continue;
    if (KNOWN_KEYS.has(key)) {
      if (checkNamed(key, value, errors)) named[key] = value;
      else badShape.add(key);
      continue;
    }
    const copy = copyValue(value, key, 1, errors, budget);
    if (copy !== undefined) defineKey(extras, key, copy);
  }
  if (!errors.full && budget.keys <= LIMITS.maxKeys) {
    try {
      const validated = known.validateSync(named, { abortEarly: false, stripUnknown: true });
      if (errors.list.length === 0) return { ok: true, value: { ...fresh(validated), ...extras } as FormData };
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      for (const e of fieldErrors(error)) if (!badShape.has(e.field)) errors.add(e.field, e.message);
    }
  }
  return { ok: false, errors: errors.list };
}

/** A named field's value: a primitive (a short list of them for marketing_source) with storable strings. */
function checkNamed(key: string, value: unknown, errors: Errors): boolean {
  const list = key === 'marketing_source' && Array.isArray(value);
  const items: unknown[] = list ? (value as unknown[]) : [value];
  if (
    (list && items.length > LIMITS.maxArrayItems) ||
    !items.every((item) => item === null || ['string', 'number', 'boolean', 'undefined'].includes(typeof item))
  ) {
    errors.add(key, `${key} must be ${EXPECTED[key] ?? 'a string'}`);
    return false;
  }
  for (const item of items) {
    if (typeof item === 'string' && !storable(item)) {
      errors.add(key, `${key} contains a NUL character or an unpaired surrogate`);
      return false;
    }
  }
  if (value === null) {
    // yup's own message for null does not say what is expected.
    errors.add(key, `${key} must be ${EXPECTED[key] ?? 'a string'}`);
    return false;
  }
  return true;
}

function fieldErrors(error: ValidationError): FieldError[] {
  const inner = error.inner.length > 0 ? error.inner : [error];
  const seen = new Set<string>();
  const out: FieldError[] = [];
  for (const e of inner) {
    const field = e.path ?? '';
    // One message per field (a wrong type would otherwise also fail oneOf).
    if (seen.has(field)) continue;
    seen.add(field);
    out.push({ field, message: `${field || 'data'} ${e.errors[0] ?? e.message}`.replace(/^(\S+) \1 /, '$1 ') });
  }
  return out;
}

/** Rebuilds the yup result as plain data, dropping undefined fields. */
function fresh(value: KnownFields): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  for (const [key, v] of Object.entries(value)) {
    if (v === undefined) continue;
    defineKey(out, key, Array.isArray(v) ? [...(v as string[])] : (v as JsonValue));
  }
  return out;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Counts and checks one key; false when the key (and its value) must be skipped. */
function checkKey(key: string, path: string, errors: Errors, budget: Budget): boolean {
  budget.keys += 1;
  if (budget.keys > LIMITS.maxKeys) {
    errors.add(path.slice(0, 2 * LIMITS.maxKeyLength), `data has more than ${LIMITS.maxKeys} keys`);
    return false;
  }
  if (FORBIDDEN_KEYS.has(key)) {
    errors.add(path, `${path} is a forbidden key`);
    return false;
  }
  if (key.length > LIMITS.maxKeyLength) {
    errors.add(path.slice(0, LIMITS.maxKeyLength), `key longer than ${LIMITS.maxKeyLength} characters`);
    return false;
  }
  if (!storable(key)) {
    errors.add(JSON.stringify(key), 'key contains a NUL character or an unpaired surrogate');
    return false;
  }
  return true;
}

function copyValue(value: unknown, path: string, depth: number, errors: Errors, budget: Budget): JsonValue | undefined {
  if (value === null || typeof value === 'boolean') return value;
  if (typeof value === 'number') {
    if (Number.isFinite(value)) return value;
    errors.add(path, `${path} must be a finite number`);
    return undefined;
  }
  if (typeof value === 'string') {
    if (value.length > LIMITS.maxExtraStringLength && codePoints(value) > LIMITS.maxExtraStringLength) {
      errors.add(path, `${path} must be at most ${LIMITS.maxExtraStringLength} characters`);
      return undefined;
    }
    if (!storable(value)) {
      errors.add(path, `${path} contains a NUL character or an unpaired surrogate`);
      return undefined;
    }
    return value;
  }
  if (depth > LIMITS.maxDepth) {
    errors.add(path, `${path} is nested deeper than ${LIMITS.maxDepth} levels`);
    return undefined;
  }
  if (Array.isArray(value)) {
    if (value.length > LIMITS.maxArrayItems) {
      errors.add(path, `${path} has more than ${LIMITS.maxArrayItems} items`);
      return undefined;
    }
    const items: JsonValue[] = [];
    for (let i = 0; i < value.length; i++) {
      if (errors.full || budget.keys > LIMITS.maxKeys) break;
      const item = copyValue(value[i], `${path}.${i}`, depth + 1, errors, budget);
      if (item !== undefined) items.push(item);
    }
    return items;
  }
  if (isPlainObject(value)) {
    const out: Record<string, JsonValue> = {};
    for (const key of Object.keys(value)) {
      if (errors.full || budget.keys > LIMITS.maxKeys) break;
      const childPath = `${path}.${key}`;
      if (!checkKey(key, childPath, errors, budget)) continue;
      const child = copyValue(value[key], childPath, depth + 1, errors, budget);
      if (child !== undefined) defineKey(out, key, child);
    }
    return out;
  }
  errors.add(path, `${path} is not a JSON value`);
  return undefined;
}

/** PostgreSQL's jsonb refuses NUL characters and unpaired surrogates. */
export function storable(value: string): boolean {
  return !value.includes('\u0000') && value.isWellFormed();
}

function defineKey(target: Record<string, JsonValue>, key: string, value: JsonValue): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}
