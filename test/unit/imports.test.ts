/**
 * No import circles between the project's modules (type-only imports included: a circle of
 * types is still two modules that cannot be understood, or moved, one without the other).
 * Dynamic `import()` is not counted: it is how the CLI loads a command only when it runs.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, sourceFiles } from '../support/process.ts';

const DIRS = ['api', 'worker', 'node', 'shared', 'cli', 'bench', 'scripts'];
const STATIC_IMPORT = /^\s*(?:import|export)\s[^;]*?\sfrom\s+'(\.{1,2}\/[^']+)'/gm;

function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(DIRS)) {
    const text = fs.readFileSync(file, 'utf8');
    const targets = [...text.matchAll(STATIC_IMPORT)].map((m) => path.resolve(path.dirname(file), m[1]!)).filter((t) => t.startsWith(ROOT) && !t.includes('/test/'));
    graph.set(file, targets);
  }
  return graph;
}

/** Every circle, each named by the files on it, found by depth-first search. */
function circles(graph: Map<string, string[]>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (file: string) => {
    state.set(file, 'open');
    stack.push(file);
    for (const next of graph.get(file) ?? []) {
      if (state.get(next) === 'open') found.push([...stack.slice(stack.indexOf(next)), next].map((f) => path.relative(ROOT, f)));
      else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(file, 'done');
  };
  for (const file of graph.keys()) if (!state.has(file)) visit(file);
  return found;
}

describe('module imports', () => {
  it('finds the modules it checks (the pattern matches real imports)', () => {
    const graph = importGraph();
    expect(graph.get(path.join(ROOT, 'cli/main.ts'))).toContain(path.join(ROOT, 'cli/exit-codes.ts'));
    expect([...graph.values()].flat().length).toBeGreaterThan(200);
  });

  it('form no circle', () => {
    expect(circles(importGraph()).map((c) => c.join(' → '))).toEqual([]);
  });
});
