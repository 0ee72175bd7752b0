/** Signed requests to the web, as the registration UI sends them (legacy) or as v1 clients do. */
import { createHash, createHmac } from 'node:crypto';
import { TEST_SECRET } from './forms.ts';

export interface Reply {
  status: number;
  headers: Headers;
  body: unknown;
  text: string;
}

/** Hex SHA-256 of path + body + secret, written out here rather than imported from the service. */
export function sign(path: string, body: Buffer | string, secret = TEST_SECRET): string {
  return createHash('sha256')
    .update(Buffer.concat([Buffer.from(path), Buffer.from(body), Buffer.from(secret)]))
    .digest('hex');
}

/**
 * The v1 `X-Form-Signature` value (docs/security.md), written out here rather
 * than imported from the service: HMAC-SHA256 over form-data-v1, the
 * timestamp, method, path with query, Content-Type, Idempotency-Key and the
 * body's hex SHA-256, one per line.
 */
export function signV1(
  request: { method?: string; path: string; body: Buffer | string; contentType?: string; key?: string },
  options: { timestamp?: number; secret?: string } = {},
): string {
  const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000);
  const payload = [
    'form-data-v1',
    String(timestamp),
    (request.method ?? 'POST').toUpperCase(),
    request.path,
    (request.contentType ?? '').trim().toLowerCase(),
    (request.key ?? '').trim(),
    createHash('sha256').update(Buffer.from(request.body)).digest('hex'),
  ].join('\n');
  return `t=${timestamp},v1=${createHmac('sha256', options.secret ?? TEST_SECRET)
    .update(payload)
    .digest('hex')}`;
}

/**
 * POSTs `body` to `path`, signed (legacy `X-Signature`, or with `scheme: 'v1'`
 * `X-Form-Signature` over the headers given) unless `signature` is given
 * (null: no header); `headers` are added.
 */
export async function post(
  base: string,
  path: string,
  body: Buffer | string,
  options: {
    type?: string | null;
    signature?: string | null;
    secret?: string;
    method?: string;
    headers?: Record<string, string>;
    scheme?: 'legacy' | 'v1';
    /** v1: the signature's time, unix seconds. Default: now. */
    timestamp?: number;
  } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.type !== null) headers['content-type'] = options.type ?? 'application/json';
  if (options.scheme === 'v1') {
    const key = Object.entries(headers).find(([k]) => k.toLowerCase() === 'idempotency-key')?.[1];
    const signature =
      options.signature === undefined
        ? signV1(
            { method: options.method, path, body, contentType: headers['content-type'], key },
            { timestamp: options.timestamp, secret: options.secret },
          )
        : options.signature;
    if (signature !== null) headers['x-form-signature'] = signature;
  } else {
    const signature = options.signature === undefined ? sign(path, body, options.secret) : options.signature;
    if (signature !== null) headers['x-signature'] = signature;
  }
  const res = await fetch(base + path, {
    method: options.method ?? 'POST',
    headers,
    body: typeof body === 'string' ? body : new Uint8Array(body),
  });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = text;
  }
  return { status: res.status, headers: res.headers, body: parsed, text };
}

/** A JSON form submission `{ "data": form }`. */
export function jsonBody(form: unknown): string {
  return JSON.stringify({ data: form });
}

/** A form-encoded submission `data=<JSON string>`, as the existing UI posts it. */
export function formEncodedBody(form: unknown): string {
  return new URLSearchParams({ data: JSON.stringify(form) }).toString();
}
