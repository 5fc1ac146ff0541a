import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';

// Serves a registry at /metrics for Prometheus; anything else is a 404.

export async function serveMetrics(registry: Registry, listen: string): Promise<{ server: Server; url: string }> {
  const idx = listen.lastIndexOf(':');
  const host = listen.slice(0, idx).replace(/^\[|\]$/g, '');
  const port = Number(listen.slice(idx + 1));
  const server = createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end('not found: try /metrics\n');
      return;
    }
    registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
      (err: unknown) => res.writeHead(500).end(String(err)),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  const actualPort = typeof addr === 'object' && addr ? addr.port : port;
  const hostPart = host.includes(':') ? `[${host}]` : host;
  return { server, url: `http://${hostPart}:${actualPort}/metrics` };
}
