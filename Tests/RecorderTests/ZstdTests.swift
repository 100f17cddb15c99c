import Foundation
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

    // MARK: Frames written plane by plane

    /// `count` bytes of noise (SplitMix64), different for each `seed`.
    static func noise(_ count: Int, seed: UInt64) -> [UInt8] {
        var state = seed
        return (0..<count).map { _ in
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return UInt8(truncatingIfNeeded: z ^ (z >> 31))
        }
    }

    /// Bytes like fp32 exponents: a few values, skewed.
    static func exponents(_ count: Int) -> [UInt8] {
        noise(count, seed: 99).map { 0x3C + $0 % 7 / 3 }
    }

    /// The frame's blocks: (type, size), type 0 raw, 1 RLE, 2 compressed (after the
    /// single-segment header this writer emits).
    static func blocks(_ frame: [UInt8]) -> [(type: Int, size: Int)] {
        let fcsBytes = [1, 2, 4, 8][Int(frame[4] >> 6)]
        var at = 5 + fcsBytes, out: [(type: Int, size: Int)] = []
        while at + 3 <= frame.count {
            let h = Int(frame[at]) | Int(frame[at + 1]) << 8 | Int(frame[at + 2]) << 16
            out.append((h >> 1 & 3, h >> 3))
            at += 3 + (h >> 1 & 3 == 1 ? 1 : h >> 3)
            if h & 1 == 1 { break }
        }
        return out
    }

    static func planeFrame(_ input: [UInt8], planes: Int, finder: Zstd.MatchFinder = .small) throws -> [UInt8] {
        try input.withUnsafeBytes { try Zstd.compress(planes: planes, of: $0, matchFinder: finder) }
    }

    @Test func planeFramesDecodeToTheirInputAtEverySize() throws {
        let sizes = [0, 1, 3, 255, 256, 257, 65_791, 65_792, 16_384 * 4 - 1, 131_072, 131_073, 700_001]
        for n in sizes {
            // Noise in the low half, exponents in the high half: both paths in one frame.
            let input = Self.noise(n / 2, seed: UInt64(n)) + Self.exponents(n - n / 2)
            for planes in [1, 2, 4, 7] {
                for finder in [Zstd.MatchFinder.levels, .small] {
                    let frame = try Self.planeFrame(input, planes: planes, finder: finder)
                    #expect(Zstd.contentSize(frame) == UInt64(n), "\(n) bytes, \(planes) planes")
                    #expect(try Zstd.decompress(frame, limit: n) == input, "\(n) bytes, \(planes) planes, \(finder)")
                    #expect(try Self.planeFrame(input, planes: planes, finder: finder) == frame, "deterministic")
                }
            }
        }
    }

    @Test func leadingNoisePlanesAreStoredRawAndTheRestCompressed() throws {
        let plane = 300_000
        let input = Self.noise(2 * plane, seed: 1) + Self.exponents(plane)
        let frame = try Self.planeFrame(input, planes: 3)
        let blocks = Self.blocks(frame)
        // The two noise planes as raw blocks of up to 128 KiB, then compressed blocks.
        let raw = blocks.prefix { $0.type == 0 }
        #expect(raw.reduce(0) { $0 + $1.size } == 2 * plane)
        #expect(blocks.dropFirst(raw.count).allSatisfy { $0.type == 2 })
        #expect(frame.count < 2 * plane + plane / 2)
        // Stored verbatim behind the frame header and the first block header.
        let first = 5 + 4 + 3
        #expect(Array(frame[first..<first + 1000]) == Array(input.prefix(1000)))
        #expect(try Zstd.decompress(frame, limit: input.count) == input)

        // A short compressible remainder (zstd's blocks of 32 KiB for it) leaves the raw
        // prefix in blocks as long as the format allows.
        let short = Self.noise(19 * 20_000, seed: 9) + Self.exponents(20_000)
        let shortBlocks = Self.blocks(try Self.planeFrame(short, planes: 20))
        #expect(shortBlocks.prefix { $0.type == 0 }.map(\.size) == [131_072, 131_072, 117_856])
        #expect(try Zstd.decompress(try Self.planeFrame(short, planes: 20), limit: short.count) == short)

        // A compressible first plane: everything goes through zstd, which stores the noise
        // blocks raw itself.
        let zerosFirst = [UInt8](repeating: 0, count: plane) + Self.noise(plane, seed: 2) + Self.exponents(plane)
        let mixed = Self.blocks(try Self.planeFrame(zerosFirst, planes: 3))
        #expect(mixed.first?.type == 2)
        #expect(mixed.contains { $0.type == 0 })
    }

    @Test func compressedBlocksReferToBytesBehindRawOnes() throws {
        // Plane 0 compresses, plane 1 is noise (raw blocks zstd has seen), plane 2 repeats
        // plane 0: its matches reach back across plane 1's raw blocks.
        let pattern = Self.exponents(200_000)
        let input = pattern + Self.noise(200_000, seed: 3) + pattern
        for finder in [Zstd.MatchFinder.levels, .small] {
            let frame = try Self.planeFrame(input, planes: 3, finder: finder)
            #expect(try Zstd.decompress(frame, limit: input.count) == input, "\(finder)")
        }
        // Noise first (raw, never shown to zstd), then a plane that repeats itself.
        let repeated = Self.noise(150_000, seed: 4) + Array(repeating: Self.exponents(1000), count: 150).joined()
        let frame = try Self.planeFrame(repeated, planes: 2)
        #expect(Self.blocks(frame).first?.type == 0)
        #expect(try Zstd.decompress(frame, limit: repeated.count) == repeated)
    }

    @Test func noiseLooksIncompressibleAndSkewedBytesDoNot() {
        func looks(_ bytes: [UInt8]) -> Bool { bytes.withUnsafeBytes { Zstd.looksIncompressible($0) } }
        #expect(looks(Self.noise(1 << 20, seed: 5)))
        #expect(looks(Self.noise(16_384, seed: 6)))
        #expect(!looks(Self.noise(16_383, seed: 6)), "too short to judge")
        #expect(!looks(Self.exponents(1 << 20)))
        #expect(!looks([UInt8](repeating: 0, count: 1 << 20)))
        // Noise with one stretch of zeros in a window the test samples (the last).
        var mostlyNoise = Self.noise(1 << 20, seed: 7)
        for i in (1 << 20) - 16_384..<(1 << 20) { mostlyNoise[i] = 0 }
        #expect(!looks(mostlyNoise))
        // Seven bits of noise a byte (entropy 7 bits): worth trying.
        #expect(!looks(Self.noise(1 << 20, seed: 8).map { $0 & 0x7F }))
    }

    @Test func fixedPointLog2IsWithinOneUnitOf256Log2() {
        for x in [1, 2, 3, 5, 7, 100, 255, 256, 1000, 16_383, 16_384, 65_537, 1 << 30] {
            let exact = 256 * log2(Double(x))
            #expect(Zstd.log2Q8(x) == Int(exact.rounded(.down)) || abs(Double(Zstd.log2Q8(x)) - exact) < 1, "x = \(x)")
        }
        #expect(Zstd.log2Q8(1) == 0)
        #expect(Zstd.log2Q8(16_384) == 14 * 256)
        #expect((1..<20_000).allSatisfy { Zstd.log2Q8($0) <= Zstd.log2Q8($0 + 1) })
    }
}
