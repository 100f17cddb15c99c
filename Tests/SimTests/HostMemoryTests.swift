import Testing
import Sim

@Suite struct HostMemoryTests {
    /// The settings reach glibc's allocator (an `#if` that missed glibc once made this a
    /// silent no-op).
    @Test func glibcTakesTheAllocatorSettings() {
        #if canImport(Glibc)
        #expect(HostMemory.keepFreedMemory())
        #else
        #expect(!HostMemory.keepFreedMemory())
        #endif
    }
}
