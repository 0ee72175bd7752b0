/**
 * Checks real HTTP answers against the OpenAPI document (services/web/openapi.json):
 * status documented for the operation, media type, body schema (ajv, JSON
 * Schema 2020-12, with the document's components) and response headers, and
 * records which (method, path, status) triples and response components were
 * exercised, so a test can assert that every documented one was.
 */
import { expect } from 'chai';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import type { Answer } from './raw-http.ts';

type JsonObject = Record<string, unknown>;

const ROOT = 'urn:form-data:openapi';
const SCHEMA_REF = '#/components/schemas/';
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;
/** Keywords whose values are subschemas (objects), lists of them, or maps of them. */
const SUBSCHEMA = [
  'items',
  'additionalProperties',
  'propertyNames',
  'not',
  'contentSchema',
  'if',
  'then',
  'else',
  'contains',
  'unevaluatedProperties',
  'unevaluatedItems',
];
const SUBSCHEMA_LISTS = ['allOf', 'anyOf', 'oneOf', 'prefixItems'];
const SUBSCHEMA_MAPS = ['properties', 'patternProperties', '$defs', 'dependentSchemas'];
/** A loose stand-in for the yup e-mail rule, enough to tell an address from a non-address. */
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `type/subtype` and parameters of a media type, lower-cased. */
function mediaType(value: string): { type: string; params: Map<string, string> } {
  const [type = '', ...params] = value.split(';');
  return {
    type: type.trim().toLowerCase(),
    params: new Map(
      params.map((p) => {
        const eq = p.indexOf('=');
        return [
          p.slice(0, eq).trim().toLowerCase(),
          p
            .slice(eq + 1)
            .trim()
            .replace(/^"|"$/g, '')
            .toLowerCase(),
        ] as const;
      }),
    ),
  };
}

/** A documented media type matches an actual one when type and subtype are equal and each documented parameter is present with the same value. */
function mediaTypeMatches(documented: string, actual: string): boolean {
  const d = mediaType(documented);
  const a = mediaType(actual);
  return d.type === a.type && [...d.params].every(([name, value]) => a.params.get(name) === value);
}

function isJsonType(type: string): boolean {
  const t = mediaType(type).type;
  return t === 'application/json' || t.endsWith('+json');
}

/** An example found in the document, with the schema it must satisfy. */
export interface DocumentExample {
  where: string;
  schema: unknown;
  value: unknown;
}

/** The document, an ajv instance over its schemas, and what the checked answers exercised. */
export class Contract {
  readonly document: JsonObject;
  private readonly ajv: Ajv2020;
  private readonly compiled = new WeakMap<object, ValidateFunction>();
  private readonly exercised = new Set<string>();
  private readonly usedComponents = new Set<string>();
  /** Optional headers documented on exercised triples, and those seen in an answer. */
  private readonly optionalHeaders = new Set<string>();
  private readonly seenHeaders = new Set<string>();

  constructor(document: JsonObject) {
    this.document = document;
    this.ajv = new Ajv2020({
      allErrors: true,
      strict: true,
      allowUnionTypes: true,
      formats: { email: { type: 'string', validate: (value: string) => EMAIL.test(value) } },
    });
    this.ajv.addSchema({ $id: ROOT, $defs: this.rewrite(this.section('schemas')) });
  }

  /** A section of `components` (schemas, responses…). */
  private section(kind: string): JsonObject {
    const components = this.document.components;
    const found = isObject(components) ? components[kind] : undefined;
    return isObject(found) ? found : {};
  }

  /** The value at a local reference (`#/a/b`). */
  resolve(ref: string): unknown {
    expect(ref, 'only local references').to.match(/^#\//);
    let value: unknown = this.document;
    for (const part of ref.slice(2).split('/')) {
      const key = part.replace(/~1/g, '/').replace(/~0/g, '~');
      expect(isObject(value) && key in value, `reference ${ref} resolves`).to.equal(true);
      value = (value as JsonObject)[key];
    }
    return value;
  }

  /** Follows `$ref` (of responses, headers, path items…); `name` is the last component followed. */
  deref(value: unknown): { value: JsonObject; name: string | undefined } {
    let current = value;
    let name: string | undefined;
    for (let hops = 0; isObject(current) && typeof current.$ref === 'string'; hops++) {
      expect(hops, 'reference cycle').to.be.below(10);
      name = current.$ref.split('/').at(-1);
      current = this.resolve(current.$ref);
    }
    expect(isObject(current), 'an object').to.equal(true);
    return { value: current as JsonObject, name };
  }

  /** A copy of a schema whose component references point into the schema root ajv knows. */
  private rewrite<T>(schema: T): T {
    return JSON.parse(JSON.stringify(schema), (key, value: unknown) =>
      key === '$ref' && typeof value === 'string' && value.startsWith(SCHEMA_REF)
        ? `${ROOT}#/$defs/${value.slice(SCHEMA_REF.length)}`
        : value,
    ) as T;
  }

  /** Validation errors of `value` against a schema of the document (empty when valid). */
  errors(schema: unknown, value: unknown): string[] {
    const key = isObject(schema) ? schema : { schema };
    let validate = this.compiled.get(key);
    if (!validate) {
      validate = this.ajv.compile(isObject(schema) ? this.rewrite(schema) : (schema as boolean));
      this.compiled.set(key, validate);
    }
    if (validate(value)) return [];
    return (validate.errors ?? []).map(
      (e) => `${e.instancePath || '/'} ${e.message ?? ''} ${JSON.stringify(e.params)}`,
    );
  }

  /** A schema of components.schemas. */
  schema(name: string): JsonObject {
    const schema = this.section('schemas')[name];
    expect(isObject(schema), `schema ${name} is documented`).to.equal(true);
    return schema as JsonObject;
  }

  /** Path items of the document, references followed. */
  private pathItems(): [string, JsonObject][] {
    const paths = this.document.paths;
    return isObject(paths) ? Object.entries(paths).map(([path, item]) => [path, this.deref(item).value]) : [];
  }

  /** Every documented `METHOD path status`. */
  documentedTriples(): string[] {
    const out: string[] = [];
    for (const [path, item] of this.pathItems()) {
      for (const method of METHODS) {
        const operation = item[method];
        if (!isObject(operation) || !isObject(operation.responses)) continue;
        for (const status of Object.keys(operation.responses)) out.push(`${method.toUpperCase()} ${path} ${status}`);
      }
    }
    return out;
  }

  /** Documented triples no checked answer has exercised. */
  missingTriples(): string[] {
    return this.documentedTriples().filter((t) => !this.exercised.has(t));
  }

  /** Response components no checked answer has been validated against. */
  unusedResponses(): string[] {
    return Object.keys(this.section('responses')).filter((name) => !this.usedComponents.has(name));
  }

  /** Optional response headers documented on an exercised triple that no answer carried. */
  unseenOptionalHeaders(): string[] {
    return [...this.optionalHeaders].filter((h) => !this.seenHeaders.has(h));
  }

  /** Checks an answer to `method path` against the operation's documented response for its status; returns the parsed body. */
  check(method: string, path: string, answer: Answer): unknown {
    const item = this.pathItems().find(([p]) => p === path)?.[1];
    expect(item, `${path} is documented`).to.be.an('object');
    const operation = item![method.toLowerCase()];
    expect(isObject(operation), `${method} ${path} is documented`).to.equal(true);
    const responses = (operation as JsonObject).responses as JsonObject;
    const triple = `${method.toUpperCase()} ${path} ${answer.status}`;
    expect(responses, `${triple} is documented (answer: ${answer.text.slice(0, 300)})`).to.have.property(
      String(answer.status),
    );
    this.exercised.add(triple);
    return this.checkResponse(triple, responses[String(answer.status)], answer);
  }

  /** Checks an answer against a response component (for answers to paths the document does not list). */
  checkComponent(name: string, answer: Answer): unknown {
    const response = this.section('responses')[name];
    expect(isObject(response), `response ${name} is documented`).to.equal(true);
    return this.checkResponse(`${name} (${answer.status})`, { $ref: `#/components/responses/${name}` }, answer);
  }

  private checkResponse(label: string, documented: unknown, answer: Answer): unknown {
    const { value: response, name } = this.deref(documented);
    if (name !== undefined) this.usedComponents.add(name);
    const headers = isObject(response.headers) ? response.headers : {};
    for (const [headerName, headerDoc] of Object.entries(headers)) {
      if (headerName.toLowerCase() === 'content-type') continue;
      const header = this.deref(headerDoc).value;
      const value = answer.headers.get(headerName);
      const key = `${label} ${headerName}`;
      if (header.required === true) expect(value, `${label}: header ${headerName}`).to.be.a('string');
      else this.optionalHeaders.add(key);
      if (value === null) continue;
      this.seenHeaders.add(key);
      const schema = this.deref(header.schema ?? {}).value;
      const typed =
        (schema.type === 'integer' || schema.type === 'number') && /^-?\d+(\.\d+)?$/.test(value)
          ? Number(value)
          : value;
      expect(this.errors(header.schema, typed), `${label}: header ${headerName}: ${value}`).to.deep.equal([]);
    }
    const content = isObject(response.content) ? response.content : undefined;
    if (!content) {
      expect(answer.text, `${label}: no body documented`).to.equal('');
      return undefined;
    }
    const actualType = answer.headers.get('content-type') ?? '';
    const documentedType = Object.keys(content).find((t) => mediaTypeMatches(t, actualType));
    expect(documentedType, `${label}: content type ${actualType} is one of ${Object.keys(content).join(', ')}`).to.be.a(
      'string',
    );
    const media = content[documentedType!] as JsonObject;
    let body: unknown = answer.text;
    if (isJsonType(documentedType!)) {
      expect(() => (body = JSON.parse(answer.text)), `${label}: JSON body`).not.to.throw();
    }
    if (media.schema !== undefined)
      expect(this.errors(media.schema, body), `${label}: body ${answer.text.slice(0, 300)}`).to.deep.equal([]);
    return body;
  }

  /** Every example of the document with the schema it illustrates: media types, parameters, headers and schemas' `examples`. */
  examples(): DocumentExample[] {
    const out: DocumentExample[] = [];
    const media = (where: string, content: unknown): void => {
      if (!isObject(content)) return;
      for (const [type, m] of Object.entries(content)) {
        if (!isObject(m)) continue;
        if ('example' in m) out.push({ where: `${where} ${type}`, schema: m.schema, value: m.example });
        for (const [name, e] of Object.entries(isObject(m.examples) ? m.examples : {})) {
          out.push({ where: `${where} ${type} example ${name}`, schema: m.schema, value: this.deref(e).value.value });
        }
      }
    };
    const schemas = (where: string, schema: unknown): void => {
      if (!isObject(schema)) return;
      if (Array.isArray(schema.examples))
        schema.examples.forEach((value: unknown, i) => out.push({ where: `${where} examples[${i}]`, schema, value }));
      for (const k of SUBSCHEMA) schemas(`${where}/${k}`, schema[k]);
      for (const k of SUBSCHEMA_LISTS)
        if (Array.isArray(schema[k])) (schema[k] as unknown[]).forEach((s, i) => schemas(`${where}/${k}/${i}`, s));
      for (const k of SUBSCHEMA_MAPS)
        if (isObject(schema[k])) for (const [n, s] of Object.entries(schema[k])) schemas(`${where}/${k}/${n}`, s);
    };
    const withExample = (where: string, holder: unknown): void => {
      if (isObject(holder) && 'example' in holder) out.push({ where, schema: holder.schema, value: holder.example });
    };
    for (const [name, body] of Object.entries(this.section('requestBodies')))
      media(`requestBody ${name}`, this.deref(body).value.content);
    for (const [name, response] of Object.entries(this.section('responses')))
      media(`response ${name}`, this.deref(response).value.content);
    for (const [name, p] of Object.entries(this.section('parameters'))) withExample(`parameter ${name}`, p);
    for (const [name, h] of Object.entries(this.section('headers'))) withExample(`header ${name}`, h);
    for (const [name, s] of Object.entries(this.section('schemas'))) schemas(`schema ${name}`, s);
    for (const [path, item] of this.pathItems()) {
      for (const method of METHODS) {
        const operation = item[method];
        if (!isObject(operation) || !isObject(operation.responses)) continue;
        for (const [status, r] of Object.entries(operation.responses)) {
          if (isObject(r) && !('$ref' in r)) media(`${method.toUpperCase()} ${path} ${status}`, r.content);
        }
      }
    }
    return out;
  }
}
