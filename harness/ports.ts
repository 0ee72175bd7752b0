import { createServer } from 'node:net';

function listenOn(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(undefined));
    server.listen(port, '127.0.0.1', () => {
      const address = server.address();
      const got = typeof address === 'object' && address ? address.port : undefined;
      server.close(() => resolve(got));
    });
  });
}

/** `preferred` when it is free, else a port the OS chose (free at the time of the call). */
export async function freePort(preferred = 0): Promise<number> {
  const port = (preferred !== 0 ? await listenOn(preferred) : undefined) ?? (await listenOn(0));
  if (port === undefined) throw new Error('no free port on 127.0.0.1');
  return port;
}
