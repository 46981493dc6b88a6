/**
 * The load generator of the serve scenarios (no dependency: core `http`
 * with a keep-alive agent, lighter on CPU than fetch). Cuts `file` into
 * request bodies of about `bodyBytes` at line ends and posts each once to
 * `url`, `clients` requests at a time. Every answer must be 200. Prints
 * `{ requests, bytes, seconds, cpuSeconds }` as one JSON line.
 *
 * Arguments: url clients file bodyBytes
 */
import http from 'node:http';
import { readFileSync } from 'node:fs';

const [url, clientsText, file, bodyText] = process.argv.slice(2) as [string, string, string, string];
const clients = Number(clientsText);
const bodyBytes = Number(bodyText);
const data = readFileSync(file);
const bodies: Buffer[] = [];
for (let start = 0; start < data.length; ) {
  const cut = data.indexOf(10, Math.min(data.length - 1, start + bodyBytes - 1));
  const end = cut === -1 ? data.length : cut + 1;
  bodies.push(data.subarray(start, end));
  start = end;
}
const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
const target = new URL(url);

function post(body: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ agent, host: target.hostname, port: target.port, path: target.pathname, method: 'POST', headers: { 'content-type': 'application/x-ndjson', 'content-length': body.length } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

let next = 0;
const started = performance.now();
const cpu = process.cpuUsage();
await Promise.all(
  Array.from({ length: clients }, async () => {
    while (next < bodies.length) {
      const status = await post(bodies[next++] as Buffer);
      if (status !== 200) throw new Error(`answered ${status}`);
    }
  }),
);
const seconds = (performance.now() - started) / 1000;
const used = process.cpuUsage(cpu);
agent.destroy();
process.stdout.write(`${JSON.stringify({ requests: bodies.length, bytes: data.length, seconds, cpuSeconds: (used.user + used.system) / 1e6 })}\n`);
