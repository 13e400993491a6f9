#!/usr/bin/env node
// The `shardvault` command (package.json "bin"): the built CLI (dist/, made by `npm run build`,
// which `npm ci` runs through `prepare`), or, in a checkout that was never built, the
// TypeScript sources through tsx.
import { existsSync } from 'node:fs';

const built = new URL('../dist/cli/main.js', import.meta.url);
let entry = built.href;
if (!existsSync(built)) {
  try {
    const { register } = await import('tsx/esm/api');
    register();
  } catch {
    process.stderr.write('shardvault: not built and no tsx to run the sources: run "npm ci" (or "npm run build")\n');
    process.exit(2);
  }
  entry = new URL('../cli/main.ts', import.meta.url).href;
}
const { run } = await import(entry);
await run();
