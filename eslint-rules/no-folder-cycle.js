// @ts-check
// Layer rule "no folder cycle" (docs/architecture.md, "Enforced layers"): the import graph between the
// top-level folders of src/ (src/cli, src/runner, ...; files directly in src/ are the node "src") has no
// cycle. Static imports, `export ... from`, lazy `import('...')` and type-only imports all count: a cycle
// between folders through types is still an architecture cycle. import-x/no-cycle sees file-level cycles
// only, and not through types.
//
// The folder graph is built once per lint process from the files on disk (ts.preProcessFile finds every
// module specifier without a type check); each import of the linted file whose target folder can reach
// back to the file's own folder is reported, with the cycle and the import behind each hop.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

const SOURCE = /\.(?:ts|tsx|mts|cts)$/;

/**
 * @typedef {{ file: string, specifier: string }} Evidence  one import behind an edge: the importing file and what it imports
 * @typedef {Map<string, Map<string, Evidence>>} FolderGraph  folder -> folder it imports -> the first import found
 */

/** @type {Map<string, FolderGraph>} one graph per src/ folder, built on first use in this process */
const graphs = new Map();

/** The node of a path: "src/<top-level folder>", "src" for files directly in src/, null outside src/. */
function folderOf(/** @type {string} */ srcDir, /** @type {string} */ file) {
  const rel = relative(srcDir, file);
  if (rel.startsWith('..') || isAbsolute(rel)) return null;
  const parts = rel.split(sep);
  return parts.length > 1 ? `src/${parts[0]}` : 'src';
}

/** The file a relative specifier means: `./x.js` is `./x.ts` (NodeNext), a folder is its index. */
function resolveSpecifier(/** @type {string} */ fromFile, /** @type {string} */ specifier) {
  const base = resolve(dirname(fromFile), specifier);
  const stem = base.replace(/\.(?:js|jsx|mjs|cjs)$/, '');
  const candidates = [`${stem}.ts`, `${stem}.tsx`, `${stem}.mts`, `${stem}.cts`, `${stem}.d.ts`, base, `${base}.ts`, join(base, 'index.ts')];
  for (const c of candidates) if (existsSync(c) && statSync(c).isFile()) return c;
  return base;
}

function sourceFiles(/** @type {string} */ dir) {
  /** @type {string[]} */
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(path));
    else if (entry.isFile() && SOURCE.test(entry.name)) out.push(path);
  }
  return out;
}

/** @returns {FolderGraph} */
function buildGraph(/** @type {string} */ srcDir) {
  /** @type {FolderGraph} */
  const graph = new Map();
  for (const file of sourceFiles(srcDir)) {
    const from = /** @type {string} */ (folderOf(srcDir, file));
    const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, false);
    for (const { fileName: specifier } of importedFiles) {
      if (!specifier.startsWith('.')) continue;
      const to = folderOf(srcDir, resolveSpecifier(file, specifier));
      if (to === null || to === from) continue;
      let edges = graph.get(from);
      if (!edges) graph.set(from, (edges = new Map()));
      if (!edges.has(to)) edges.set(to, { file, specifier });
    }
  }
  return graph;
}

/** The shortest folder path from `start` to `goal` (both included), or null when `goal` is out of reach. */
function shortestPath(/** @type {FolderGraph} */ graph, /** @type {string} */ start, /** @type {string} */ goal) {
  /** @type {Map<string, string | null>} */
  const cameFrom = new Map([[start, null]]);
  const queue = [start];
  while (queue.length > 0) {
    const at = /** @type {string} */ (queue.shift());
    if (at === goal) {
      const path = [];
      for (let n = /** @type {string | null | undefined} */ (at); n != null; n = cameFrom.get(n)) path.unshift(n);
      return path;
    }
    for (const next of graph.get(at)?.keys() ?? []) {
      if (cameFrom.has(next)) continue;
      cameFrom.set(next, at);
      queue.push(next);
    }
  }
  return null;
}

/** @type {import('eslint').Rule.RuleModule} */
const rule = {
  meta: {
    type: 'problem',
    docs: { description: 'Forbid an import that closes a cycle between the top-level folders of src/ (type-only and lazy imports count).' },
    schema: [
      {
        type: 'object',
        properties: { srcDir: { type: 'string', description: 'absolute path of the src/ folder (default: <cwd>/src)' } },
        additionalProperties: false,
      },
    ],
    messages: { cycle: 'Layer rule "no folder cycle": {{cycle}} ({{imports}})' },
  },
  create(context) {
    const options = /** @type {{ srcDir?: string } | undefined} */ (context.options[0]);
    const srcDir = resolve(context.cwd, options?.srcDir ?? 'src');
    const filename = context.physicalFilename;
    const own = folderOf(srcDir, filename);
    if (own === null) return {};
    let graph = graphs.get(srcDir);
    if (!graph) graphs.set(srcDir, (graph = buildGraph(srcDir)));
    const folders = graph;
    const shown = (/** @type {string} */ file) => relative(context.cwd, file).split(sep).join('/');

    /** Report `node` when the folder it imports from can reach back to this file's folder. */
    function check(/** @type {import('estree').Node} */ node, /** @type {unknown} */ specifier) {
      if (typeof specifier !== 'string' || !specifier.startsWith('.')) return;
      const target = folderOf(srcDir, resolveSpecifier(filename, specifier));
      if (target === null || target === own) return;
      const back = shortestPath(folders, target, /** @type {string} */ (own));
      if (!back) return;
      const hops = [`${shown(filename)} imports ${specifier}`];
      for (let i = 0; i + 1 < back.length; i++) {
        const e = /** @type {Evidence} */ (folders.get(/** @type {string} */ (back[i]))?.get(/** @type {string} */ (back[i + 1])));
        hops.push(`${shown(e.file)} imports ${e.specifier}`);
      }
      context.report({ node, messageId: 'cycle', data: { cycle: [own, ...back].join(' -> '), imports: hops.join('; ') } });
    }

    /** The string of a `source`-like node: a string literal or a template literal without expressions. */
    const literal = (/** @type {any} */ n) =>
      n?.type === 'Literal' ? n.value : n?.type === 'TemplateLiteral' && n.expressions.length === 0 ? n.quasis[0]?.value.cooked : undefined;

    return {
      ImportDeclaration: (node) => check(node, node.source.value),
      ExportNamedDeclaration: (node) => check(node, node.source?.value),
      ExportAllDeclaration: (node) => check(node, node.source.value),
      ImportExpression: (node) => check(node, literal(node.source)),
      // typescript-eslint nodes, absent from ESTree's types: `import('./x.js').T` and `import x = require('./x.js')`.
      /** @param {any} node */
      TSImportType: (node) => check(node, literal(node.source ?? node.argument?.literal)),
      /** @param {any} node */
      TSExternalModuleReference: (node) => check(node, literal(node.expression)),
    };
  },
};

export default { meta: { name: 'recoverctl-layers' }, rules: { 'no-folder-cycle': rule } };
