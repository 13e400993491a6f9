#!/usr/bin/env node
// The `shardvault` command (package.json "bin"): runs the TypeScript CLI through tsx.
import { register } from 'tsx/esm/api';

register();
const { run } = await import(new URL('../cli/main.ts', import.meta.url).href);
await run();
