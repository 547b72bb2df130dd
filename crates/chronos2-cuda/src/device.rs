//! One GPU context: its stream, cuBLAS handle and loaded kernels, and the launch helpers the
//! operations use.
//!
//! Everything runs in order on one stream, and buffers are freed stream-ordered
//! (`cuMemFreeAsync`), so cudarc's per-buffer event tracking is turned off: it would record two
//! events per allocation and launch for ordering that the single stream already gives.

use std::sync::{Arc, Mutex, MutexGuard};

use chronos2_core::{Error, Result};
use cudarc::cublas::CudaBlas;
use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, LaunchConfig, PushKernelArg};

use crate::kernels::Kernels;
use crate::probe::{self, GpuInfo};

/// Threads per block of the element-wise kernels.
const BLOCK: u32 = 256;

pub(crate) fn err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Backend(format!("cuda: {what}: {e}"))
}

/// A CUDA context on device 0 with everything the operations need.
pub struct Device {
    pub(crate) ctx: Arc<CudaContext>,
    pub(crate) stream: Arc<CudaStream>,
    blas: Mutex<CudaBlas>,
    pub(crate) kernels: Kernels,
    info: GpuInfo,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Device({})", self.info.name)
    }
}

impl Device {
    /// Opens device 0: checks the libraries (never panics when they are missing), creates the
    /// context, stream and cuBLAS handle (fp32 math without TF32), keeps freed memory in the
    /// stream-ordered pool, and compiles / loads the kernels.
    pub fn open() -> Result<Device> {
        let info = probe::gpu_info().map_err(|e| Error::Backend(format!("cuda: {e}")))?;
        let ctx = CudaContext::new(0).map_err(|e| err("creating the context", e))?;
        // SAFETY: called before any buffer exists; all work of this context goes to one stream
        // (`stream`, also cuBLAS's), so no buffer is used on two streams (see the module docs).
        unsafe { ctx.disable_event_tracking() };
        keep_pool_memory(&ctx)?;
        let stream = ctx.new_stream().map_err(|e| err("creating a stream", e))?;
        let blas = CudaBlas::new(stream.clone()).map_err(|e| err("creating the cuBLAS handle", e))?;
        // SAFETY: the handle is valid (just created); CUBLAS_DEFAULT_MATH keeps fp32 GEMMs in
        // full fp32 (no TF32 tensor cores), as the reference computes.
        let status = unsafe {
            cudarc::cublas::sys::cublasSetMathMode(
                *blas.handle(),
                cudarc::cublas::sys::cublasMath_t::CUBLAS_DEFAULT_MATH,
            )
        };
        if status != cudarc::cublas::sys::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
            return Err(err("cublasSetMathMode", format!("{status:?}")));
        }
        let kernels = Kernels::load(&ctx, info.compute_capability).map_err(|e| Error::Backend(format!("cuda: {e}")))?;
        Ok(Device { ctx, stream, blas: Mutex::new(blas), kernels, info })
    }

    /// The GPU as probed when the device was opened.
    pub fn info(&self) -> &GpuInfo {
        &self.info
    }

    pub(crate) fn blas(&self) -> MutexGuard<'_, CudaBlas> {
        self.blas.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// An uninitialised buffer of `len` elements; every caller writes all of it before it is read.
    pub(crate) fn alloc<T: cudarc::driver::DeviceRepr>(&self, len: usize) -> Result<CudaSlice<T>> {
        // SAFETY: the memory is uninitialised; each caller launches a kernel or copy that writes
        // every element before anything reads it.
        unsafe { self.stream.alloc::<T>(len.max(1)) }.map_err(|e| err("allocating device memory", e))
    }

    /// The raw device address of element `offset` of `buf`.
    pub(crate) fn ptr<T>(&self, buf: &CudaSlice<T>, offset: usize) -> u64 {
        let (ptr, _guard) = buf.device_ptr(&self.stream);
        ptr + (offset * std::mem::size_of::<T>()) as u64
    }

    pub(crate) fn upload<T: cudarc::driver::DeviceRepr>(&self, data: &[T]) -> Result<CudaSlice<T>> {
        if data.is_empty() {
            return self.alloc(0);
        }
        self.stream.clone_htod(data).map_err(|e| err("copying to the device", e))
    }

    /// Copies `len` elements from `offset` of `buf` to the host (waits for the stream).
    pub(crate) fn download<T: cudarc::driver::DeviceRepr + Default + Clone>(
        &self,
        buf: &CudaSlice<T>,
        offset: usize,
        len: usize,
    ) -> Result<Vec<T>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let view = buf.slice(offset..offset + len);
        self.stream.clone_dtoh(&view).map_err(|e| err("copying to the host", e))
    }

    /// A 1-D launch over `n` elements.
    pub(crate) fn grid(n: usize) -> Result<LaunchConfig> {
        let blocks = n.div_ceil(BLOCK as usize).max(1);
        let blocks = u32::try_from(blocks).map_err(|_| Error::Backend(format!("cuda: {n} elements in one launch")))?;
        Ok(LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (BLOCK, 1, 1), shared_mem_bytes: 0 })
    }

    /// Launches `f` with `args` (each a device address or a scalar of the kernel's C type).
    ///
    /// # Safety
    /// `args` must match the kernel's parameters in number, order and type, every address must
    /// point to live device memory of this context large enough for what the kernel touches
    /// under `cfg`, and the kernel must only write buffers no other pending work reads.
    pub(crate) unsafe fn launch(&self, f: &CudaFunction, cfg: LaunchConfig, args: &[&dyn KernelArg]) -> Result<()> {
        let mut builder = self.stream.launch_builder(f);
        for a in args {
            a.push(&mut builder);
        }
        builder.launch(cfg).map(drop).map_err(|e| err("kernel launch", e))
    }
}

/// A value passed by value to a kernel.
pub(crate) trait KernelArg {
    fn push<'a>(&'a self, builder: &mut cudarc::driver::LaunchArgs<'a>);
}

macro_rules! kernel_arg {
    ($($t:ty),*) => {$(
        impl KernelArg for $t {
            fn push<'a>(&'a self, builder: &mut cudarc::driver::LaunchArgs<'a>) {
                builder.arg(self);
            }
        }
    )*};
}

kernel_arg!(u32, u64, f32, [u64; crate::layout::MAX_RANK]);

/// Keeps memory freed to the device's default pool for reuse (release threshold = all of it),
/// so each forward's temporaries cost no `cuMemAlloc` after the first.
fn keep_pool_memory(ctx: &Arc<CudaContext>) -> Result<()> {
    use cudarc::driver::sys;
    if !ctx.has_async_alloc() {
        return Ok(());
    }
    // SAFETY: `cu_device` comes from a live context; the attribute value is a u64 as the
    // driver expects for CU_MEMPOOL_ATTR_RELEASE_THRESHOLD.
    unsafe {
        let pool = cudarc::driver::result::device::get_default_mem_pool(ctx.cu_device())
            .map_err(|e| err("the default memory pool", e))?;
        let mut threshold: u64 = u64::MAX;
        let status = sys::cuMemPoolSetAttribute(
            pool,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
            (&mut threshold as *mut u64).cast(),
        );
        if status != sys::cudaError_enum::CUDA_SUCCESS {
            return Err(err("cuMemPoolSetAttribute", format!("{status:?}")));
        }
    }
    Ok(())
}
