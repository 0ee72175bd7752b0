/** Signed requests to the web, as the registration UI sends them. */
import { createHash } from 'node:crypto';
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

/** POSTs `body` to `path`, signed unless `signature` is given (null: no header); `headers` are added. */
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
  } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.type !== null) headers['content-type'] = options.type ?? 'application/json';
  const signature = options.signature === undefined ? sign(path, body, options.secret) : options.signature;
  if (signature !== null) headers['x-signature'] = signature;
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
