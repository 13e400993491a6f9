/**
 * Malformed requests for the bad-input fuzz test, generated from a seeded PRNG (so a failing
 * run replays with its seed), and a raw HTTP sender that puts paths on the wire exactly as
 * generated (fetch would resolve `../` and percent-encoded dots before sending).
 *
 * Every request comes from a route template (the API's routes, see routeTemplates) with its
 * parameters replaced by hostile values and a hostile body, content type, query or method.
 * `mustRefuse` marks requests that are invalid by construction (a bad backup id or index name
 * where one is required, a body that is not JSON where JSON is required…): those must answer
 * 4xx; every request must answer something below 500.
 */
import http from 'node:http';
import net from 'node:net';
import { pack } from 'msgpackr';
import { INDEX_NAME } from '../../shared/store/store.ts';
import type { Rng } from './reliability.ts';

export interface FuzzRequest {
  method: string;
  /** Raw request target, sent as is. */
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
  /** Invalid by construction: must be answered 4xx. */
  mustRefuse: boolean;
  /** What was fuzzed, for failure messages and counts. */
  kind: string;
}

export interface FuzzAnswer {
  status: number;
  ms: number;
  body: string;
}

/** A route as Hono lists it: method and pattern (`/v1/backups/:backend/:id`, `/:index/:cmd{:schema}`). */
export interface RouteTemplate {
  method: string;
  path: string;
}

/** Names and ids that try to leave their directory or break parsing; `marker` is in every escape. */
export function hostileNames(marker: string): string[] {
  return [
    `../../${marker}`,
    `..%2F..%2F${marker}`,
    `..%2f..%2f..%2f${marker}`,
    `%2e%2e%2f%2e%2e%2f${marker}`,
    `%2E%2E/%2E%2E/${marker}`,
    `..%252f..%252f${marker}`,
    `..%5c..%5c${marker}`,
    `%2e%2e%5c${marker}`,
    `....//....//${marker}`,
    `%2F${marker}`,
    `%2Ftmp%2F${marker}`,
    `${marker}%00.json`,
    `${marker}%0a%0d`,
    '..',
    '%2e%2e',
    '.',
    `.${marker}`,
    '.staging',
    '_cluster',
    '.schemas',
    'A'.repeat(300),
    encodeURIComponent('ünïcödé'),
    encodeURIComponent('日本語'),
    encodeURIComponent('😀💥'),
    encodeURIComponent('\u202e\u0000'),
    '%ff%fe',
    '%',
    '%zz',
    encodeURIComponent(' '),
    encodeURIComponent('a b'),
    'UPPER',
    encodeURIComponent("'; DROP TABLE x; --"),
    encodeURIComponent('<script>'),
  ];
}

const JSON_TYPES = ['application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', 'application/vnd.api+json'];
const OTHER_TYPES = [
  'application/xml',
  'multipart/form-data; boundary=x',
  'application/x-msgpack',
  'application/octet-stream',
  'application/x-ndjson',
  'image/png',
  'x/y/z',
  ';;;',
  'application/json; charset=utf-16',
];

function deepNesting(depth: number): string {
  return `${'['.repeat(depth)}${']'.repeat(depth)}`;
}

function deepObject(depth: number): string {
  return `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
}

/** JSON-ish bodies: wrong types, hostile values, malformed text. `valid` says whether it is well-formed JSON. */
function jsonBody(rng: Rng, marker: string, maxBodyBytes: number): { text: Buffer; wellFormed: boolean } {
  const hostile = rng.pick(hostileNames(marker));
  const wellFormed: unknown[] = [
    null,
    42,
    'a string',
    [],
    [1, 2, 3],
    true,
    {},
    { id: 123 },
    { id: null },
    { id: ['a'] },
    { id: hostile },
    { id: tryDecode(hostile) },
    { id: 'fuzz-ok', include: 'Fuzz' },
    { id: 'fuzz-ok', include: [1, 2] },
    { id: 'fuzz-ok', include: ['*'], exclude: ['*'] },
    { id: 'fuzz-ok', include: [hostile] },
    { id: 'fuzz-ok', config: 'x' },
    { id: 'fuzz-ok', config: { CPUPercentage: 'lots', ChunkSize: -1 } },
    { id: 'fuzz-ok', config: { Path: `../../${marker}` } },
    { id: 'fuzz-ok', config: { Path: `/etc/${marker}` } },
    { id: 'fuzz-ok', config: { Bucket: '../x' } },
    { id: 'fuzz-ok', config: { CompressionLevel: 'Max' } },
    { node_mapping: [] },
    { node_mapping: { 'node-1': 'node-1', 'node-2': 'node-1' } },
    { node_mapping: { [hostile]: `../../${marker}` } },
    { config: { Path: `../../${marker}` } },
    { class: hostile, properties: 'x' },
    { class: 'Fuzz', properties: [{ name: 'a', dataType: ['nonsense'] }] },
    { class: 'Fuzz', shardingConfig: { desiredCount: -5 } },
    { class: 'Fuzz', shardingConfig: { desiredCount: 1e9 } },
    { class: 'Fuzz', id: hostile, properties: { a: 1 } },
    { objects: 'x' },
    { objects: [null, 1, 'x', { class: hostile }] },
    { _schema: 'x' },
    { _schema: { _id: { _type: 'nonsense' } } },
    { _settings: { number_of_shards: 'x' } },
    { _settings: { number_of_shards: 100000 } },
    { _settings: { number_of_shards: -1 } },
    { _id: { $ne: null } },
    { _id: hostile, n: 1 },
    { __proto__: { polluted: true }, constructor: { prototype: { polluted: true } } },
    { a: 'x'.repeat(rng.int(10, 2000)) },
    { a: '\ud800' },
    { a: '\udc00\ud800', b: '\u0000' },
    { a: 1e308 * 10 },
    { a: -0 },
    { a: 'overflows to Infinity', b: 1 },
    { a: 2 ** 64 },
  ];
  const malformed: string[] = [
    '{',
    '{"a": ',
    '{"a": 1,,}',
    "{'a': 1}",
    '[1, 2',
    'undefined',
    'NaN',
    '{"a": NaN}',
    '\ufeff{"a": 1}',
    '{"a":"\\u00"}',
    '<xml/>',
    '\u0000\u0001\u0002',
    deepNesting(rng.int(1000, 100_000)),
    deepObject(rng.int(1000, 50_000)),
  ];
  const r = rng.next();
  if (r < 0.5) return { text: Buffer.from(JSON.stringify(rng.pick(wellFormed)) ?? 'null'), wellFormed: true };
  if (r < 0.8) return { text: Buffer.from(rng.pick(malformed)), wellFormed: false };
  if (r < 0.9) return { text: rng.bytes(rng.int(1, 4096)), wellFormed: false };
  // Over the body limit.
  return { text: Buffer.from(JSON.stringify({ big: 'x'.repeat(maxBodyBytes + rng.int(1, maxBodyBytes)) })), wellFormed: true };
}

/** Bodies for POST /{index}/:restore: truncated or corrupted MessagePack, NDJSON, dump files, random bytes. */
function restoreBody(rng: Rng, dumpSample: Buffer): { body: Buffer; type: string; kind: string } {
  const docs = Array.from({ length: rng.int(1, 50) }, (_, i) => ({ _id: `fz-${i}`, n: i, text: 'x'.repeat(rng.int(0, 200)) }));
  const msgpack = pack(docs);
  const cut = (b: Buffer) => b.subarray(0, rng.int(1, Math.max(1, b.length - 1)));
  const flip = (b: Buffer) => {
    const copy = Buffer.from(b);
    const at = rng.int(0, copy.length - 1);
    copy[at] = copy[at]! ^ (1 << rng.int(0, 7));
    return copy;
  };
  const choices: (() => { body: Buffer; type: string; kind: string })[] = [
    () => ({ body: cut(msgpack), type: 'application/x-msgpack', kind: 'truncated msgpack' }),
    () => ({ body: flip(msgpack), type: 'application/x-msgpack', kind: 'flipped msgpack' }),
    () => ({ body: pack([1, 'x', null, [1, 2], new Date(), Buffer.from('bin')]), type: 'application/x-msgpack', kind: 'msgpack non-documents' }),
    () => ({ body: pack({ not: 'an array' }), type: 'application/x-msgpack', kind: 'msgpack map' }),
    () => ({ body: Buffer.from([0xc1, 0xc1, 0xc1]), type: 'application/x-msgpack', kind: 'msgpack never-used byte' }),
    () => ({ body: Buffer.concat([Buffer.alloc(rng.int(100, 50_000), 0x91), Buffer.from([0xc0])]), type: 'application/x-msgpack', kind: 'deeply nested msgpack' }),
    () => ({ body: pack([{ _id: 'c', constructor: 1, toString: 'x', hasOwnProperty: { a: 1 } }]), type: 'application/x-msgpack', kind: 'msgpack prototype names' }),
    () => ({ body: Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff]), type: 'application/x-msgpack', kind: 'msgpack huge array header' }),
    () => ({ body: Buffer.from([0xdb, 0xff, 0xff, 0xff, 0xff, 0x61]), type: 'application/x-msgpack', kind: 'msgpack huge string header' }),
    () => ({ body: cut(dumpSample), type: 'application/octet-stream', kind: 'truncated dump' }),
    () => ({ body: flip(dumpSample), type: 'application/octet-stream', kind: 'flipped dump' }),
    () => ({ body: Buffer.concat([dumpSample, rng.bytes(rng.int(1, 64))]), type: 'application/octet-stream', kind: 'dump with trailing bytes' }),
    () => ({ body: Buffer.concat([dumpSample.subarray(0, 8), rng.bytes(rng.int(1, 2048))]), type: 'application/octet-stream', kind: 'dump magic then garbage' }),
    () => ({ body: rng.bytes(rng.int(0, 8192)), type: 'application/octet-stream', kind: 'random bytes as dump' }),
    () => ({ body: Buffer.from(`{"_id":"a"}\n{"_id":\n{broken\n`), type: 'application/x-ndjson', kind: 'broken ndjson' }),
    () => ({ body: Buffer.from('[{"_id":"a"}, 1, "x", null, [], {"_id": {"$gt": 1}}]'), type: 'application/json', kind: 'json array of non-documents' }),
    () => ({ body: Buffer.from(`[${'{"_id":"a","v":'.repeat(1)}${deepNesting(rng.int(1000, 20_000))}}]`), type: 'application/json', kind: 'deeply nested document' }),
    () => ({ body: cut(Buffer.from(JSON.stringify(docs))), type: 'application/json', kind: 'truncated json array' }),
    () => ({ body: rng.bytes(rng.int(0, 4096)), type: rng.pick(OTHER_TYPES), kind: 'random bytes, odd type' }),
  ];
  return rng.pick(choices)();
}

function tryDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/**
 * Whether a hostile value in `param` must be refused (4xx) on this route. Only values that stay
 * one path segment count (a `/` or a dot segment makes the URL resolve to another route): a
 * backend that is not one, any backup id on a backup route (none but fuzz-ok exists), an
 * index name that is not one.
 */
function mustRefuseParam(route: string, param: string, value: string): boolean {
  if (/\/|%2f/i.test(value)) return false;
  if (['.', '..'].includes(value.replace(/%2e/gi, '.'))) return false;
  const decoded = tryDecode(value);
  if (param === 'backend') return !['filesystem', 's3', 'gcs', 'gcp'].includes(decoded.trim().toLowerCase());
  if (param === 'id' && route.startsWith('/v1/backups/')) return true;
  if (param === 'index') return !INDEX_NAME.test(decoded);
  return false;
}

/** A route pattern with its parameters filled in; Xapiand's literal commands (`:cmd{:schema}`) stay `:schema`. */
export function fill(template: string, values: Record<string, string>): string {
  return template.replace(/:([a-zA-Z]+)(\{[^}]*\})?/g, (_m, name: string, constraint?: string) => {
    const command = constraint ? /^\{:([a-z]+)\}$/.exec(constraint) : null;
    return command ? `:${command[1]}` : (values[name] ?? 'x');
  });
}

/**
 * `count` requests over `routes`. `dumpSample` is a valid docs dump file (its corruptions
 * become :restore bodies); `maxBodyBytes` is the server's MAX_BODY_BYTES.
 */
export function fuzzRequests(rng: Rng, count: number, routes: RouteTemplate[], options: { marker: string; dumpSample: Buffer; maxBodyBytes: number }): FuzzRequest[] {
  const { marker } = options;
  const names = hostileNames(marker);
  const out: FuzzRequest[] = [];
  for (let i = 0; i < count; i++) {
    const route = rng.pick(routes);
    const params = [...route.path.matchAll(/:([a-z]+)(?!\{)/gi)].map((m) => m[1]!).filter((p) => p !== 'cmd');
    const values: Record<string, string> = { backend: 'filesystem', id: 'fuzz-ok', index: 'Fuzz', class: 'Fuzz', key: 'k' };
    let mustRefuse = false;
    let kind = 'body';
    // Mostly: one parameter hostile. Sometimes: a bad backend, a bad method, or only the body.
    const r = rng.next();
    if (params.length > 0 && r < 0.55) {
      const param = rng.pick(params);
      values[param] = rng.pick(names);
      kind = `hostile :${param}`;
      mustRefuse = mustRefuseParam(route.path, param, values[param]!);
    } else if (r < 0.6) {
      kind = 'unexpected method';
    }
    let method = route.method === 'ALL' ? rng.pick(['GET', 'POST', 'PUT', 'DELETE']) : route.method;
    if (kind === 'unexpected method') method = rng.pick(['PATCH', 'OPTIONS', 'PUT', 'DELETE', 'POST', 'TRACE']);
    let path = fill(route.path, values);
    // Queries: hostile overrides and paging values.
    if (rng.chance(0.2)) {
      const q = rng.pick([
        `bucket=${rng.pick(names)}`,
        `path=${rng.pick(names)}`,
        `path=..%2F..%2F${marker}&bucket=x`,
        'limit=-1',
        'limit=abc',
        'limit=1e9',
        `after=${rng.pick(names)}`,
        `class=${rng.pick(names)}`,
        'pretty',
        `${'a'.repeat(5000)}=1`,
      ]);
      path += `${path.includes('?') ? '&' : '?'}${q}`;
      kind += ', hostile query';
    }
    const headers: Record<string, string> = {};
    let body: Buffer | undefined;
    const isRestore = path.includes('/:restore');
    const takesBody = ['POST', 'PUT'].includes(method);
    if (isRestore && takesBody) {
      const b = restoreBody(rng, options.dumpSample);
      body = b.body;
      headers['content-type'] = b.type;
      kind += `, ${b.kind}`;
    } else if (takesBody || rng.chance(0.1)) {
      const b = jsonBody(rng, marker, options.maxBodyBytes);
      body = b.text;
      const badType = rng.chance(0.15);
      headers['content-type'] = badType ? rng.pick(OTHER_TYPES.filter((t) => t !== 'application/json; charset=utf-16')) : rng.pick(JSON_TYPES);
      if (takesBody && !path.includes('/:dump') && (!b.wellFormed || badType) && !path.startsWith('/admin/')) {
        mustRefuse = true;
        kind += badType ? ', wrong content type' : ', malformed body';
      } else {
        kind += ', json body';
      }
      if (body.length > options.maxBodyBytes && takesBody && !path.includes('/:dump') && !path.startsWith('/admin/')) mustRefuse = true;
    }
    if (path.includes('/:dump') && rng.chance(0.5)) headers.accept = rng.pick(['image/png', 'application/x-msgpack;q=0', 'text/html', '*/*;q=0', ';;;', 'application/octet-stream']);
    out.push({ method, path, headers, body, mustRefuse, kind });
  }
  return out;
}

/** Send one request with the target exactly as given; never rejects (a transport error is status 0). */
export function sendRaw(base: URL, req: FuzzRequest, timeoutMs = 30_000): Promise<FuzzAnswer> {
  const started = Date.now();
  return new Promise((resolve) => {
    let done = false;
    const finish = (status: number, body: string) => {
      if (done) return;
      done = true;
      resolve({ status, ms: Date.now() - started, body });
    };
    let r: http.ClientRequest;
    try {
      r = http.request(
        {
          host: base.hostname,
          port: base.port,
          method: req.method,
          path: req.path,
          headers: { ...req.headers, ...(req.body ? { 'content-length': String(req.body.length) } : {}) },
          agent: false,
          timeout: timeoutMs,
          insecureHTTPParser: false,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            if (size < 64 * 1024) chunks.push(c);
            size += c.length;
          });
          res.on('end', () => finish(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8').slice(0, 2000)));
          res.on('error', (err) => finish(res.statusCode ?? 0, `response error: ${err.message}`));
        },
      );
    } catch (err) {
      // The client itself refuses some targets (unescaped characters): nothing was sent.
      return finish(-1, `not sent: ${(err as Error).message}`);
    }
    r.on('timeout', () => {
      r.destroy(new Error(`no answer in ${timeoutMs} ms`));
    });
    r.on('error', (err) => finish(0, `transport error: ${err.message}`));
    r.end(req.body);
  });
}

/**
 * Requests no HTTP client library would send (raw bytes on a socket): a non-ASCII target, a
 * bad method token, a broken header, a huge header, a lying Content-Length. Answers the
 * status line's code (0 when the server closes without one).
 */
export async function rawSocketProbes(base: URL, marker: string): Promise<{ label: string; status: number }[]> {
  const host = `${base.hostname}:${base.port}`;
  const probes: [string, Buffer][] = [
    ['non-ASCII target', Buffer.from(`GET /v1/backups/filesystem/ünï${marker} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`, 'utf8')],
    ['raw ../ target', Buffer.from(`GET /v1/backups/filesystem/../../${marker} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)],
    ['raw backslash target', Buffer.from(`GET /v1/backups/filesystem/..\\..\\${marker} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)],
    ['absolute-form target', Buffer.from(`GET http://evil.example/../../${marker} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)],
    ['bad method token', Buffer.from(`G(E)T / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)],
    ['broken header', Buffer.from(`GET /v1/meta HTTP/1.1\r\nHost: ${host}\r\nBad Header\r\nConnection: close\r\n\r\n`)],
    ['huge header', Buffer.from(`GET /v1/meta HTTP/1.1\r\nHost: ${host}\r\nX-Big: ${'a'.repeat(100_000)}\r\nConnection: close\r\n\r\n`)],
    ['lying content-length', Buffer.from(`PUT /Fuzz/lie HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n{"a":1}`)],
    ['chunked garbage', Buffer.from(`POST /Fuzz/:restore HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/x-msgpack\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\nxx\r\n0\r\n\r\n`)],
    ['HTTP/0.9', Buffer.from('GET /\r\n')],
  ];
  const out: { label: string; status: number }[] = [];
  for (const [label, bytes] of probes) {
    const status = await new Promise<number>((resolve) => {
      const socket = net.connect({ host: base.hostname, port: Number(base.port) });
      let text = '';
      const timer = setTimeout(() => socket.destroy(), 10_000);
      socket.on('data', (d) => (text += d.toString('latin1')));
      socket.on('close', () => {
        clearTimeout(timer);
        resolve(Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? 0));
      });
      socket.on('error', () => undefined);
      socket.on('connect', () => {
        socket.write(bytes);
        // A lying Content-Length leaves the server waiting for the rest: hang up after a while.
        setTimeout(() => socket.end(), 1500);
      });
    });
    out.push({ label, status });
  }
  return out;
}
