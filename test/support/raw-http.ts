/**
 * Raw-socket HTTP requests, for answers only a hand-written request can get
 * (malformed requests, slow clients, oversized headers, CONNECT).
 */
import { connect } from 'node:net';

/** One HTTP answer, whatever sent the request. */
export interface Answer {
  status: number;
  headers: Headers;
  text: string;
}

/** Writes `request` as given and reads one response (Content-Length delimited, or up to close); rejects after `timeoutMs`. */
export function rawRequest(port: number, request: string | Buffer, timeoutMs = 5000): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const received: Buffer[] = [];
    let settled = false;
    const finish = (closed: boolean): void => {
      if (settled) return;
      const answer = parseResponse(Buffer.concat(received), closed);
      if (!answer && !closed) return;
      settled = true;
      clearTimeout(deadline);
      socket.destroy();
      if (answer) resolve(answer);
      else
        reject(
          new Error(
            `connection closed without a complete response: ${JSON.stringify(Buffer.concat(received).toString('latin1').slice(0, 200))}`,
          ),
        );
    };
    const deadline = setTimeout(() => {
      if (settled) return;
      settled = true;
      socket.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      received.push(chunk);
      finish(false);
    });
    // A server refusing early may reset the connection while the request is still being written.
    socket.on('error', () => undefined);
    socket.on('close', () => finish(true));
    socket.on('connect', () => socket.write(request));
  });
}

function parseResponse(bytes: Buffer, closed: boolean): Answer | undefined {
  const end = bytes.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const lines = bytes.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1]);
  const headers = new Headers();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  const body = bytes.subarray(end + 4);
  const length = headers.has('content-length') ? Number(headers.get('content-length')) : undefined;
  if (length === undefined ? !closed : body.length < length) return undefined;
  return { status, headers, text: body.subarray(0, length ?? body.length).toString('utf8') };
}
