// A closed-loop HTTP/1.1 load generator on raw sockets, as autocannon and wrk are: `connections` keep-alive
// connections, each with one request in flight, requests serialised once, answers framed by
// Content-Length and never parsed unless asked. node:http's client costs more per request than a small
// server does per answer, so with it the client, not the server, is what gets measured.
import { connect } from 'node:net';

const CRLF2 = Buffer.from('\r\n\r\n');

/** The bytes of one POST with a JSON body. */
export function postRequest(host, port, path, body, headers = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  const head = [`POST ${path} HTTP/1.1`, `host: ${host}:${port}`, 'content-type: application/json', `content-length: ${Buffer.byteLength(text)}`];
  for (const [k, v] of Object.entries(headers)) head.push(`${k}: ${v}`);
  return Buffer.from(`${head.join('\r\n')}\r\n\r\n${text}`);
}

/** The status and Content-Length of a response head in `buf` (ASCII), or null while it is incomplete. */
function frame(buf) {
  const end = buf.indexOf(CRLF2);
  if (end < 0) return null;
  const head = buf.toString('latin1', 0, end);
  const status = Number(head.slice(9, 12));
  const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  if (!m) throw new Error(`answer without content-length (chunked answers are not supported): ${head.split('\r\n')[0]}`);
  return { status, bodyStart: end + 4, total: end + 4 + Number(m[1]) };
}

/**
 * Runs for `durationMs` (or until `requests` answers): `next()` gives each request's bytes (a Buffer, so a
 * fixed request costs nothing to make), `onAnswer(status, body)` (optional) sees each answer, whose body is
 * only sliced when it is given. Resolves to { answers, seconds, rate, latenciesMs, statuses }.
 */
export async function load({ host = '127.0.0.1', port, connections = 64, durationMs = 5_000, requests = Infinity, next, onAnswer }) {
  const latencies = [];
  const statuses = new Map();
  let answers = 0;
  let started = 0;
  const t0 = performance.now();
  const deadline = t0 + durationMs;
  const one = () =>
    new Promise((resolve, reject) => {
      const socket = connect({ host, port, noDelay: true });
      let pending = Buffer.alloc(0);
      let sentAt = 0;
      const send = () => {
        if (performance.now() >= deadline || started >= requests) {
          socket.end();
          return resolve();
        }
        started++;
        sentAt = performance.now();
        socket.write(next());
      };
      socket.on('connect', send);
      socket.on('error', reject);
      socket.on('close', () => resolve());
      socket.on('data', (chunk) => {
        pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
        for (;;) {
          const f = frame(pending);
          if (!f || pending.length < f.total) return;
          latencies.push(performance.now() - sentAt);
          answers++;
          statuses.set(f.status, (statuses.get(f.status) ?? 0) + 1);
          if (onAnswer) onAnswer(f.status, pending.subarray(f.bodyStart, f.total));
          pending = pending.subarray(f.total);
          send();
        }
      });
    });
  await Promise.all(Array.from({ length: connections }, one));
  const seconds = (performance.now() - t0) / 1000;
  return { answers, seconds, rate: answers / seconds, latenciesMs: latencies, statuses };
}

/** The p-th percentile of `xs` (sorted in place). */
export function percentile(xs, p) {
  if (xs.length === 0) return NaN;
  xs.sort((a, b) => a - b);
  return xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
}
