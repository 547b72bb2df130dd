//! Reading the operands of the training custom ops (RMS norm, rope, softmax, LoRA linear).

use candle_core::{CpuStorage, Layout};

/// Rows per rayon task (a task is a few thousand floats or more).
pub(super) fn rows_per_task(width: usize) -> usize {
    (4096 / width.max(1)).max(1)
}

/// The contiguous f32 values of `storage` laid out by `layout`; `op` names the op in errors.
pub(super) fn contiguous_f32<'a>(op: &str, storage: &'a CpuStorage, layout: &Layout) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(values) = storage else {
        candle_core::bail!("{op}: the operands must be f32");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op}: the operands must be contiguous");
    };
    Ok(&values[start..end])
}
