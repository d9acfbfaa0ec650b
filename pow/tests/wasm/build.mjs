// Builds pow/examples/wasm_crosscheck.rs for wasm32-unknown-unknown, once
// per solver build the browser can get. Shared by the cross-check in Node
// (crosscheck.test.mjs here) and the one inside each browser engine's
// worker (e2e/tests/crosscheck-engines.test.mjs), so both check the same
// modules.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../../..', import.meta.url));
const TARGET = 'wasm32-unknown-unknown';
export const BUILD_TIMEOUT_MS = 15 * 60 * 1000;

/**
 *   simd    -C target-feature=+simd128: the hand-vectorised compression
 *   scalar  no SIMD: the portable compression, the fallback
 */
export const BUILDS = [
  { name: 'simd', rustflags: ['-C', 'target-feature=+simd128'], simd: 1 },
  { name: 'scalar', rustflags: [], simd: 0 },
];

/**
 * Builds the example for one variant into target/wasm-crosscheck/<name>/
 * (one target directory per build, so the two sets of flags never
 * invalidate each other) and returns the .wasm bytes.
 */
export function build({ name, rustflags }) {
  const targetDir = join(REPO, 'target', 'wasm-crosscheck', name);
  const env = { ...process.env };
  // Only these flags, whatever the caller's shell has; CARGO_ENCODED_RUSTFLAGS
  // wins over RUSTFLAGS, and applies to the wasm32 artefacts only.
  delete env.RUSTFLAGS;
  env.CARGO_ENCODED_RUSTFLAGS = rustflags.join('\x1f');
  const r = spawnSync(process.env.CARGO || 'cargo', [
    'build', '--release', '--locked', '-p', 'powgate-pow', '--example', 'wasm_crosscheck',
    '--target', TARGET, '--target-dir', targetDir,
  ], { cwd: REPO, env, stdio: ['ignore', 'inherit', 'inherit'], timeout: BUILD_TIMEOUT_MS });
  assert.equal(r.status, 0, `building the ${name} wasm cross-check failed (${r.error ?? `exit ${r.status}`})`);
  return readFileSync(join(targetDir, TARGET, 'release', 'examples', 'wasm_crosscheck.wasm'));
}
