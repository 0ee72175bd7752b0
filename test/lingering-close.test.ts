/**
 * An over-limit body answered 413 to clients that write the whole request
 * before reading (RFC 9112 §9.6 lingering close): Python's urllib in a child
 * process, and a raw socket that writes everything and reads only afterwards.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { setTimeout as paceWrites } from 'node:timers/promises';
import { promisify } from 'node:util';
import { createWebService, type WebService } from '../services/web/service.ts';
import { sign } from '../harness/http.ts';
import { useEmulator } from './support/emulator.ts';
import { createTestEnv, type TestEnv } from './support/stack.ts';
import { requireTool, TOOLS } from './support/tools.ts';

const run = promisify(execFile);

/**
 * How the clients send a body: in pieces of PIECE_BYTES, PIECE_GAP_MS apart, as over a real network, so
 * that the server answers long before the body is all sent. The gap is the client behaviour under test,
 * not a wait for something to happen: the tests wait on the answer, never on time.
 */
const PIECE_BYTES = 65536;
const PIECE_GAP_MS = 2;

/** Writes `payload` paced as PIECE_BYTES pieces PIECE_GAP_MS apart; resolves once all is written. */
async function writeSlowly(socket: Socket, payload: Buffer): Promise<void> {
  for (let i = 0; i < payload.length; i += PIECE_BYTES) {
    await paceWrites(PIECE_GAP_MS);
    if (!socket.write(payload.subarray(i, i + PIECE_BYTES))) await once(socket, 'drain');
  }
}

/**
 * Posts `size` bytes with urllib, which writes the whole body before it reads
 * the answer; paced as writeSlowly (piece size and gap in ms as arguments).
 * Prints status and body.
 */
const URLLIB = `
import json, sys, time, urllib.request, urllib.error
url, size, signature = sys.argv[1], int(sys.argv[2]), sys.argv[3]
piece, gap_ms = int(sys.argv[4]), int(sys.argv[5])
body = b'{"data":"' + b'x' * (size - 11) + b'"}'
def pieces():
    for i in range(0, len(body), piece):
        time.sleep(gap_ms / 1000)
        yield body[i:i + piece]
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
          String(PIECE_BYTES),
          String(PIECE_GAP_MS),
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
