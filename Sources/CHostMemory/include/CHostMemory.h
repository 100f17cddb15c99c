#ifndef CHOSTMEMORY_H
#define CHOSTMEMORY_H

/// Asks the C allocator to keep freed blocks below `mmapThreshold` bytes in the heap for
/// reuse and never to return the heap's top to the system before `trimThreshold` bytes are
/// free there. Returns 1 when both settings were taken, 0 when not (or on a C library
/// without `mallopt`, where it does nothing).
int tpufi_keep_freed_memory(int mmapThreshold, int trimThreshold);

/// Moves the calling thread to Linux's SCHED_IDLE policy: it runs only on a core that no
/// normal thread wants, and yields to any that wakes. Returns 1 when the policy was taken, 0
/// when not (another kernel, or refused). Permanent for the thread: an unprivileged thread
/// may not return to the normal policy, so call it only on a thread of its own.
int tpufi_run_thread_when_idle(void);

#endif
