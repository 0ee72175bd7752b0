/**
 * Hostile and malformed requests to POST /form/, driven by the corpus in
 * test/hostile/*.json (format: test/hostile/README.md). Every case must get
 * its 4xx as problem+json with a detail naming the problem; nothing may be
 * queued; the server must keep serving with bounded memory.
 */
import { expect } from 'chai';
import { readdirSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { createWebService, type ServerLimits, type WebService } from '../services/web/service.ts';
import { jsonBody, post, sign, signV1 } from '../harness/http.ts';
import { queueCounts, startEmulator, type Emulator } from '../harness/sqs.ts';
import { createTestEnv, type TestEnv } from './support/stack.ts';
import { validForm } from '../harness/forms.ts';

const CORPUS = new URL('./hostile/', import.meta.url);
const LIMITS: Partial<ServerLimits> = { headersTimeoutMs: 250, requestTimeoutMs: 750 };
/** How long any one case may take, server timeouts included. */
const CASE_DEADLINE_MS = 5000;

// ---------------------------------------------------------------- corpus format

/** Bytes written as given: text, repeated text, hex or base64. */
type Part = string | { repeat: string; times: number } | { hex: string } | { base64: string };

type SignMode =
  | 'correct'
  | 'none'
  | 'truncated'
  | 'uppercase'
  | 'wrong-secret'
  | 'empty'
  | { path: string }
  | { body: string }
  | { secret: string }
  | { value: string }
  | { v1: V1Sign };

/** A v1 signature (X-Form-Signature) over the request as sent, with any of its inputs replaced. */
interface V1Sign {
  /** Seconds added to now for the timestamp. */
  offset?: number;
  secret?: string;
  method?: string;
  path?: string;
  body?: string;
  contentType?: string;
  /** The Idempotency-Key signed (default: the one sent). */
  key?: string;
  /** Also send this legacy X-Signature: `correct` or a value. */
  legacy?: string;
}

interface DataSpec {
  /** Fields replacing those of the valid form; a value {"$raw": Part[]} is written verbatim as JSON text. */
  set?: Record<string, unknown>;
  omit?: string[];
  /** How `data` is sent: a JSON object (default), a JSON string holding one, or form-encoded data=<JSON>. */
  as?: 'object' | 'string' | 'form';
}

interface Case {
  name: string;
  method?: string;
  path?: string;
  /** Headers on top of Content-Type: application/json; null removes one. */
  headers?: Record<string, string | null>;
  body?: string;
  bodyBase64?: string;
  bodyParts?: Part[];
  json?: unknown;
  data?: DataSpec;
  sign?: SignMode;
  /** Raw-socket cases: the request bytes exactly, then optionally one byte of `drip` per `everyMs` until the server answers. */
  raw?: { parts: Part[]; drip?: { text: string; everyMs: number; whole?: boolean }; end?: boolean };
  status: number;
  detail: string;
}

interface Family {
  family: string;
  vary: Record<string, unknown[]>;
  case: Case;
}

interface CorpusFile {
  description: string;
  cases?: Case[];
  families?: Family[];
}

/** Replaces $name placeholders: a string that is exactly one stands for the value itself, elsewhere for its text. */
function substitute(value: unknown, vars: Record<string, unknown>): unknown {
  if (typeof value === 'string') {
    const whole = /^\$(\w+)$/.exec(value);
    if (whole && whole[1]! in vars) return vars[whole[1]!];
    return value.replace(/\$(\w+)/g, (m, name: string) =>
      name in vars ? (typeof vars[name] === 'string' ? (vars[name] as string) : JSON.stringify(vars[name])) : m,
    );
  }
  if (Array.isArray(value)) return value.map((v) => substitute(v, vars));
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [substitute(k, vars) as string, substitute(v, vars)]),
    );
  }
  return value;
}

function expand(family: Family): Case[] {
  let combos: Record<string, unknown>[] = [{}];
  for (const [name, values] of Object.entries(family.vary))
    combos = combos.flatMap((c) => values.map((v) => ({ ...c, [name]: v })));
  return combos.map((vars) => substitute(family.case, vars) as Case);
}

function loadCorpus(): { file: string; cases: Case[] }[] {
  return readdirSync(CORPUS)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => {
      const content = JSON.parse(readFileSync(new URL(file, CORPUS), 'utf8')) as CorpusFile;
      return { file, cases: [...(content.cases ?? []), ...(content.families ?? []).flatMap(expand)] };
    });
}

function partBytes(part: Part): Buffer {
  if (typeof part === 'string') return Buffer.from(part, 'utf8');
  if ('repeat' in part) return Buffer.from(part.repeat.repeat(part.times), 'utf8');
  if ('hex' in part) return Buffer.from(part.hex.replace(/\s+/g, ''), 'hex');
  return Buffer.from(part.base64, 'base64');
}

const concat = (parts: Part[]): Buffer => Buffer.concat(parts.map(partBytes));

/** JSON text of a value whose {"$raw": parts} members are written verbatim, as bytes. */
function jsonWithRaw(value: unknown): Buffer {
  const fragments: Buffer[] = [];
  const text = JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === 'object' && v !== null && !Array.isArray(v) && '$raw' in v) {
      fragments.push(concat((v as { $raw: Part[] }).$raw));
      return `__RAW_${fragments.length - 1}__`;
    }
    return v;
  });
  const pieces = text.split(/"__RAW_(\d+)__"/);
  return Buffer.concat(
    pieces.map((piece, i) => (i % 2 === 1 ? fragments[Number(piece)]! : Buffer.from(piece, 'utf8'))),
  );
}

/** application/x-www-form-urlencoded encoding of bytes (not only of well-formed text). */
function percentEncode(bytes: Buffer): string {
  let out = '';
  for (const b of bytes)
    out += /[A-Za-z0-9\-_.!~*'()]/.test(String.fromCharCode(b))
      ? String.fromCharCode(b)
      : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  return out;
}

function bodyOf(c: Case): Buffer {
  if (c.body !== undefined) return Buffer.from(c.body, 'utf8');
  if (c.bodyBase64 !== undefined) return Buffer.from(c.bodyBase64, 'base64');
  if (c.bodyParts !== undefined) return concat(c.bodyParts);
  if (c.json !== undefined) return jsonWithRaw(c.json);
  if (c.data !== undefined) {
    const form = validForm(c.data.set ?? {});
    for (const key of c.data.omit ?? []) delete form[key];
    const json = jsonWithRaw(form);
    if (c.data.as === 'form') return Buffer.from(`data=${percentEncode(json)}`, 'latin1');
    // A JSON string holding the form: raw bytes that are not UTF-8 cannot be carried this way.
    if (c.data.as === 'string') return Buffer.from(JSON.stringify({ data: json.toString('utf8') }), 'utf8');
    return Buffer.concat([Buffer.from('{"data":'), json, Buffer.from('}')]);
  }
  return Buffer.alloc(0);
}

/** The headers a case's signature adds. */
function signatureHeaders(
  c: Case,
  path: string,
  body: Buffer,
  headers: Record<string, string>,
): Record<string, string> {
  const mode = c.sign ?? 'correct';
  if (typeof mode === 'object' && 'v1' in mode) {
    const v1 = mode.v1;
    const value = signV1(
      {
        method: v1.method ?? c.method ?? 'POST',
        path: v1.path ?? path,
        body: v1.body ?? body,
        contentType: v1.contentType ?? headers['content-type'],
        key: v1.key ?? headers['idempotency-key'],
      },
      { timestamp: Math.floor(Date.now() / 1000) + (v1.offset ?? 0), secret: v1.secret },
    );
    const headersOut: Record<string, string> = { 'x-form-signature': value };
    if (v1.legacy !== undefined) headersOut['x-signature'] = v1.legacy === 'correct' ? sign(path, body) : v1.legacy;
    return headersOut;
  }
  const legacy = signatureOf(mode, path, body);
  return legacy === undefined ? {} : { 'x-signature': legacy };
}

function signatureOf(mode: Exclude<SignMode, { v1: V1Sign }>, path: string, body: Buffer): string | undefined {
  if (mode === 'none') return undefined;
  if (mode === 'correct') return sign(path, body);
  if (mode === 'truncated') return sign(path, body).slice(0, 32);
  if (mode === 'uppercase') return sign(path, body).toUpperCase();
  if (mode === 'wrong-secret') return sign(path, body, 'not-the-secret');
  if (mode === 'empty') return '';
  if ('path' in mode) return sign(mode.path, body);
  if ('body' in mode) return sign(path, mode.body);
  if ('secret' in mode) return sign(path, body, mode.secret);
  return mode.value;
}

// ---------------------------------------------------------------- transport

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

function sendHttp(port: number, c: Case): Promise<Answer> {
  const path = c.path ?? '/form/';
  const body = bodyOf(c);
  const headers: Record<string, string> = {
    'content-type': c.data?.as === 'form' ? 'application/x-www-form-urlencoded' : 'application/json',
    'content-length': String(body.length),
  };
  for (const [k, v] of Object.entries(c.headers ?? {})) {
    if (v === null) delete headers[k.toLowerCase()];
    else headers[k.toLowerCase()] = v;
  }
  for (const [name, value] of Object.entries(signatureHeaders(c, path, body, headers)))
    if (!(name in headers)) headers[name] = value;
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method: c.method ?? 'POST', path, headers, agent: false, timeout: CASE_DEADLINE_MS },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${CASE_DEADLINE_MS} ms`)));
    req.on('error', reject);
    // A server refusing early may close while the body is still being written: the answer still counts.
    req.end(body);
  });
}

/** Writes raw bytes and reads one HTTP response (Content-Length delimited, or up to close). */
function sendRaw(port: number, c: Case): Promise<Answer> {
  const raw = c.raw!;
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const received: Buffer[] = [];
    let drip: NodeJS.Timeout | undefined;
    let settled = false;
    const finish = (error?: Error): void => {
      if (settled) return;
      const answer = parseResponse(Buffer.concat(received));
      if (!answer && !error && !socket.destroyed) return;
      settled = true;
      clearInterval(drip);
      clearTimeout(deadline);
      socket.destroy();
      if (answer) resolve(answer);
      else
        reject(
          error ??
            new Error(
              `connection closed without a complete response: ${JSON.stringify(Buffer.concat(received).toString('latin1').slice(0, 200))}`,
            ),
        );
    };
    const deadline = setTimeout(() => finish(new Error(`no answer within ${CASE_DEADLINE_MS} ms`)), CASE_DEADLINE_MS);
    socket.on('data', (d: Buffer) => {
      received.push(d);
      finish();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => finish());
    socket.on('connect', () => {
      socket.write(concat(raw.parts));
      if (raw.drip) {
        let i = 0;
        const text = raw.drip.text;
        const whole = raw.drip.whole ?? false;
        drip = setInterval(() => {
          if (socket.writable) socket.write(whole ? text : text[i++ % text.length]!);
        }, raw.drip.everyMs);
      } else if (raw.end) {
        socket.end();
      }
    });
  });
}

function parseResponse(bytes: Buffer): Answer | undefined {
  const end = bytes.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const head = bytes.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head[0] ?? '')?.[1]);
  const headers: Record<string, string> = {};
  for (const line of head.slice(1)) {
    const i = line.indexOf(':');
    headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  const length = Number(headers['content-length']);
  const body = bytes.subarray(end + 4);
  if (!Number.isFinite(length) || body.length < length) return undefined;
  return { status, headers, text: body.subarray(0, length).toString('utf8') };
}

// ---------------------------------------------------------------- the test

const corpus = loadCorpus();

describe('hostile input to POST /form/ (corpus test/hostile/)', function () {
  let emulator: Emulator;
  let t: TestEnv;
  let web: WebService;
  let port: number;
  let formUrl: string;
  let rssBefore: number;

  before(async () => {
    emulator = await startEmulator();
    t = await createTestEnv(
      emulator.endpoint,
      { LOG_LEVEL: process.env.HOSTILE_LOG_LEVEL ?? 'silent' },
      { migrate: false },
    );
    web = await createWebService(t.config, { limits: LIMITS });
    port = await web.listen();
    formUrl = (await t.queueUrls()).form;
    rssBefore = process.memoryUsage().rss;
  });
  after(async () => {
    await web?.stop();
    await t?.cleanup();
    await emulator?.stop();
  });

  it('has at least 200 cases with unique names, each expecting a 4xx', () => {
    const all = corpus.flatMap((f) => f.cases);
    expect(all.length).to.be.at.least(200);
    const names = all.map((c) => c.name);
    expect(names.filter((n, i) => names.indexOf(n) !== i)).to.deep.equal([]);
    for (const c of all) {
      expect(c.status, c.name).to.be.within(400, 499);
      expect(c.detail, c.name).to.be.a('string').and.not.equal('');
    }
  });

  for (const { file, cases } of corpus) {
    describe(file, () => {
      for (const c of cases) {
        it(`${c.name} → ${c.status}`, async () => {
          const answer = c.raw ? await sendRaw(port, c) : await sendHttp(port, c);
          expect(answer.status, answer.text).to.equal(c.status);
          expect(String(answer.headers['content-type'])).to.match(/^application\/problem\+json/);
          const problem = JSON.parse(answer.text) as Record<string, unknown>;
          expect(problem).to.include({ type: 'about:blank', status: c.status });
          expect(problem.title).to.be.a('string');
          expect(problem.detail, answer.text).to.be.a('string').and.include(c.detail);
          expect(answer.text).not.to.match(/\bat .+:\d+:\d+|\.ts\b|node_modules|node:internal|Error:|stack/i);
          if (c.status === 405) expect(answer.headers.allow).to.be.a('string');
        });
      }
    });
  }

  describe('afterwards', () => {
    it('queued nothing', async () => {
      expect(await queueCounts(t.sqs, formUrl)).to.deep.equal({ visible: 0, inFlight: 0, delayed: 0 });
    });

    it('still serves: health, and a valid submission gets 202', async () => {
      expect((await fetch(`http://127.0.0.1:${port}/healthz/ready`)).status).to.equal(200);
      const reply = await post(`http://127.0.0.1:${port}`, '/form/', jsonBody(validForm()));
      expect(reply.status, reply.text).to.equal(202);
      expect((await queueCounts(t.sqs, formUrl)).visible).to.equal(1);
    });

    it('kept memory bounded', () => {
      const growth = process.memoryUsage().rss - rssBefore;
      expect(growth, `rss grew by ${Math.round(growth / 1e6)} MB`).to.be.below(150e6);
    });
  });
});
