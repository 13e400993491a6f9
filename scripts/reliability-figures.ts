/**
 * Print the figures the reliability and chaos tests recorded in their last run (one JSON file
 * per test, see test/support/reliability.ts) as Markdown, for RELIABILITY.md:
 *
 *     node --import tsx scripts/reliability-figures.ts [DIR]
 *
 * DIR defaults to $SHARDVAULT_RELIABILITY_DIR, else <tmpdir>/shardvault-reliability.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const dir = process.argv[2] ?? process.env.SHARDVAULT_RELIABILITY_DIR ?? path.join(os.tmpdir(), 'shardvault-reliability');
const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort() : [];
if (files.length === 0) {
  process.stderr.write(`no figures in ${dir}: run the tests first (npm test, npm run test:chaos)\n`);
  process.exit(1);
}

const show = (v: unknown): string => (typeof v === 'object' && v !== null ? `\`${JSON.stringify(v)}\`` : String(v));

let out = '';
for (const file of files) {
  const record = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as Record<string, unknown>;
  const { test, mode, recordedAt, pid: _pid, ...figures } = record;
  out += `### ${String(test)} (${String(mode)} run, ${String(recordedAt)})\n\n`;
  for (const [k, v] of Object.entries(figures)) out += `- ${k}: ${show(v)}\n`;
  out += '\n';
}
process.stdout.write(out);
