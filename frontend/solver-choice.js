// @ts-check
// Which build of the wasm solver the workers load: the SIMD one where the
// engine validates a SIMD module, else the scalar one. Used by app.js and
// worker.js. No DOM access (see tests/solver-choice.test.mjs).

/**
 * The two builds of the wasm solver, by directory relative to worker.js. The
 * SIMD build (pow's hand-vectorised argon2id) is about 1.5 times as fast;
 * the scalar one is for browsers without wasm SIMD, such as Safari before
 * 16.4.
 */
export const SOLVER_DIRS = Object.freeze({ simd: './solver/', scalar: './solver/scalar/' });

/**
 * The smallest module that uses wasm SIMD: one function returning a v128
 * made by i32x4.splat. An engine without SIMD refuses to validate it.
 *   (module (func (result v128) i32.const 0 i32x4.splat))
 */
export const SIMD_PROBE = Object.freeze([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // "\0asm", version 1
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, // types: () -> v128
  0x03, 0x02, 0x01, 0x00, // functions: one, of type 0
  0x0a, 0x08, 0x01, 0x06, 0x00, 0x41, 0x00, 0xfd, 0x0f, 0x0b, // code: i32.const 0; i32x4.splat; end
]);

/**
 * Which solver build to load: 'simd' when the engine validates
 * {@link SIMD_PROBE}, else 'scalar'. The page's `?solver=scalar` forces the
 * scalar build, an operator's and tester's switch for comparing the two or
 * working around a broken SIMD engine.
 *
 * @param {{wasm?: {validate: (bytes: Uint8Array<ArrayBuffer>) => boolean}, search?: string}} [env]
 *   the WebAssembly object and the page's location.search
 * @returns {{solver: 'simd'|'scalar', reason: string}}
 */
export function chooseSolver({ wasm = globalThis.WebAssembly, search = '' } = {}) {
  let forced = null;
  try {
    forced = new URLSearchParams(search).get('solver');
  } catch {
    forced = null;
  }
  if (forced === 'scalar') return { solver: 'scalar', reason: 'forced by ?solver=scalar' };
  let simd = false;
  try {
    simd = Boolean(wasm && typeof wasm.validate === 'function' && wasm.validate(new Uint8Array(SIMD_PROBE)));
  } catch {
    simd = false;
  }
  return simd
    ? { solver: 'simd', reason: 'this browser has wasm SIMD' }
    : { solver: 'scalar', reason: 'this browser lacks wasm SIMD' };
}
