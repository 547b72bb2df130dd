//! Intel AMX tiles (AMX-BF16 `tdpbf16ps`, AMX-INT8 `tdpbusd`) for the bf16 and w8a8 products.
//!
//! # Detection
//!
//! [`available`]: CPUID leaf 7 reports AMX-TILE, AMX-BF16 and AMX-INT8, XCR0 has the tile
//! state enabled by the OS, and Linux grants this process the tile data state
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`; the grant is process-wide). A
//! refusal leaves the AVX-512 kernels in charge.
//!
//! # Tiles
//!
//! One configuration for both products: eight tiles of 16 rows × 64 bytes. A block of
//! [`BLOCK`] × [`BLOCK`] outputs keeps four accumulator tiles (`tmm0..tmm3`: rows 0-15 / 16-31 ×
//! columns 0-15 / 16-31), loads two tiles of activations (`tmm4`, `tmm5`: 16 rows each) and two
//! of weights (`tmm6`, `tmm7`: the 16 outputs of each half of a 32-output strip) per step of
//! `k`, and runs four products. The weights are read in place from the layouts of
//! [`crate::gemm::Bf16Matmul`] (`[k / 2][32][2]` bf16: a step of 32 inputs is 16 rows of 128
//! bytes, each half-strip tile a 64-byte column of them) and [`crate::w8a8::W8a8Matmul`]
//! (`[k / 4][32][4]` bytes: a group of 64 inputs is 16 rows of 128 bytes): they are already the
//! pair (bf16) and quad (int8) order that the tile products read.
//!
//! The instructions are written with `asm!` (the AMX intrinsics are not stable); the compiler
//! never uses the tile registers itself, so each instruction is its own `asm!` block. A thread
//! loads the configuration with [`TileConfig::load`] before its first tile instruction and
//! releases the tiles when the guard drops.

use std::arch::asm;
use std::sync::OnceLock;

/// Rows and columns of the output block that one call computes.
pub(crate) const BLOCK: usize = 32;
/// Rows of one tile.
pub(crate) const TILE_ROWS: usize = 16;

/// Whether this process can run AMX-BF16 and AMX-INT8 tiles (checked once).
pub fn available() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| cpu_has_amx() && os_grants_tiles())
}

/// `(eax, ebx, ecx, edx)` of CPUID `leaf`, `subleaf`.
fn cpuid(leaf: u32, subleaf: u32) -> [u32; 4] {
    let (eax, ebx, ecx, edx): (u32, u64, u32, u32);
    // SAFETY: CPUID exists on every x86_64 CPU and only writes the four registers; rbx is
    // reserved by LLVM, so it is saved in a scratch register around the instruction.
    unsafe {
        asm!(
            "mov {save}, rbx",
            "cpuid",
            "xchg {save}, rbx",
            save = out(reg) ebx,
            inout("eax") leaf => eax,
            inout("ecx") subleaf => ecx,
            out("edx") edx,
            options(nostack, preserves_flags),
        );
    }
    [eax, ebx as u32, ecx, edx]
}

/// CPUID says AMX-TILE, AMX-BF16 and AMX-INT8, and the OS enabled the tile state in XCR0.
fn cpu_has_amx() -> bool {
    if cpuid(0, 0)[0] < 7 {
        return false;
    }
    let edx = cpuid(7, 0)[3];
    let (bf16, tile, int8) = (edx >> 22 & 1, edx >> 24 & 1, edx >> 25 & 1);
    // OSXSAVE: XGETBV is usable.
    let osxsave = cpuid(1, 0)[2] >> 27 & 1;
    if bf16 & tile & int8 & osxsave == 0 {
        return false;
    }
    let (lo, _hi): (u32, u32);
    // SAFETY: OSXSAVE is set, so XGETBV with ecx = 0 (XCR0) is defined; it only writes eax/edx.
    unsafe { asm!("xgetbv", in("ecx") 0u32, out("eax") lo, out("edx") _hi, options(nostack, nomem, preserves_flags)) };
    // XTILECFG (bit 17) and XTILEDATA (bit 18).
    lo >> 17 & 3 == 3
}

/// Asks Linux for the tile data state (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`).
#[cfg(target_os = "linux")]
fn os_grants_tiles() -> bool {
    const SYS_ARCH_PRCTL: i64 = 158;
    const ARCH_REQ_XCOMP_PERM: u64 = 0x1023;
    const XFEATURE_XTILEDATA: u64 = 18;
    let ret: i64;
    // SAFETY: a plain Linux syscall that only changes this process's permitted xstate
    // components; the kernel clobbers rcx and r11.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL => ret,
            in("rdi") ARCH_REQ_XCOMP_PERM,
            in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret == 0
}

/// Other systems: not attempted (their permission protocols are not implemented).
#[cfg(not(target_os = "linux"))]
fn os_grants_tiles() -> bool {
    false
}

/// The 64-byte tile configuration (palette 1): every tile 16 rows × 64 bytes.
#[repr(C, align(64))]
pub(crate) struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
    reserved2: [u8; 16],
}

/// The tiles configured on this thread; releases them on drop.
pub(crate) struct Tiles(std::marker::PhantomData<*const ()>);

impl TileConfig {
    /// Loads the configuration on this thread (zeroing every tile).
    ///
    /// # Safety
    /// [`available`] must be true.
    pub(crate) unsafe fn load() -> Tiles {
        let mut cfg = TileConfig {
            palette: 1,
            start_row: 0,
            reserved: [0; 14],
            colsb: [0; 16],
            rows: [0; 16],
            reserved2: [0; 16],
        };
        for t in 0..8 {
            cfg.colsb[t] = 64;
            cfg.rows[t] = TILE_ROWS as u8;
        }
        // SAFETY: AMX is available and granted (caller); `cfg` is a valid palette-1 configuration.
        unsafe { asm!("ldtilecfg [{0}]", in(reg) &cfg as *const TileConfig, options(nostack, readonly)) };
        Tiles(std::marker::PhantomData)
    }
}

impl Drop for Tiles {
    fn drop(&mut self) {
        // SAFETY: the tiles were configured by `TileConfig::load` on this thread (a `Tiles` is
        // neither Send nor created otherwise), so AMX is usable.
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    }
}

macro_rules! tile_zero {
    ($t:literal) => {
        asm!(concat!("tilezero tmm", $t), options(nostack, nomem))
    };
}

macro_rules! tile_load {
    ($t:literal, $ptr:expr, $stride:expr) => {
        asm!(concat!("tileloadd tmm", $t, ", [{p} + {s}*1]"), p = in(reg) $ptr, s = in(reg) $stride, options(nostack, readonly))
    };
}

macro_rules! tile_store {
    ($t:literal, $ptr:expr, $stride:expr) => {
        asm!(concat!("tilestored [{p} + {s}*1], tmm", $t), p = in(reg) $ptr, s = in(reg) $stride, options(nostack))
    };
}

macro_rules! tile_dot {
    ($op:literal, $c:literal, $a:literal, $b:literal) => {
        asm!(concat!($op, " tmm", $c, ", tmm", $a, ", tmm", $b), options(nostack, nomem))
    };
}

/// `c[i][j] = Σ_p a[i][p] · b[p][j]` over bf16 pairs for a 32 × 32 block: `a` rows of `kp`
/// words (bf16 pairs, `lda` bytes apart), `b` a strip `[kp][32][2]`, `c` 32 rows of 32 floats.
/// With `two_rows` false only rows 0-15 are computed (rows 16-31 of `c` are left as they were).
///
/// # Safety
/// The tiles are configured on this thread ([`TileConfig::load`]); `kp` is a multiple of 16;
/// `a` holds 16 (or 32 with `two_rows`) readable rows of `kp` words; `b` holds `kp × 64` values.
pub(crate) unsafe fn bf16_block(a: *const u32, lda: usize, b: *const u16, kp: usize, two_rows: bool, c: *mut f32) {
    const B_STRIDE: usize = 128;
    // SAFETY: the caller's contract covers every address read or written below; tiles 0-7 are
    // configured as 16 × 64 bytes.
    unsafe {
        tile_zero!("0");
        tile_zero!("1");
        if two_rows {
            tile_zero!("2");
            tile_zero!("3");
        }
        let mut p = 0;
        while p < kp {
            let a0 = a.add(p);
            let b0 = b.add(p * 64);
            tile_load!("4", a0, lda);
            tile_load!("6", b0, B_STRIDE);
            tile_load!("7", b0.add(32), B_STRIDE);
            tile_dot!("tdpbf16ps", "0", "4", "6");
            tile_dot!("tdpbf16ps", "1", "4", "7");
            if two_rows {
                tile_load!("5", (a0 as *const u8).add(TILE_ROWS * lda), lda);
                tile_dot!("tdpbf16ps", "2", "5", "6");
                tile_dot!("tdpbf16ps", "3", "5", "7");
            }
            p += TILE_ROWS;
        }
        store_accumulators(c as *mut u8, two_rows);
    }
}

/// `c[i][j] = Σ a[i][t] · b[t][j]` over one group of 64 inputs (unsigned × signed bytes, int32
/// sums) for a 32 × 32 block: `a` rows of 64 codes (`lda` bytes apart), `b` a strip's
/// `[16][32][4]` codes, `c` 32 rows of 32 int32. With `two_rows` false only rows 0-15.
///
/// # Safety
/// The tiles are configured on this thread; `a` holds 16 (or 32) readable rows of 64 bytes,
/// `b` 2048 bytes, `c` 32 × 32 writable int32.
pub(crate) unsafe fn int8_group_block(a: *const u8, lda: usize, b: *const i8, two_rows: bool, c: *mut i32) {
    const B_STRIDE: usize = 128;
    // SAFETY: as for `bf16_block`.
    unsafe {
        tile_zero!("0");
        tile_zero!("1");
        tile_load!("4", a, lda);
        tile_load!("6", b, B_STRIDE);
        tile_load!("7", b.add(64), B_STRIDE);
        tile_dot!("tdpbusd", "0", "4", "6");
        tile_dot!("tdpbusd", "1", "4", "7");
        if two_rows {
            tile_zero!("2");
            tile_zero!("3");
            tile_load!("5", a.add(TILE_ROWS * lda), lda);
            tile_dot!("tdpbusd", "2", "5", "6");
            tile_dot!("tdpbusd", "3", "5", "7");
        }
        store_accumulators(c as *mut u8, two_rows);
    }
}

/// Stores `tmm0..tmm3` as a 32 × 32 block of 4-byte values at `c` (128 bytes a row).
///
/// # Safety
/// Tiles configured; `c` writable for 32 (or 16 without `two_rows`) rows of 128 bytes.
#[inline(always)]
unsafe fn store_accumulators(c: *mut u8, two_rows: bool) {
    const C_STRIDE: usize = 4 * BLOCK;
    // SAFETY: the caller's contract.
    unsafe {
        tile_store!("0", c, C_STRIDE);
        tile_store!("1", c.add(64), C_STRIDE);
        if two_rows {
            tile_store!("2", c.add(TILE_ROWS * C_STRIDE), C_STRIDE);
            tile_store!("3", c.add(TILE_ROWS * C_STRIDE + 64), C_STRIDE);
        }
    }
}

/// Weight bytes of the strips of one task that should stay in L2 while its row blocks pass.
const STRIPS_L2_BYTES: usize = 1 << 20;

/// Splits an `(m, n)` product into tasks of whole 32-row blocks × whole 32-column strips, about
/// three per rayon thread, and runs `job(rows, strips)` for each in parallel (one task for a
/// small product). A task runs its row blocks one after another over all its strips, so its
/// strips (`strip_bytes` of weight each) are kept to about 1 MiB (they stay in L2) and the
/// activations are read once per task: as many strips per task as fit, then rows split to
/// reach the task count, then strips split further if there are too few row blocks. The jobs
/// together must write every output.
pub(crate) fn for_block_tasks(
    m: usize,
    n: usize,
    k: usize,
    strip_bytes: usize,
    job: impl Fn(std::ops::Range<usize>, std::ops::Range<usize>) + Sync,
) {
    use rayon::prelude::*;
    let (row_blocks, strips) = (m.div_ceil(BLOCK), n.div_ceil(BLOCK));
    let threads = rayon::current_num_threads().max(1);
    if m * n * k < 1 << 18 || threads == 1 {
        job(0..row_blocks, 0..strips);
        return;
    }
    let want = 3 * threads;
    let strips_in_l2 = (STRIPS_L2_BYTES / strip_bytes.max(1)).max(1);
    let mut strip_tasks = strips.div_ceil(strips_in_l2);
    let row_tasks = want.div_ceil(strip_tasks).min(row_blocks);
    if row_tasks * strip_tasks < want {
        strip_tasks = want.div_ceil(row_tasks).min(strips);
    }
    let (per_strip_task, per_row_task) = (strips.div_ceil(strip_tasks), row_blocks.div_ceil(row_tasks));
    let tasks: Vec<(usize, usize)> = (0..row_blocks)
        .step_by(per_row_task)
        .flat_map(|r| (0..strips).step_by(per_strip_task).map(move |s| (r, s)))
        .collect();
    tasks.into_par_iter().for_each(|(r, s)| {
        job(r..(r + per_row_task).min(row_blocks), s..(s + per_strip_task).min(strips));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_tasks_cover_every_block_once() {
        for (m, n, k) in [(1usize, 1usize, 1usize), (11, 3072, 768), (2240, 768, 3072), (300, 100, 600), (65, 33, 48)] {
            let (rb, sb) = (m.div_ceil(BLOCK), n.div_ceil(BLOCK));
            let seen = std::sync::Mutex::new(vec![0u32; rb * sb]);
            for_block_tasks(m, n, k, k * 64, |rows, strips| {
                let mut seen = seen.lock().unwrap();
                for r in rows {
                    for s in strips.clone() {
                        seen[r * sb + s] += 1;
                    }
                }
            });
            assert!(seen.into_inner().unwrap().iter().all(|&c| c == 1), "({m}, {n}, {k})");
        }
    }

    #[test]
    fn detection_agrees_with_the_cpu_flags() {
        // Where /proc/cpuinfo exists, AMX can only be reported where the CPU lists it.
        if let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") {
            if !info.contains("amx_bf16") || !info.contains("amx_int8") {
                assert!(!available());
            }
        }
        if !available() {
            println!("SKIPPED: no AMX on this CPU (or the OS refused the tile state)");
        }
    }
}
