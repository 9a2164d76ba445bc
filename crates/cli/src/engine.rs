//! The wasmtime engine `acr-webhook up` serves with, and that the compiler process
//! ([`crate::precompile`]) and `bench-instantiate` make the same way: the component model and
//! epoch interruption on, the pooling allocator (sized from the request slots, see
//! [`crate::instance_pool`]) when the machine can reserve its address space, otherwise the
//! on-demand allocator with a warning.

use crate::log::{self, Level};
use crate::slots::DEFAULT_MAX_CONCURRENT_REQUESTS;
use anyhow::{anyhow, Result};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, Store};

/// Bytes of each pooled instance's memory and table kept resident between requests.
const KEEP_RESIDENT_BYTES: usize = 64 << 10;

/// Address-space bits the pooling-allocator probe reserves, as `wasmtime serve` does: the
/// default pool needs about this much virtual memory.
const POOLING_PROBE_BITS: u32 = 42;

/// How instances are allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocation {
    /// Pre-reserved slots reused (and zeroed) between requests.
    Pooling,
    /// Fresh mappings per instance; used when the pool cannot be reserved.
    OnDemand,
}

/// Creates the engine: component model on, pooling allocator when possible, otherwise the
/// on-demand allocator with a warning on stderr.
pub fn new_engine() -> Result<(Engine, Allocation)> {
    new_engine_with(EngineOptions::default())
}

/// What the benchmark may change in `up`'s engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineOptions {
    /// Write /tmp/perf-<pid>.map so `perf report` names wasm functions.
    pub perfmap: bool,
    /// Bytes of each pooled memory and table kept resident between instances.
    pub keep_resident: usize,
    /// Instances the pool holds at once: `up`'s request slots (see [`crate::instance_pool`]).
    pub instances: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            perfmap: false,
            keep_resident: KEEP_RESIDENT_BYTES,
            instances: DEFAULT_MAX_CONCURRENT_REQUESTS,
        }
    }
}

/// [`new_engine`] with options (the benchmark's profiling and keep-resident experiments).
pub fn new_engine_with(options: EngineOptions) -> Result<(Engine, Allocation)> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    // The guest deadline: every wasmtime store gets one (a store without one traps at once).
    config.epoch_interruption(true);
    if options.perfmap {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }

    if pooling_address_space_available() {
        let mut pooled = config.clone();
        let pool = crate::instance_pool::pooling_config(options.instances, options.keep_resident);
        pooled.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        match Engine::new(&pooled) {
            Ok(engine) => return Ok((engine, Allocation::Pooling)),
            Err(e) => log::message(
                Level::Warn,
                None,
                &format!("the pooling allocator is unavailable ({e}); using on-demand allocation"),
            ),
        }
    } else {
        log::message(
            Level::Warn,
            None,
            "cannot reserve the virtual memory the pooling allocator needs; using on-demand allocation",
        );
    }
    let engine = Engine::new(&config).map_err(|e| anyhow!("cannot create the wasm engine: {e}"))?;
    Ok((engine, Allocation::OnDemand))
}

/// `wasmtime serve`'s test: can a 64-bit memory with a 2^42-byte static reservation be made?
fn pooling_address_space_available() -> bool {
    use wasmtime::{Memory, MemoryType};
    let mut config = Config::new();
    config.wasm_memory64(true);
    config.memory_reservation(1 << POOLING_PROBE_BITS);
    let Ok(engine) = Engine::new(&config) else {
        return false;
    };
    let mut wasm_store = Store::new(&engine, ());
    // The maximum is in 64 KiB wasm pages.
    let ty = MemoryType::new64(0, Some(1 << (POOLING_PROBE_BITS - 16)));
    Memory::new(&mut wasm_store, ty).is_ok()
}
