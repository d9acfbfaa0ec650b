//! Builds the browser solver and embeds the web pages, so that one
//! `cargo build` yields a binary that serves everything itself.
//!
//! 1. Makes sure the `wasm32-unknown-unknown` target is installed (machines
//!    with `RUSTUP_AUTO_INSTALL=0` do not add it from rust-toolchain.toml).
//! 2. Compiles `solver-wasm` for wasm32 twice with nested cargos, each in
//!    its own target directory so neither waits on the outer build's lock
//!    nor invalidates the other's artefacts:
//!    - the SIMD build (`-C target-feature=+simd128`, pow's hand-vectorised
//!      argon2id compression), served at `/solver/`, which every current
//!      browser gets;
//!    - the scalar build, served at `/solver/scalar/`, for browsers without
//!      wasm SIMD (Safari before 16.4). The page picks one at load time
//!      (`frontend/solver-choice.js`, `chooseSolver`).
//! 3. Runs wasm-bindgen as a library (the same version as the `wasm-bindgen`
//!    crate, pinned in the workspace), so no CLI needs installing.
//! 4. Writes `assets.rs`: every file of `frontend/` (served at `/`),
//!    `admin/` (at `/admin/`) and `shared/` (at `/shared/`: the modules and
//!    styles both pages use) plus both solvers, with their MIME types and a
//!    content hash for the ETag.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

const WASM_TARGET: &str = "wasm32-unknown-unknown";
/// The names wasm-bindgen gives the glue and the module.
const SOLVER_FILES: [&str; 2] = ["powgate_solver_wasm.js", "powgate_solver_wasm_bg.wasm"];

/// One build of the wasm solver.
struct Variant {
    /// Its directory below `solver/`, both where it is served and in the
    /// output (or prebuilt) solver directory: "" or "scalar".
    subdir: &'static str,
    /// The nested cargo's own target directory, below `target/`.
    target_dir: &'static str,
    /// Its rustflags; they apply to the wasm32 artefacts only, as the nested
    /// build names its `--target`.
    rustflags: &'static [&'static str],
}

const VARIANTS: [Variant; 2] = [
    Variant {
        subdir: "",
        target_dir: "wasm-solver-simd",
        rustflags: &["-C", "target-feature=+simd128"],
    },
    Variant {
        subdir: "scalar",
        target_dir: "wasm-solver-scalar",
        rustflags: &[],
    },
];

fn main() {
    let manifest =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest
        .parent()
        .expect("server/ lives in the workspace")
        .to_path_buf();
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    for p in [
        "pow/src",
        "pow/Cargo.toml",
        "solver-wasm",
        "frontend",
        "admin",
        "shared",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    println!("cargo:rerun-if-env-changed=POWGATE_SOLVER_DIR");

    // Prebuilt solvers can be supplied (for packagers): the SIMD build's two
    // files in that directory and the scalar build's in its `scalar/`.
    // Otherwise build both.
    let solver_dir = match std::env::var_os("POWGATE_SOLVER_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => build_solvers(&root, &out),
    };

    let mut files: Vec<(String, PathBuf)> = Vec::new();
    collect(&root.join("frontend"), "", &mut files);
    collect(&root.join("admin"), "admin/", &mut files);
    collect(&root.join("shared"), "shared/", &mut files);
    for variant in &VARIANTS {
        let dir = solver_dir.join(variant.subdir);
        for name in SOLVER_FILES {
            let served = Path::new("solver").join(variant.subdir).join(name);
            files.push((served.to_string_lossy().into_owned(), dir.join(name)));
        }
    }
    write_assets(&out.join("assets.rs"), &files);
}

/// Builds every variant (the two nested cargos run side by side, so one's
/// single-threaded LTO overlaps the other's compiling) and returns the
/// directory holding the SIMD build, with the scalar one in `scalar/`.
fn build_solvers(root: &Path, out: &Path) -> PathBuf {
    ensure_wasm_target();
    let mut running = Vec::new();
    for variant in &VARIANTS {
        let mut cmd = nested_cargo(root, variant);
        let child = cmd
            .spawn()
            .expect("cannot run cargo to build the wasm solver");
        running.push((variant, child));
    }
    for (variant, mut child) in running {
        let status = child
            .wait()
            .expect("cannot wait for the nested cargo building the wasm solver");
        assert!(
            status.success(),
            "building solver-wasm ({}) for {WASM_TARGET} failed (see above)",
            variant.target_dir
        );
    }
    for variant in &VARIANTS {
        let wasm = root
            .join("target")
            .join(variant.target_dir)
            .join(WASM_TARGET)
            .join("release")
            .join("powgate_solver_wasm.wasm");
        bindgen(&wasm, &out.join("solver").join(variant.subdir));
    }
    out.join("solver")
}

/// `cargo build` of solver-wasm for wasm32 with the variant's flags, in its
/// own target directory.
fn nested_cargo(root: &Path, variant: &Variant) -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args([
            "build",
            "--release",
            "--locked",
            "-p",
            "powgate-solver-wasm",
            "--target",
            WASM_TARGET,
        ])
        .arg("--target-dir")
        .arg(root.join("target").join(variant.target_dir))
        // The solver is what users wait on: optimise it fully, without debug info.
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_LTO", "true")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1")
        .env("CARGO_PROFILE_RELEASE_PANIC", "abort");
    // The outer build's settings (clippy's wrapper, coverage flags, a target
    // dir) must not leak into the nested wasm build.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "CARGO_LLVM_COV",
    ] {
        cmd.env_remove(var);
    }
    // Only the variant's own flags; CARGO_ENCODED_RUSTFLAGS separates them
    // with 0x1f, so a flag could even hold a space.
    if !variant.rustflags.is_empty() {
        cmd.env("CARGO_ENCODED_RUSTFLAGS", variant.rustflags.join("\x1f"));
    }
    cmd
}

/// wasm-bindgen's `--target web` glue and module for `wasm`, into `dir`.
fn bindgen(wasm: &Path, dir: &Path) {
    std::fs::create_dir_all(dir).expect("cannot create the solver output directory");
    let mut bindgen = wasm_bindgen_cli_support::Bindgen::new();
    bindgen
        .input_path(wasm)
        .out_name("powgate_solver_wasm")
        .typescript(false)
        .keep_debug(false)
        .web(true)
        .expect("wasm-bindgen --target web is supported")
        .generate(dir)
        .expect("wasm-bindgen failed on the solver");
}

/// Adds the wasm32 target with rustup when the active toolchain lacks it.
fn ensure_wasm_target() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", WASM_TARGET])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if libdir.is_some_and(|d| d.exists()) {
        return;
    }
    println!("cargo:warning=installing the {WASM_TARGET} target with rustup (one time)");
    let status = Command::new("rustup")
        .args(["target", "add", WASM_TARGET])
        .status()
        .expect("the wasm32-unknown-unknown target is missing and rustup is not available; install the target");
    assert!(status.success(), "`rustup target add {WASM_TARGET}` failed");
}

/// Servable files below `dir`, skipping tests and tooling files.
///
/// Symbolic links are skipped too: `frontend/shared` links to `../shared` so
/// that the challenge page's `./shared/…` imports resolve on disk (for Node's
/// tests and tsc) as they do when served, and `shared/` is collected once,
/// by itself.
fn collect(dir: &Path, prefix: &str, files: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        if name.starts_with('.')
            || name == "tests"
            || name == "package.json"
            || name == "node_modules"
            || e.file_type().is_ok_and(|t| t.is_symlink())
        {
            continue;
        }
        if path.is_dir() {
            collect(&path, &format!("{prefix}{name}/"), files);
        } else if mime(&name).is_some() {
            files.push((format!("{prefix}{name}"), path));
        }
    }
}

fn mime(name: &str) -> Option<&'static str> {
    Some(match name.rsplit('.').next()? {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "wasm" => "application/wasm",
        "svg" => "image/svg+xml",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        _ => return None,
    })
}

fn write_assets(dest: &Path, files: &[(String, PathBuf)]) {
    use sha2::Digest as _;
    let mut src = String::from(
        "/// Generated by build.rs: (path, MIME type, ETag, contents).\npub(crate) static ASSETS: &[(&str, &str, &str, &[u8])] = &[\n",
    );
    for (path, file) in files {
        let bytes =
            std::fs::read(file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        let digest = sha2::Sha256::digest(&bytes);
        let etag = format!("\"{}\"", hex(&digest[..12]));
        let mime = mime(path).unwrap_or("application/octet-stream");
        writeln!(
            src,
            "    ({path:?}, {mime:?}, {etag:?}, include_bytes!({:?})),",
            file.display().to_string()
        )
        .expect("writing to a String");
        println!("cargo:rerun-if-changed={}", file.display());
    }
    src.push_str("];\n");
    std::fs::write(dest, src).expect("cannot write assets.rs");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
