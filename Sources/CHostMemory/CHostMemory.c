#define _GNU_SOURCE  // SCHED_IDLE; before any system header
#include "CHostMemory.h"
#include <stdlib.h>  // defines __GLIBC__ on glibc
#if defined(__linux__)
#include <sched.h>
#endif

#if defined(__GLIBC__)
#include <malloc.h>

int tpufi_keep_freed_memory(int mmapThreshold, int trimThreshold) {
    return mallopt(M_MMAP_THRESHOLD, mmapThreshold) == 1 && mallopt(M_TRIM_THRESHOLD, trimThreshold) == 1;
}
#else
int tpufi_keep_freed_memory(int mmapThreshold, int trimThreshold) {
    (void)mmapThreshold;
    (void)trimThreshold;
    return 0;
}
#endif

int tpufi_run_thread_when_idle(void) {
#if defined(__linux__) && defined(SCHED_IDLE)
    struct sched_param param = {0};
    return sched_setscheduler(0, SCHED_IDLE, &param) == 0;  // 0: the calling thread
#else
    return 0;
#endif
}
