/**
 * `GET /v1/openapi.json` (the OpenAPI 3.1 document) and `GET /docs`, a self-contained page
 * rendering it: every operation by tag, with its parameters, request body schema and answers.
 * No scripts and nothing fetched from elsewhere (works offline). Both are open with auth on:
 * they describe the API, they hold no data.
 */
import { Hono } from 'hono';
import { html, raw } from 'hono/html';
import type { HtmlEscapedString } from 'hono/utils/html';
import { openApiDocument } from '../openapi.ts';

interface Op {
  tags: string[];
  summary: string;
  description?: string;
  parameters?: ({ name: string; in: string; required: boolean; description: string; schema: unknown } | { $ref: string })[];
  requestBody?: { content: Record<string, { schema: unknown }> };
  responses: Record<string, { description: string; content?: Record<string, { schema: unknown }> }>;
  security?: unknown[];
}

const json = (v: unknown) => JSON.stringify(v, null, 2);

function schemaLink(schema: unknown): HtmlEscapedString | Promise<HtmlEscapedString> {
  const $ref = (schema as { $ref?: string } | undefined)?.$ref;
  if ($ref) {
    const name = $ref.split('/').pop()!;
    return html`<a href="#schema-${name}">${name}</a>`;
  }
  return html`<pre>${json(schema)}</pre>`;
}

function operation(path: string, method: string, op: Op) {
  const params = (op.parameters ?? []).filter((p): p is Exclude<typeof p, { $ref: string }> => !('$ref' in p));
  return html`<details id="${method}-${path}">
<summary><span class="m ${method}">${method.toUpperCase()}</span> <code>${path}</code> — ${op.summary}${op.security?.length === 0 ? ' (open)' : ''}</summary>
${op.description ? html`<p>${op.description}</p>` : ''}
${params.length
    ? html`<table><tr><th>parameter</th><th>in</th><th>schema</th><th></th></tr>${params.map(
        (p) => html`<tr><td><code>${p.name}</code>${p.required ? ' *' : ''}</td><td>${p.in}</td><td><code>${JSON.stringify(p.schema)}</code></td><td>${p.description}</td></tr>`,
      )}</table>`
    : ''}
${op.requestBody
    ? html`<h4>request body</h4>${Object.entries(op.requestBody.content).map(([type, c]) => html`<div><code>${type}</code>: ${schemaLink(c.schema)}</div>`)}`
    : ''}
<h4>answers</h4><ul>${Object.entries(op.responses).map(
    ([code, r]) =>
      html`<li><b>${code}</b> ${r.description}${r.content ? html` ${Object.entries(r.content).map(([type, c]) => html`<div><code>${type}</code>: ${schemaLink(c.schema)}</div>`)}` : ''}</li>`,
  )}</ul>
</details>`;
}

function docsPage() {
  const doc = openApiDocument() as {
    info: { title: string; version: string; description: string };
    tags: { name: string; description: string }[];
    paths: Record<string, Record<string, Op>>;
    components: { schemas: Record<string, unknown> };
  };
  const ops = Object.entries(doc.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, op]) => ({ path, method, op })));
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${doc.info.title} API ${doc.info.version}</title>
<style>${raw(`body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
code,pre{font:13px ui-monospace,monospace}pre{background:#f5f5f5;padding:.6rem;overflow:auto}
details{border:1px solid #ddd;border-radius:4px;margin:.3rem 0;padding:.3rem .6rem}summary{cursor:pointer}
.m{display:inline-block;min-width:4.2em;font-weight:600}.get{color:#1565c0}.post{color:#2e7d32}.put{color:#ef6c00}.delete{color:#c62828}
table{border-collapse:collapse;margin:.4rem 0}td,th{border:1px solid #ddd;padding:.2rem .4rem;text-align:left;vertical-align:top}`)}</style></head>
<body><h1>${doc.info.title} API <small>${doc.info.version}</small></h1>
<p>${doc.info.description}</p>
<p>The machine-readable document: <a href="/v1/openapi.json">/v1/openapi.json</a> (OpenAPI 3.1). The queue dashboard: <a href="/admin/queues">/admin/queues</a>.</p>
${doc.tags.map(
    (t) => html`<h2 id="tag-${t.name}">${t.name}</h2><p>${t.description}</p>${ops.filter((o) => o.op.tags.includes(t.name)).map((o) => operation(o.path, o.method, o.op))}`,
  )}
<h2 id="schemas">schemas</h2>
${Object.entries(doc.components.schemas).map(([name, schema]) => html`<h3 id="schema-${name}">${name}</h3><pre>${json(schema)}</pre>`)}
</body></html>`;
}

export function docsRoutes(): Hono {
  const app = new Hono();
  app.get('/v1/openapi.json', (c) => c.json(openApiDocument()));
  app.get('/docs', (c) => c.html(docsPage()));
  return app;
}
