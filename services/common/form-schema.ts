/**
 * The registration form: the one schema the web checks requests against and
 * the worker checks queue messages against.
 */
import { boolean, mixed, object, string, ValidationError, type InferType } from 'yup';

/** Caps on the fields the schema does not name, so the service cannot store arbitrary blobs. */
export const LIMITS = {
  /** Keys in the whole form, nested ones included. */
  maxKeys: 64,
  /** Depth of nested objects and arrays below the form itself. */
  maxDepth: 3,
  /** Items of any one array. */
  maxArrayItems: 32,
  /** Characters of a string in a field the schema does not name. */
  maxExtraStringLength: 2000,
  /** Characters of a key. */
  maxKeyLength: 100,
  /** Characters of a named string field. */
  maxFieldLength: 255,
} as const;

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

const text = () => string().strict().max(LIMITS.maxFieldLength, 'must be at most ${max} characters');
const requiredText = () => text().required('is required');
const email = () => requiredText().email('must be an e-mail address');

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
  agree_terms: boolean().strict().required('is required').oneOf([true], 'must be true'),
  marketing_source: mixed<string | string[]>()
    .optional()
    .test('string-or-list', 'must be a string or a list of strings of at most 255 characters', (value) => {
      if (value === undefined) return true;
      const items = Array.isArray(value) ? value : [value];
      return items.every((item) => typeof item === 'string' && item.length <= LIMITS.maxFieldLength);
    }),
  opt_in: boolean().strict().optional(),
}).strict();

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

/**
 * Validates form data and returns a freshly built copy of it: nothing of the
 * input object (prototype, getters, forbidden keys) reaches the result.
 */
export function validateForm(input: unknown): ValidationResult {
  if (!isPlainObject(input)) return { ok: false, errors: [{ field: '', message: 'must be a JSON object' }] };
  const errors: FieldError[] = [];
  const extras = copyExtras(input, errors);
  if (errors.length > 0) return { ok: false, errors };
  let validated: KnownFields;
  try {
    validated = known.validateSync(pick(input, KNOWN_KEYS), { abortEarly: false, stripUnknown: true });
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    return { ok: false, errors: fieldErrors(error) };
  }
  const value: FormData = { ...fresh(validated), ...extras } as FormData;
  return { ok: true, value };
}

function fieldErrors(error: ValidationError): FieldError[] {
  const inner = error.inner.length > 0 ? error.inner : [error];
  return inner.map((e) => ({ field: e.path ?? '', message: `${e.path ?? 'data'} ${e.errors[0] ?? e.message}`.replace(/^(\S+) \1 /, '$1 ') }));
}

function pick(input: Record<string, unknown>, keys: ReadonlySet<string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(input)) if (keys.has(key)) out[key] = input[key];
  return out;
}

/** Rebuilds the yup result as plain data, dropping undefined fields. */
function fresh(value: KnownFields): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  for (const [key, v] of Object.entries(value)) {
    if (v === undefined) continue;
    out[key] = Array.isArray(v) ? [...(v as string[])] : (v as JsonValue);
  }
  return out;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Copies the fields the schema does not name, checking caps and storability everywhere. */
function copyExtras(input: Record<string, unknown>, errors: FieldError[]): Record<string, JsonValue> {
  const budget = { keys: 0 };
  const out: Record<string, JsonValue> = {};
  for (const key of Object.keys(input)) {
    const path = key;
    const value = input[key];
    if (!checkKey(key, path, errors, budget)) continue;
    if (KNOWN_KEYS.has(key)) {
      // Named fields are checked by yup; here only that their strings are storable.
      checkStorable(value, path, errors, 1);
      continue;
    }
    const copy = copyValue(value, path, 1, errors, budget);
    if (copy !== undefined) defineKey(out, key, copy);
  }
  return out;
}

function checkKey(key: string, path: string, errors: FieldError[], budget: { keys: number }): boolean {
  budget.keys += 1;
  if (budget.keys === LIMITS.maxKeys + 1) errors.push({ field: path, message: `data has more than ${LIMITS.maxKeys} keys` });
  if (FORBIDDEN_KEYS.has(key)) {
    errors.push({ field: path, message: `${path} is a forbidden key` });
    return false;
  }
  if (key.length > LIMITS.maxKeyLength) {
    errors.push({ field: path.slice(0, LIMITS.maxKeyLength), message: `key longer than ${LIMITS.maxKeyLength} characters` });
    return false;
  }
  if (!storable(key)) {
    errors.push({ field: JSON.stringify(key), message: 'key contains a NUL character or an unpaired surrogate' });
    return false;
  }
  return true;
}

function copyValue(value: unknown, path: string, depth: number, errors: FieldError[], budget: { keys: number }): JsonValue | undefined {
  if (value === null || typeof value === 'boolean') return value;
  if (typeof value === 'number') {
    if (Number.isFinite(value)) return value;
    errors.push({ field: path, message: `${path} must be a finite number` });
    return undefined;
  }
  if (typeof value === 'string') {
    if (value.length > LIMITS.maxExtraStringLength) {
      errors.push({ field: path, message: `${path} must be at most ${LIMITS.maxExtraStringLength} characters` });
      return undefined;
    }
    if (!storable(value)) {
      errors.push({ field: path, message: `${path} contains a NUL character or an unpaired surrogate` });
      return undefined;
    }
    return value;
  }
  if (depth > LIMITS.maxDepth) {
    errors.push({ field: path, message: `${path} is nested deeper than ${LIMITS.maxDepth} levels` });
    return undefined;
  }
  if (Array.isArray(value)) {
    if (value.length > LIMITS.maxArrayItems) {
      errors.push({ field: path, message: `${path} has more than ${LIMITS.maxArrayItems} items` });
      return undefined;
    }
    const items: JsonValue[] = [];
    for (let i = 0; i < value.length; i++) {
      const item = copyValue(value[i], `${path}.${i}`, depth + 1, errors, budget);
      if (item !== undefined) items.push(item);
    }
    return items;
  }
  if (isPlainObject(value)) {
    const out: Record<string, JsonValue> = {};
    for (const key of Object.keys(value)) {
      const childPath = `${path}.${key}`;
      if (!checkKey(key, childPath, errors, budget)) continue;
      const child = copyValue(value[key], childPath, depth + 1, errors, budget);
      if (child !== undefined) defineKey(out, key, child);
    }
    return out;
  }
  errors.push({ field: path, message: `${path} is not a JSON value` });
  return undefined;
}

/** Checks, without copying, that every string below `value` is storable. */
function checkStorable(value: unknown, path: string, errors: FieldError[], depth: number): void {
  if (typeof value === 'string') {
    if (!storable(value)) errors.push({ field: path, message: `${path} contains a NUL character or an unpaired surrogate` });
  } else if (Array.isArray(value) && depth <= LIMITS.maxDepth) {
    value.forEach((item, i) => checkStorable(item, `${path}.${i}`, errors, depth + 1));
  }
}

/** PostgreSQL's jsonb refuses NUL characters and unpaired surrogates. */
export function storable(value: string): boolean {
  return !value.includes('\u0000') && value.isWellFormed();
}

function defineKey(target: Record<string, JsonValue>, key: string, value: JsonValue): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}
