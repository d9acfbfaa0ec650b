//! The solver's argon2id against RFC 9106 and against the `argon2` crate the
//! server verifies with. Natively this checks the portable compression; the
//! same checks run in wasm32 with the simd128 one through
//! `pow/examples/wasm_crosscheck.rs` (see `pow/tests/wasm/crosscheck.test.mjs`).

use super::*;

/// RFC 9106 §5.3: argon2id, version 0x13, t = 3, m = 32 KiB, p = 4, with a
/// secret and associated data.
#[test]
fn rfc_9106_argon2id_vector() {
    let params = Argon2Params::new(3, 32, 4, 32).unwrap();
    let mut a = Argon2id::new(params).unwrap();
    let mut out = [0u8; 32];
    a.hash_keyed_into(&[1; 32], &[2; 16], &[3; 8], &[4; 12], &mut out)
        .unwrap();
    assert_eq!(
        hex::encode(out),
        "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659"
    );
}

/// What the `argon2` crate says for the same inputs.
fn reference(
    params: Argon2Params,
    password: &[u8],
    salt: &[u8],
    secret: &[u8],
    ad: &[u8],
) -> Vec<u8> {
    let p = argon2::ParamsBuilder::new()
        .m_cost(params.m_cost_kib())
        .t_cost(params.t_cost())
        .p_cost(params.parallelism())
        .output_len(params.hash_length() as usize)
        .data(argon2::AssociatedData::new(ad).unwrap())
        .build()
        .unwrap();
    let mut blocks = vec![argon2::Block::default(); p.block_count()];
    let a = argon2::Argon2::new_with_secret(
        secret,
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        p,
    )
    .unwrap();
    let mut out = vec![0u8; params.hash_length() as usize];
    a.hash_password_into_with_memory(password, salt, &mut out, &mut blocks)
        .unwrap();
    out
}

/// splitmix64: a fixed, dependency-free stream of test inputs.
struct Rng(u64);

// Truncating the random words is how the inputs are drawn.
#[allow(clippy::cast_possible_truncation)]
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n)) as u32
    }
    /// `min_len..=max_len` random bytes.
    fn bytes(&mut self, min_len: u32, max_len: u32) -> Vec<u8> {
        let len = min_len + self.below(max_len - min_len + 1);
        (0..len).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn the_rfc_vector_agrees_with_the_argon2_crate() {
    let params = Argon2Params::new(3, 32, 4, 32).unwrap();
    let mut a = Argon2id::new(params).unwrap();
    let mut out = [0u8; 32];
    a.hash_keyed_into(&[1; 32], &[2; 16], &[3; 8], &[4; 12], &mut out)
        .unwrap();
    assert_eq!(
        out.to_vec(),
        reference(params, &[1; 32], &[2; 16], &[3; 8], &[4; 12])
    );
}

/// 240 random (password, salt, t, m, p, length) combinations, among them
/// t = 1, memory sizes that are no power of two and not a multiple of
/// 4 x p, several lanes, and occasionally a secret and associated data.
#[test]
fn random_inputs_agree_with_the_argon2_crate() {
    let mut rng = Rng(0x706f_7767_6174_6521);
    for case in 0..240 {
        let t = if case % 4 == 0 { 1 } else { 1 + rng.below(4) };
        let p = if case % 3 == 0 { 2 + rng.below(3) } else { 1 };
        let m = 8 * p + rng.below(if case % 10 == 0 { 1500 } else { 300 });
        let len = 32 + rng.below(33);
        let params = Argon2Params::new(t, m, p, len).unwrap();
        let password = rng.bytes(0, 40);
        let salt = rng.bytes(8, 32);
        let (secret, ad) = if case % 7 == 0 {
            (rng.bytes(0, 32), rng.bytes(0, 32))
        } else {
            (Vec::new(), Vec::new())
        };
        let mut a = Argon2id::new(params).unwrap();
        let mut out = vec![0u8; len as usize];
        a.hash_keyed_into(&password, &salt, &secret, &ad, &mut out)
            .unwrap();
        assert_eq!(
            out,
            reference(params, &password, &salt, &secret, &ad),
            "case {case}: t={t} m={m} p={p} len={len} password={} salt={} secret={} ad={}",
            hex::encode(&password),
            hex::encode(&salt),
            hex::encode(&secret),
            hex::encode(&ad),
        );
    }
}

#[test]
fn reusing_the_memory_does_not_change_the_answer() {
    let params = Argon2Params::new(2, 100, 2, 32).unwrap();
    let mut a = Argon2id::new(params).unwrap();
    let mut first = [0u8; 32];
    let mut other = [0u8; 32];
    let mut again = [0u8; 32];
    a.hash_into(b"nonce-01", b"saltsaltsalt", &mut first)
        .unwrap();
    a.hash_into(b"nonce-02", b"saltsaltsalt", &mut other)
        .unwrap();
    a.hash_into(b"nonce-01", b"saltsaltsalt", &mut again)
        .unwrap();
    assert_eq!(first, again);
    assert_ne!(first, other);
    assert_eq!(
        first.to_vec(),
        reference(params, b"nonce-01", b"saltsaltsalt", &[], &[])
    );
}

#[test]
fn the_memory_is_m_rounded_down_to_4p_blocks() {
    let params = Argon2Params::new(1, 100, 3, 32).unwrap();
    let a = Argon2id::new(params).unwrap();
    assert_eq!(a.blocks.len(), 96);
    assert_eq!(a.blocks.len(), params.block_count());
}

#[test]
fn bad_lengths_are_errors_not_panics() {
    let mut a = Argon2id::new(Argon2Params::new(1, 8, 1, 32).unwrap()).unwrap();
    let mut out = [0u8; 33];
    assert_eq!(
        a.hash_into(b"pw", b"saltsalt", &mut out),
        Err(HashError::Params)
    );
    assert_eq!(
        a.hash_into(b"pw", b"short", &mut out[..32]),
        Err(HashError::Params)
    );
}

#[test]
fn long_h_prime_outputs_follow_the_rfc_layout() {
    // H'^T for T > 64 starts with the first half of V1 = H^64(LE32(T) || X).
    let mut out = [0u8; 100];
    blake2b_long(&[b"abc"], &mut out).unwrap();
    let v1 = Blake2b512::new()
        .chain_update(100u32.to_le_bytes())
        .chain_update(b"abc")
        .finalize();
    assert_eq!(out[..32], v1[..32]);
    // ... and ends with H^(T - 32r)(V_r), here r = 2: H^36(V2).
    let v2 = Blake2b512::digest(v1);
    let mut last = [0u8; 36];
    let mut h = Blake2bVar::new(36).unwrap();
    h.update(&v2);
    h.finalize_variable(&mut last).unwrap();
    assert_eq!(out[32..64], v2[..32]);
    assert_eq!(out[64..], last);
}
