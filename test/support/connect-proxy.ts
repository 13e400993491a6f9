/**
 * A forward proxy as HTTP(S)_PROXY names one, as corporate proxies are: it answers `CONNECT
 * host:port` by opening a TCP connection there and tunnelling bytes both ways (what
 * `https-proxy-agent` asks for, plain HTTP included: the GCS client's uploads), and forwards a
 * request for an absolute URL (`GET http://host/path`: what `http-proxy-agent` sends, the GCS
 * client's other requests to a plain-HTTP server). It counts both, so a test can tell its
 * requests went through it.
 */
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';

export interface ConnectProxy {
  /** `http://127.0.0.1:<port>`, the value for HTTP_PROXY. */
  url: string;
  /** Tunnels opened so far. */
  tunnels(): number;
  /** Requests for absolute URLs forwarded so far. */
  forwarded(): number;
  close(): Promise<void>;
}

export async function startConnectProxy(): Promise<ConnectProxy> {
  let tunnels = 0;
  let forwarded = 0;
  const open = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    forwarded++;
    const out = http.request(new URL(req.url ?? ''), { method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    out.on('error', () => res.destroy());
    req.pipe(out);
  });
  server.on('connection', (socket: net.Socket) => {
    open.add(socket);
    socket.on('close', () => open.delete(socket));
  });
  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    const [host, port] = (req.url ?? '').split(':');
    const upstream = net.connect(Number(port), host, () => {
      tunnels++;
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    // The client's socket is tracked as every connection is (above).
    open.add(upstream);
    upstream.on('close', () => open.delete(upstream));
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    tunnels: () => tunnels,
    forwarded: () => forwarded,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of open) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
