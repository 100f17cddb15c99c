import Testing
@testable import Recorder

@Suite struct ZstdTests {
    static let sample: [UInt8] = (0..<100_000).map { i in UInt8(truncatingIfNeeded: (i * 7919) >> 5 ^ i % 13) }

    @Test func roundTripsAndCompresses() throws {
        let frame = try Zstd.compress(Self.sample)
        #expect(frame.count < Self.sample.count / 2)
        #expect(try Zstd.decompress(frame, limit: Self.sample.count) == Self.sample)
        #expect(try Zstd.decompress(try Zstd.compress([]), limit: 0) == [])
    }

    @Test func bothMatchFindersRoundTripBehindAPrefix() throws {
        for finder in [Zstd.MatchFinder.levels, .small] {
            let out = try Self.sample.withUnsafeBytes { try Zstd.compress($0, matchFinder: finder, after: [9, 8, 7]) }
            #expect(Array(out.prefix(3)) == [9, 8, 7])
            #expect(out.count < Self.sample.count / 2)
            #expect(try Zstd.decompress(Array(out.dropFirst(3)), limit: Self.sample.count) == Self.sample, "\(finder)")
            let empty = try [UInt8]().withUnsafeBytes { try Zstd.compress($0, matchFinder: finder, after: [1]) }
            #expect(empty.first == 1)
            #expect(try Zstd.decompress(Array(empty.dropFirst()), limit: 0) == [])
        }
    }

    @Test func refusesFramesLargerThanTheLimitBeforeAllocating() throws {
        let frame = try Zstd.compress(Self.sample)
        #expect(throws: ZstdError.sizeLimitExceeded(declared: 100_000, limit: 99_999)) {
            try Zstd.decompress(frame, limit: 99_999)
        }
    }

    @Test func detectsFlippedBytesAndTruncation() throws {
        let frame = try Zstd.compress(Self.sample)
        #expect(throws: ZstdError.self) { try Zstd.decompress(Array(frame.dropLast(9)), limit: 1 << 20) }
        #expect(throws: ZstdError.self) { try Zstd.decompress([1, 2, 3, 4, 5, 6, 7, 8], limit: 1 << 20) }
        // Flip one bit anywhere after the header: the frame checksum (or the decoder) objects.
        for position in stride(from: 12, to: frame.count, by: max(1, frame.count / 40)) {
            var damaged = frame
            damaged[position] ^= 0x10
            #expect(throws: ZstdError.self, "bit flip at byte \(position)") { try Zstd.decompress(damaged, limit: 1 << 20) }
        }
    }
}
