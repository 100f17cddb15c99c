import CHostMemory

/// The host allocator's settings for training. A step allocates and frees many arrays of
/// a few hundred kilobytes to a few megabytes (activations, gradients, lowered operands).
/// glibc serves blocks above its mmap threshold (128 KiB at first, raised as large blocks are
/// freed) with fresh mappings and returns free memory at the heap's top to the system, so
/// each step paid again for page faults and for the kernel's zeroing of new pages.
public enum HostMemory {
    /// Blocks below 32 MiB (the most glibc allows) come from the heap and are reused once
    /// freed; the heap's top is returned to the system only when a gigabyte of it is free.
    /// The process keeps its largest footprint instead of shrinking between steps. Values
    /// never depend on it. Returns whether the allocator took the settings (false on a C
    /// library other than glibc, where nothing changes).
    @discardableResult
    public static func keepFreedMemory() -> Bool {
        tpufi_keep_freed_memory(32 << 20, 1 << 30) == 1
    }
}
