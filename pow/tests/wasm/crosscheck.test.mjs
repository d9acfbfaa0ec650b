// The solver's argon2id checked against the `argon2` crate inside a real
// wasm engine (Node's V8), once for each build the browser can get:
//
//   simd128  -C target-feature=+simd128: the hand-vectorised compression
//   scalar   no SIMD: the portable compression, the fallback
//
// Builds pow/examples/wasm_crosscheck.rs for wasm32-unknown-unknown (see
// build.mjs), instantiates it with no imports, and calls its exports. The
// same modules are checked inside each browser engine's worker by
// e2e/tests/crosscheck-engines.test.mjs. Run from anywhere:
//
//   node --test pow/tests/wasm/
//
// CROSSCHECK_SEED=<integer> draws other random cases (the seed is printed).

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';

import { build, BUILD_TIMEOUT_MS, BUILDS } from './build.mjs';

const CASES = 240;
const SEED = BigInt(process.env.CROSSCHECK_SEED ?? '0x706f776761746521');
/** The bound on one worker's wasm memory: m plus 8 MiB. */
const MEMORY_SLACK = 8 * 1024 * 1024;

/** Leading zero bits of Node's SHA-256 of a ticket, per pow/src/ticket.rs. */
function ticketZeroBits(saltByte, ticket) {
  const nonce = Buffer.alloc(8);
  nonce.writeBigUInt64BE(BigInt(ticket));
  const digest = createHash('sha256')
    .update('powgate-ticket-v1')
    .update(Buffer.alloc(16, saltByte))
    .update(nonce)
    .digest();
  let zeros = 0;
  for (const byte of digest) {
    if (byte !== 0) return zeros + Math.clz32(byte) - 24;
    zeros += 8;
  }
  return zeros;
}

async function instantiate(bytes) {
  const { instance } = await WebAssembly.instantiate(bytes, {});
  const e = instance.exports;
  const report = () => new TextDecoder().decode(
    new Uint8Array(e.memory.buffer, e.report_ptr(), e.report_len()),
  );
  return { e, report };
}

for (const variant of BUILDS) {
  describe(`argon2id in wasm32, ${variant.name} build`, () => {
    let bytes;

    test('builds', { timeout: BUILD_TIMEOUT_MS }, () => {
      bytes = build(variant);
      assert.ok(WebAssembly.validate(bytes), 'this engine accepts the module');
    });

    test(`compresses with ${variant.simd ? 'simd128' : 'the portable code'}`, async () => {
      const { e } = await instantiate(bytes);
      assert.equal(e.uses_simd128(), variant.simd);
    });

    test('matches RFC 9106 and the argon2 crate on the argon2id vector', async () => {
      const { e, report } = await instantiate(bytes);
      assert.equal(e.rfc9106(), 0, report());
    });

    test(`matches the argon2 crate on ${CASES} random inputs (seed ${SEED})`, async () => {
      const { e, report } = await instantiate(bytes);
      assert.equal(e.crosscheck(SEED, CASES), 0, report());
    });

    test('the stepped solver finds the nonces the verifier accepts', async () => {
      const { e, report } = await instantiate(bytes);
      assert.equal(e.solver_agrees_with_verifier(), 0, report());
    });

    test('the admission ticket matches Node\'s SHA-256', async () => {
      const { e } = await instantiate(bytes);
      // The known answer pinned in pow/src/ticket.rs.
      assert.equal(e.ticket_solve(7, 12), 3569n);
      for (let salt = 0; salt < 4; salt++) {
        const bits = 10;
        const t = Number(e.ticket_solve(salt, bits));
        assert.ok(ticketZeroBits(salt, t) >= bits, `salt ${salt}: ticket ${t} has too few zero bits`);
        for (let earlier = 0; earlier < t; earlier++) {
          assert.ok(ticketZeroBits(salt, earlier) < bits, `salt ${salt}: ${earlier} already passes`);
        }
        assert.equal(e.ticket_check(salt, BigInt(t), bits), 1);
        assert.equal(e.ticket_check(salt ^ 1, BigInt(t), bits), ticketZeroBits(salt ^ 1, t) >= bits ? 1 : 0);
      }
    });

    test('a worker-sized instance stays within m + 8 MiB of wasm memory', async () => {
      const { e, report } = await instantiate(bytes);
      const mKiB = 65536;
      assert.equal(e.hash_nonces(1, mKiB, 0, 2), 0, report());
      const total = e.memory.buffer.byteLength;
      assert.ok(total <= mKiB * 1024 + MEMORY_SLACK, `${total} bytes of wasm memory for m = ${mKiB} KiB`);
    });
  });
}
