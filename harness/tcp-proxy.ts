/**
 * A TCP proxy on an ephemeral port that a test can make fail the ways a
 * network fails, to reach PostgreSQL or SQS through it:
 *
 * - loud: `cut` refuses and drops connections; `loseAnswers` lets a request
 *   reach the target and be handled, then drops the first bytes of its answer
 *   and resets the connection;
 * - silent: `blackhole` accepts connections and passes nothing either way, as
 *   a partition where packets vanish; `stallAnswers` passes the first bytes of
 *   each answer and then nothing more. Nothing is closed or reset: only the
 *   client's own timeouts end the wait. `heal` lets the held bytes through, as
 *   TCP retransmits them once the path is back.
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
  /**
   * From now on nothing passes either way on any connection, open or new;
   * new connections are accepted (the target is not dialled until `heal`).
   */
  blackhole(): void;
  /**
   * From now on each answer stops after its first `bytes` bytes (the first
   * answer under way included): the rest is held, the connection stays open.
   */
  stallAnswers(bytes: number): void;
  /** Ends `blackhole` and `stallAnswers`: what was held flows on. */
  heal(): void;
  /** Connections that met a silent fault (accepted or held while silent) so far. */
  readonly silenced: number;
  close(): Promise<void>;
}

interface Link {
  client: Socket;
  /** Undefined until dialled (connections accepted during a blackhole wait for `heal`). */
  upstream?: Socket;
  /** Bytes of the current answer passed so far. */
  answered: number;
  awaitingAnswer: boolean;
  /** Held answer bytes beyond a stall, passed on `heal`. */
  held: Buffer[];
  silenced: boolean;
}

/** Starts a proxy to `targetHost:targetPort` listening on `listenHost` (default 127.0.0.1) at an ephemeral port. */
export async function startTcpProxy(
  targetHost: string,
  targetPort: number,
  options: { listenHost?: string } = {},
): Promise<TcpProxy> {
  let down = false;
  let silent = false;
  let stallAfter: number | undefined;
  let lose: (() => boolean) | undefined;
  let lost = 0;
  let silenced = 0;
  const sockets = new Set<Socket>();
  const links = new Set<Link>();

  const noteSilenced = (link: Link): void => {
    if (!link.silenced) {
      link.silenced = true;
      silenced += 1;
    }
  };

  const dial = (link: Link): void => {
    const { client } = link;
    const upstream = connect(targetPort, targetHost);
    link.upstream = upstream;
    sockets.add(upstream);
    upstream.on('error', () => drop(link)).on('close', () => drop(link));
    client.on('data', (chunk: Buffer) => {
      link.awaitingAnswer = true;
      link.answered = 0;
      if (!upstream.write(chunk)) client.pause();
    });
    upstream.on('drain', () => {
      if (!silent) client.resume();
    });
    upstream.on('data', (chunk: Buffer) => {
      if (link.awaitingAnswer && lose?.()) {
        lost += 1;
        drop(link);
        return;
      }
      link.awaitingAnswer = false;
      let pass = chunk;
      if (stallAfter !== undefined) {
        const room = Math.max(0, stallAfter - link.answered);
        if (room < chunk.length) {
          pass = chunk.subarray(0, room);
          link.held.push(chunk.subarray(room));
          upstream.pause();
          noteSilenced(link);
        }
      }
      link.answered += pass.length;
      if (pass.length > 0 && !client.write(pass)) upstream.pause();
    });
    client.on('drain', () => {
      if (!silent && link.held.length === 0) upstream.resume();
    });
    client.on('end', () => upstream.end());
    upstream.on('end', () => {
      if (link.held.length === 0) client.end();
    });
    if (silent) silence(link);
    else client.resume();
  };

  const silence = (link: Link): void => {
    noteSilenced(link);
    link.client.pause();
    link.upstream?.pause();
  };

  const drop = (link: Link): void => {
    links.delete(link);
    sockets.delete(link.client);
    link.client.destroy();
    if (link.upstream) {
      sockets.delete(link.upstream);
      link.upstream.destroy();
    }
  };

  const server: Server = createServer({ pauseOnConnect: true }, (client) => {
    if (down) return client.destroy();
    const link: Link = { client, answered: 0, awaitingAnswer: false, held: [], silenced: false };
    links.add(link);
    sockets.add(client);
    client.on('error', () => drop(link)).on('close', () => drop(link));
    if (silent) noteSilenced(link);
    else dial(link);
  });
  await new Promise<void>((resolve) => server.listen(0, options.listenHost ?? '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    port,
    cut() {
      down = true;
      for (const s of sockets) s.destroy();
      sockets.clear();
      links.clear();
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
    blackhole() {
      silent = true;
      for (const link of links) silence(link);
    },
    stallAnswers(bytes) {
      stallAfter = bytes;
      for (const link of links) {
        // An answer under way counts from now.
        if (!link.awaitingAnswer) link.answered = 0;
      }
    },
    heal() {
      silent = false;
      stallAfter = undefined;
      for (const link of [...links]) {
        if (!link.upstream) {
          dial(link);
          continue;
        }
        const held = link.held.splice(0);
        for (const chunk of held) link.client.write(chunk);
        if (link.upstream.readableEnded && held.length > 0) link.client.end();
        link.client.resume();
        link.upstream.resume();
      }
    },
    get silenced() {
      return silenced;
    },
    close() {
      down = true;
      for (const s of sockets) s.destroy();
      links.clear();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
