#ifndef CHOSTMEMORY_H
#define CHOSTMEMORY_H

/// Asks the C allocator to keep freed blocks below `mmapThreshold` bytes in the heap for
/// reuse and never to return the heap's top to the system before `trimThreshold` bytes are
/// free there. Returns 1 when both settings were taken, 0 when not (or on a C library
/// without `mallopt`, where it does nothing).
int tpufi_keep_freed_memory(int mmapThreshold, int trimThreshold);

#endif
