// chooseSolver: which wasm solver build the page loads.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { chooseSolver, SIMD_PROBE, SOLVER_DIRS } from '../solver-choice.js';

describe('chooseSolver', () => {
  it('the probe is a valid SIMD module for an engine that has SIMD (Node has)', () => {
    assert.equal(WebAssembly.validate(new Uint8Array(SIMD_PROBE)), true);
    assert.equal(chooseSolver().solver, 'simd');
  });

  it('without its v128 type and SIMD instruction the probe is a plain valid module', () => {
    // Swap v128 (0x7b) for i32 (0x7f) and drop the i32x4.splat: still a
    // module, so the bytes around the SIMD parts are right.
    const plain = [...SIMD_PROBE];
    plain[14] = 0x7f;
    plain.splice(26, 2);
    plain[20] -= 2;
    plain[22] -= 2;
    assert.equal(WebAssembly.validate(new Uint8Array(plain)), true);
  });

  it('falls back to scalar when the engine refuses the probe', () => {
    const noSimd = { validate: () => false };
    assert.deepEqual(chooseSolver({ wasm: noSimd }), {
      solver: 'scalar',
      reason: 'this browser lacks wasm SIMD',
    });
  });

  it('falls back to scalar when validate throws or there is no WebAssembly', () => {
    const throws = { validate: () => { throw new TypeError('nope'); } };
    assert.equal(chooseSolver({ wasm: throws }).solver, 'scalar');
    assert.equal(chooseSolver({ wasm: null }).solver, 'scalar');
  });

  it('?solver=scalar forces the scalar build; other values do not', () => {
    assert.equal(chooseSolver({ search: '?solver=scalar' }).solver, 'scalar');
    assert.equal(chooseSolver({ search: '?redir=/x&solver=scalar' }).solver, 'scalar');
    assert.equal(chooseSolver({ search: '?solver=simd' }).solver, 'simd');
    assert.equal(chooseSolver({ search: '?solver=bogus' }).solver, 'simd');
  });

  it('names a directory for each build', () => {
    assert.deepEqual(Object.keys(SOLVER_DIRS).sort(), ['scalar', 'simd']);
    assert.equal(SOLVER_DIRS.simd, './solver/');
    assert.equal(SOLVER_DIRS.scalar, './solver/scalar/');
  });
});
