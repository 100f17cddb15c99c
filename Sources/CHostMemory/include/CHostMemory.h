#ifndef CHOSTMEMORY_H
#define CHOSTMEMORY_H

/// Host memory hints for the simulator: how the C allocator keeps freed blocks, and cache
/// prefetch.

/// Asks the C allocator to keep freed blocks below `mmapThreshold` bytes in the heap for
/// reuse and never to return the heap's top to the system before `trimThreshold` bytes are
/// free there. Returns 1 when both settings were taken, 0 when not (or on a C library
/// without `mallopt`, where it does nothing).
int tpufi_keep_freed_memory(int mmapThreshold, int trimThreshold);

/// Asks the CPU to bring the cache line holding `address` towards its first-level cache
/// (a hint: it never faults and changes no value).
static inline void tpufi_prefetch(const void *address) { __builtin_prefetch(address); }

#endif
