//! Builds the native half of crates.io `mlx-sys` 0.7.0 on Linux, ahead of cargo.
//!
//! Stock `mlx-sys` 0.7.0 (pinned by `mlx-rs` 0.33.0) cannot build on Linux: its build script
//! downloads MLX from GitHub through CMake, links Apple frameworks, and mlx-c needs
//! `std::format` (gcc >= 13). Its Rust side, though, is only
//! `include!(concat!(env!("OUT_DIR"), "/bindings.rs"))`. So on Linux we keep the stock crate
//! (same `Cargo.lock` as macOS, no `[patch]`) and replace its *build script* with a cargo
//! build-script override (`[target.<triple>.mlx]` in a `--config` file, written by
//! `scripts/prepare-mlx-linux.sh`) that points `OUT_DIR` at the bindings made here and links the
//! library made here. This tool:
//!
//! 1. compiles mlx-c's C API (the `.cpp` list of its `CMakeLists.txt`) against a prebuilt MLX
//!    (the PyPI `mlx-cpu==0.32.2` wheel: `include/` + `lib/libmlx.so`), force-including
//!    `csrc/mlxc_linux_compat.h` (half types on x86_64, a `std::format` stand-in for gcc 12),
//!    plus `csrc/linux_shims.c` (`mach_approximate_time`, used by mlx-rs's PRNG seeding), into
//!    `<out>/lib/libmlxc.a`;
//! 2. generates `<out>/out/bindings.rs` with the same bindgen version and options as
//!    `mlx-sys` 0.7.0's build script (plus the compat header).
//!
//! It is idempotent: it does nothing when `<out>/stamp` matches its inputs.
//!
//! Usage: `mlx-sys-linux --mlx-dir <MLX prefix> --mlx-c <mlx-c source dir> --out <dir> [--jobs N]`

use std::{
    env,
    ffi::OsStr,
    fs,
    path::{Path, PathBuf},
    process::{self, Command},
    sync::atomic::{AtomicUsize, Ordering},
    sync::Mutex,
};

/// The MLX version mlx-c 0.7.0 (mlx-sys 0.7.0) is written against; 0.32.4 already fails
/// (`gather_qmm` signature changed).
const EXPECTED_MLX: &str = "0.32.2";
const COMPAT_H: &str = include_str!("../csrc/mlxc_linux_compat.h");
const SHIMS_C: &str = include_str!("../csrc/linux_shims.c");
const CXX_FLAGS: &[&str] = &["-std=c++20", "-O2", "-fPIC", "-DNDEBUG", "-w"];
const C_FLAGS: &[&str] = &["-O2", "-fPIC"];

type Res<T> = Result<T, String>;

struct Args {
    mlx_dir: PathBuf,
    mlx_c: PathBuf,
    out: PathBuf,
    jobs: usize,
}

fn usage() -> ! {
    eprintln!("usage: mlx-sys-linux --mlx-dir <MLX prefix: include/mlx/mlx.h + lib/libmlx.so> --mlx-c <mlx-c 0.7.0 sources> --out <dir> [--jobs N]");
    process::exit(2)
}

fn parse_args() -> Args {
    let (mut mlx_dir, mut mlx_c, mut out, mut jobs) = (None, None, None, None);
    let mut it = env::args_os().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage());
        match a.to_str() {
            Some("--mlx-dir") => mlx_dir = Some(PathBuf::from(val())),
            Some("--mlx-c") => mlx_c = Some(PathBuf::from(val())),
            Some("--out") => out = Some(PathBuf::from(val())),
            Some("--jobs") => jobs = val().to_str().and_then(|s| s.parse().ok()),
            _ => usage(),
        }
    }
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    match (mlx_dir, mlx_c, out) {
        (Some(mlx_dir), Some(mlx_c), Some(out)) => Args { mlx_dir, mlx_c, out, jobs: jobs.max(1) },
        _ => usage(),
    }
}

fn main() {
    let args = parse_args();
    if let Err(e) = run(&args) {
        eprintln!("mlx-sys-linux: error: {e}");
        process::exit(1);
    }
}

/// Accepts the prefix itself or `<prefix>/share/cmake/MLX` (what CMake's `MLX_DIR` would be).
fn mlx_prefix(dir: &Path) -> Res<PathBuf> {
    let is_prefix = |p: &Path| p.join("include/mlx/mlx.h").is_file() && p.join("lib/libmlx.so").is_file();
    for cand in [dir.to_path_buf(), dir.join("../../..")] {
        if is_prefix(&cand) {
            return cand.canonicalize().map_err(|e| format!("{}: {e}", cand.display()));
        }
    }
    Err(format!(
        "--mlx-dir {}: no MLX here (need include/mlx/mlx.h and lib/libmlx.so; e.g. the `mlx` dir of the \
         extracted PyPI wheel mlx-cpu=={EXPECTED_MLX}, see scripts/prepare-mlx-linux.sh)",
        dir.display()
    ))
}

fn mlx_version(prefix: &Path) -> Option<String> {
    let h = fs::read_to_string(prefix.join("include/mlx/version.h")).ok()?;
    let get = |k: &str| {
        h.lines().find_map(|l| l.trim().strip_prefix(&format!("#define {k} "))?.trim().parse::<u32>().ok())
    };
    Some(format!("{}.{}.{}", get("MLX_VERSION_MAJOR")?, get("MLX_VERSION_MINOR")?, get("MLX_VERSION_PATCH")?))
}

/// The `.cpp` files exactly as mlx-c's CMakeLists.txt lists them (commented-out lines skipped).
fn mlx_c_sources(mlx_c: &Path) -> Res<Vec<PathBuf>> {
    if !(mlx_c.join("mlx/c/mlx.h").is_file() && mlx_c.join("CMakeLists.txt").is_file()) {
        return Err(format!(
            "--mlx-c {}: not mlx-c sources (need mlx/c/mlx.h and CMakeLists.txt; they ship in the crates.io \
             crate mlx-sys 0.7.0 as src/mlx-c, which `cargo fetch` unpacks into ~/.cargo/registry/src)",
            mlx_c.display()
        ));
    }
    let cm = fs::read_to_string(mlx_c.join("CMakeLists.txt")).map_err(|e| e.to_string())?;
    let srcs: Vec<PathBuf> = cm
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("${CMAKE_CURRENT_LIST_DIR}/"))
        .map(|l| l.trim_end_matches(')').trim())
        .filter(|l| l.ends_with(".cpp"))
        .map(|l| mlx_c.join(l))
        .collect();
    if srcs.len() < 10 || srcs.iter().any(|s| !s.is_file()) {
        return Err(format!("could not parse the source list of {}/CMakeLists.txt", mlx_c.display()));
    }
    Ok(srcs)
}

/// The mlx-c headers bindgen reads, sorted (as mlx-sys 0.7.0's `bindgen_config::discover_headers`).
fn mlx_c_headers(mlx_c: &Path) -> Res<Vec<PathBuf>> {
    let dir = mlx_c.join("mlx/c");
    let mut headers: Vec<PathBuf> = fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension() == Some(OsStr::new("h")))
        .collect();
    headers.sort();
    Ok(headers)
}

/// FNV-1a over everything the outputs depend on.
struct Fingerprint(u64);
impl Fingerprint {
    fn add(&mut self, bytes: &[u8]) {
        for b in bytes.iter().chain([&0xffu8]) {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x100000001b3);
        }
    }
}

fn tool(var: &str, default: &str) -> String {
    env::var(var).ok().filter(|s| !s.is_empty()).unwrap_or_else(|| default.to_string())
}

fn run(args: &Args) -> Res<()> {
    let prefix = mlx_prefix(&args.mlx_dir)?;
    let mlx_c = args.mlx_c.canonicalize().map_err(|e| format!("--mlx-c {}: {e}", args.mlx_c.display()))?;
    let sources = mlx_c_sources(&mlx_c)?;
    let headers = mlx_c_headers(&mlx_c)?;
    let version = mlx_version(&prefix).unwrap_or_else(|| "unknown".into());
    if version != EXPECTED_MLX {
        eprintln!(
            "mlx-sys-linux: warning: MLX at {} is {version}; mlx-c 0.7.0 is written against {EXPECTED_MLX} \
             (0.32.4 fails to compile: gather_qmm signature changed)",
            prefix.display()
        );
    }
    let (cxx, cc, ar) = (tool("CXX", "c++"), tool("CC", "cc"), tool("AR", "ar"));

    let mut fp = Fingerprint(0xcbf29ce484222325);
    for s in [env!("CARGO_PKG_VERSION"), COMPAT_H, SHIMS_C, &version, &cxx, &cc, &ar] {
        fp.add(s.as_bytes());
    }
    fp.add(prefix.to_string_lossy().as_bytes());
    fp.add(CXX_FLAGS.join(" ").as_bytes());
    fp.add(C_FLAGS.join(" ").as_bytes());
    let mut inputs: Vec<PathBuf> = sources.iter().chain(&headers).cloned().collect();
    inputs.push(mlx_c.join("CMakeLists.txt"));
    inputs.push(prefix.join("include/mlx/version.h"));
    for f in &inputs {
        fp.add(f.to_string_lossy().as_bytes());
        fp.add(&fs::read(f).map_err(|e| format!("{}: {e}", f.display()))?);
    }
    let stamp = format!("{:016x}", fp.0);

    let out = &args.out;
    let (lib_dir, out_dir, src_dir, obj_dir) = (out.join("lib"), out.join("out"), out.join("src"), out.join("obj"));
    let (archive, bindings_rs, stamp_file) = (lib_dir.join("libmlxc.a"), out_dir.join("bindings.rs"), out.join("stamp"));
    if archive.is_file() && bindings_rs.is_file() && fs::read_to_string(&stamp_file).ok().as_deref() == Some(stamp.as_str()) {
        println!("mlx-sys-linux: {} is up to date (inputs {stamp})", out.display());
        return Ok(());
    }
    let _ = fs::remove_file(&stamp_file);
    let _ = fs::remove_dir_all(&obj_dir);
    for d in [&lib_dir, &out_dir, &src_dir, &obj_dir] {
        fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let compat = src_dir.join("mlxc_linux_compat.h");
    let shims = src_dir.join("linux_shims.c");
    fs::write(&compat, COMPAT_H).map_err(|e| e.to_string())?;
    fs::write(&shims, SHIMS_C).map_err(|e| e.to_string())?;

    // 1. Compile mlx-c + shims.
    let t0 = std::time::Instant::now();
    let mut jobs: Vec<(PathBuf, Command)> = Vec::new();
    for src in &sources {
        let obj = obj_dir.join(src.file_stem().unwrap()).with_extension("o");
        let mut c = Command::new(&cxx);
        c.args(CXX_FLAGS)
            .arg("-include")
            .arg(&compat)
            .arg("-I")
            .arg(&mlx_c)
            .arg("-I")
            .arg(prefix.join("include"))
            .arg("-c")
            .arg(src)
            .arg("-o")
            .arg(&obj);
        jobs.push((obj, c));
    }
    let shims_obj = obj_dir.join("mlxsys_linux_shims.o");
    let mut c = Command::new(&cc);
    c.args(C_FLAGS).arg("-c").arg(&shims).arg("-o").arg(&shims_obj);
    jobs.push((shims_obj, c));
    println!("mlx-sys-linux: compiling {} mlx-c sources with {cxx} ({} jobs)...", sources.len(), args.jobs);
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let jobs = Mutex::new(jobs.into_iter().map(Some).collect::<Vec<_>>());
    let count = jobs.lock().unwrap().len();
    std::thread::scope(|s| {
        for _ in 0..args.jobs.min(count) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= count {
                    break;
                }
                let (obj, mut cmd) = jobs.lock().unwrap()[i].take().unwrap();
                match cmd.output() {
                    Ok(o) if o.status.success() => {}
                    Ok(o) => failures.lock().unwrap().push(format!(
                        "{} failed ({}):\n{}",
                        obj.display(),
                        o.status,
                        String::from_utf8_lossy(&o.stderr)
                    )),
                    Err(e) => failures.lock().unwrap().push(format!("cannot run {cmd:?}: {e}")),
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    if !failures.is_empty() {
        return Err(failures.join("\n"));
    }
    let objs: Vec<PathBuf> = fs::read_dir(&obj_dir)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension() == Some(OsStr::new("o")))
        .collect();
    let _ = fs::remove_file(&archive);
    let st = Command::new(&ar).arg("crs").arg(&archive).args(&objs).status().map_err(|e| format!("{ar}: {e}"))?;
    if !st.success() {
        return Err(format!("{ar} crs {} failed: {st}", archive.display()));
    }
    println!("mlx-sys-linux: built {} in {:.0?}", archive.display(), t0.elapsed());

    // 2. Bindings, as mlx-sys 0.7.0's build script generates them (src/bindgen_config.rs), plus
    //    the compat header that defines float16_t/bfloat16_t on x86_64.
    let builder = headers.iter().fold(
        bindgen::Builder::default()
            .rust_target("1.73.0".parse().expect("rust-version"))
            .clang_arg(format!("-I{}", mlx_c.display()))
            .clang_arg("-include")
            .clang_arg(compat.to_string_lossy())
            .blocklist_function("malloc")
            .blocklist_function("realloc"),
        |b, h| b.header(h.to_string_lossy()),
    );
    let bindings = builder.generate().map_err(|e| {
        format!("bindgen failed: {e} (bindgen needs libclang: apt-get install libclang-dev, or set LIBCLANG_PATH)")
    })?;
    let text = format!(
        "// Generated by crates/mlx-sys-linux (inputs {stamp}) for mlx-sys 0.7.0 on Linux; do not edit.\n{bindings}"
    );
    fs::write(&bindings_rs, text).map_err(|e| format!("{}: {e}", bindings_rs.display()))?;
    fs::write(&stamp_file, &stamp).map_err(|e| e.to_string())?;
    println!("mlx-sys-linux: wrote {} (MLX {version}, prefix {})", bindings_rs.display(), prefix.display());
    Ok(())
}
