/**
 * An over-limit body answered 413 to clients that write the whole request
 * before reading (RFC 9112 §9.6 lingering close): Python's urllib in a child
 * process, and a raw socket that writes everything and reads only afterwards.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { createWebService, type WebService } from '../services/web/service.ts';
import { sign } from '../harness/http.ts';
import { useEmulator } from './support/emulator.ts';
import { createTestEnv, type TestEnv } from './support/stack.ts';
import { requireTool, TOOLS } from './support/tools.ts';

const run = promisify(execFile);

/** Writes `payload` in 64 KiB pieces 2 ms apart; resolves once all is written. */
async function writeSlowly(socket: Socket, payload: Buffer): Promise<void> {
  for (let i = 0; i < payload.length; i += 65536) {
    await sleep(2);
    if (!socket.write(payload.subarray(i, i + 65536))) await once(socket, 'drain');
  }
}

/**
 * Posts `size` bytes with urllib, which writes the whole body before it reads
 * the answer; in 64 KiB pieces 2 ms apart, as over a real network, so the
 * server has answered long before the body is all sent. Prints status and body.
 */
const URLLIB = `
import json, sys, time, urllib.request, urllib.error
url, size, signature = sys.argv[1], int(sys.argv[2]), sys.argv[3]
body = b'{"data":"' + b'x' * (size - 11) + b'"}'
def pieces():
    for i in range(0, len(body), 65536):
        time.sleep(0.002)
        yield body[i:i + 65536]
headers = {'Content-Type': 'application/json', 'Content-Length': str(len(body)), 'X-Signature': signature}
request = urllib.request.Request(url, data=pieces(), method='POST', headers=headers)
try:
    with urllib.request.urlopen(request, timeout=20) as answer:
        print(json.dumps({'status': answer.status, 'body': answer.read().decode()}))
except urllib.error.HTTPError as error:
    print(json.dumps({'status': error.code, 'body': error.read().decode()}))
`;

describe('over-limit bodies: a 413 the client can read (lingering close)', function () {
  this.timeout(60_000);
  const emulator = useEmulator();
  let t: TestEnv;
  let web: WebService;
  let port: number;
  before(async () => {
    t = await createTestEnv(emulator.endpoint, {}, { migrate: false });
    web = await createWebService(t.config);
    port = await web.listen();
  });
  after(async () => {
    await web?.stop();
    await t?.cleanup();
  });

  const body = (size: number): Buffer =>
    Buffer.concat([Buffer.from('{"data":"'), Buffer.alloc(size - 11, 'x'), Buffer.from('"}')]);

  for (const size of [3_000_000, 300_000]) {
    it(`Python urllib posting ${size.toLocaleString('en')} bytes reads the 413 problem (3 tries)`, async function () {
      const python = await requireTool(this, TOOLS.python3);
      for (let i = 0; i < 3; i++) {
        const { stdout } = await run(python, [
          '-c',
          URLLIB,
          `http://127.0.0.1:${port}/form/`,
          String(size),
          sign('/form/', body(size)),
        ]);
        const answer = JSON.parse(stdout) as { status: number; body: string };
        expect(answer.status, `try ${i}: ${stdout}`).to.equal(413);
        expect(JSON.parse(answer.body)).to.include({ status: 413, detail: 'request body is larger than 65536 bytes' });
      }
    });
  }

  it('a raw socket that writes 3 MB and then reads gets the whole 413, not a reset', async () => {
    const payload = body(3_000_000);
    const head = `POST /form/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${payload.length}\r\nX-Signature: ${sign('/form/', payload)}\r\n\r\n`;
    const received = await new Promise<string>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      const chunks: Buffer[] = [];
      socket.pause();
      socket.on('error', reject);
      socket.on('connect', () => {
        socket.write(head);
        void writeSlowly(socket, payload).then(() => {
          // Only now start reading, as such a client does.
          socket.on('data', (d: Buffer) => {
            chunks.push(d);
            const text = Buffer.concat(chunks).toString('utf8');
            const end = text.indexOf('\r\n\r\n');
            const length = Number(/content-length: (\d+)/i.exec(text)?.[1]);
            if (end >= 0 && Buffer.byteLength(text.slice(end + 4)) >= length) {
              socket.destroy();
              resolve(text);
            }
          });
          socket.resume();
        });
      });
      socket.on('close', () => reject(new Error(`closed after ${Buffer.concat(chunks).length} bytes`)));
    });
    expect(received).to.match(/^HTTP\/1\.1 413 /);
    expect(received).to.contain('request body is larger than 65536 bytes');
  });
});
