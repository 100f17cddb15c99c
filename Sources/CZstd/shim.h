// The block-level functions (ZSTD_compressBlock, ZSTD_createCDict_advanced) are in zstd's
// static-linking section; libzstd exports them (Debian's 1.5.4 among others).
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>
