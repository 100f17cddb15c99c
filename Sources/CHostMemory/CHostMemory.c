#include "CHostMemory.h"
#include <stdlib.h>  // defines __GLIBC__ on glibc

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
