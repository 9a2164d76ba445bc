//! The pooling allocator's limits, sized from the request slots.
//!
//! wasmtime's defaults hold 1,000 core instances, memories and tables in all; a request's
//! component instance takes several of each (the app's module, the WASI adapter, the shims
//! wit-component adds, and for a composed component the variables adapter too). At 256 slots
//! the pool would run out before the slots do, and the requests beyond would be answered
//! 500 instead of 503. So the pool holds, for every slot, one component instance and up to
//! [`CORE_INSTANCES_PER_REQUEST`] core instances, [`MEMORIES_PER_REQUEST`] memories and
//! [`TABLES_PER_REQUEST`] tables; a component that needs more is refused when it is loaded
//! (wasmtime names the limit), not at its first request.

use wasmtime::PoolingAllocationConfig;

/// Core instances one request's component may hold (the Spin module made a component takes
/// 4: at 1,000 in all, the 251st request at once failed; a composed one takes more).
pub const CORE_INSTANCES_PER_REQUEST: u32 = 12;
/// Linear memories one request's component may define (the Spin module made a component:
/// 1, `Component::resources_required`).
pub const MEMORIES_PER_REQUEST: u32 = 4;
/// Tables one request's component may define (the Spin module made a component: 2).
pub const TABLES_PER_REQUEST: u32 = 6;

/// The pool for `instances` requests at once, keeping `keep_resident` bytes of each memory
/// and table resident between instances.
pub fn pooling_config(instances: usize, keep_resident: usize) -> PoolingAllocationConfig {
    let instances = u32::try_from(instances.max(1)).unwrap_or(u32::MAX);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(instances)
        .total_stacks(instances)
        .max_core_instances_per_component(CORE_INSTANCES_PER_REQUEST)
        .total_core_instances(instances.saturating_mul(CORE_INSTANCES_PER_REQUEST))
        .max_memories_per_component(MEMORIES_PER_REQUEST)
        .total_memories(instances.saturating_mul(MEMORIES_PER_REQUEST))
        .max_tables_per_component(TABLES_PER_REQUEST)
        .total_tables(instances.saturating_mul(TABLES_PER_REQUEST))
        // Keep the first pages of each slot's memory and table resident between instances
        // (zeroed, not returned to the kernel): each request otherwise page-faults them
        // back. Measured with `acr-webhook bench-instantiate`: instantiate + handle 114.9 →
        // 74.4 µs median (BENCHMARKS.md).
        .linear_memory_keep_resident(keep_resident)
        .table_keep_resident(keep_resident)
        .pagemap_scan(wasmtime::Enabled::Auto);
    pool
}
