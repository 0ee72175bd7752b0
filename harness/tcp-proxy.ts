/**
 * A TCP proxy on an ephemeral port that a test can cut (refusing and dropping
 * connections) and restore, to make PostgreSQL or SQS unreachable for real, or
 * make lose answers: the request reaches the target and is handled, the first
 * bytes of its answer are dropped and the connection is reset.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  port: number;
  /** Drops every connection and refuses new ones until restored. */
  cut(): void;
  restore(): void;
  /**
   * From now on, asks `lose` at the start of each answer (the first bytes from
   * the target after bytes from the client); true drops that answer and resets
   * the client's connection. One request at a time per connection (HTTP/1.1
   * without pipelining) makes each such start one answer.
   */
  loseAnswers(lose: () => boolean): void;
  /** Passes every answer again. */
  keepAnswers(): void;
  /** Answers lost so far. */
  readonly lost: number;
  close(): Promise<void>;
}

/** Starts a proxy to targetHost:targetPort on an ephemeral port of `listenHost` (default 127.0.0.1). */
export async function startTcpProxy(
  targetHost: string,
  targetPort: number,
  listenHost = '127.0.0.1',
): Promise<TcpProxy> {
  let down = false;
  let lose: (() => boolean) | undefined;
  let lost = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    if (down) return client.destroy();
    const upstream = connect(targetPort, targetHost);
    sockets.add(client);
    sockets.add(upstream);
    const cleanup = (): void => {
      sockets.delete(client);
      sockets.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', cleanup).on('close', cleanup);
    upstream.on('error', cleanup).on('close', cleanup);
    let awaitingAnswer = false;
    client.on('data', (chunk: Buffer) => {
      awaitingAnswer = true;
      if (!upstream.write(chunk)) client.pause();
    });
    upstream.on('drain', () => client.resume());
    upstream.on('data', (chunk: Buffer) => {
      if (awaitingAnswer && lose?.()) {
        lost += 1;
        cleanup();
        return;
      }
      awaitingAnswer = false;
      if (!client.write(chunk)) upstream.pause();
    });
    client.on('drain', () => upstream.resume());
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
  });
  await new Promise<void>((resolve) => server.listen(0, listenHost, resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    port,
    cut() {
      down = true;
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    restore() {
      down = false;
    },
    loseAnswers(decide) {
      lose = decide;
    },
    keepAnswers() {
      lose = undefined;
    },
    get lost() {
      return lost;
    },
    close() {
      down = true;
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
