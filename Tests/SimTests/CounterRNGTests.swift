import Testing
@testable import Sim

@Suite struct CounterRNGTests {
    @Test func streamsArePureFunctionsOfTheirKey() {
        var a = CounterRNG(seed: 7, purpose: .dropout, 3, 14, 2)
        var b = CounterRNG(seed: 7, purpose: .dropout, 3, 14, 2)
        let first = (0..<100).map { _ in a.next() }
        #expect(first == (0..<100).map { _ in b.next() })
        #expect(CounterRNG(seed: 7, purpose: .dropout, 3, 14, 2).value(at: 57) == first[57])
        // Pinned values: traces depend on the generator, so a change to it must be deliberate.
        #expect(CounterRNG(seed: 0, purpose: .initialization).value(at: 0) == 6_978_651_139_587_455_410)
        #expect(CounterRNG(seed: 123, purpose: .dataOrder, 1, 2, 3).value(at: 99) == 4_285_943_707_546_980_557)
    }

    @Test func differentKeysGiveUnrelatedStreams() {
        let keys = [CounterRNG(seed: 7, purpose: .dropout, 3, 14, 2), CounterRNG(seed: 7, purpose: .dropout, 3, 14, 3),
                    CounterRNG(seed: 7, purpose: .dropout, 3, 15, 2), CounterRNG(seed: 7, purpose: .augmentation, 3, 14, 2),
                    CounterRNG(seed: 8, purpose: .dropout, 3, 14, 2), CounterRNG(seed: 7, purpose: .dropout, 14, 3, 2)]
        #expect(Set(keys.map(\.key)).count == keys.count)
        var first = keys[0], second = keys[1]
        let same = (0..<1000).filter { _ in first.next() == second.next() }.count
        #expect(same == 0)
    }

    @Test func uniformsAndIntegersAreUnbiased() {
        var rng = CounterRNG(seed: 1, purpose: .synthetic)
        let n = 200_000
        var sum = 0.0
        var buckets = [Int](repeating: 0, count: 10)
        for _ in 0..<n {
            let u = rng.nextUniform()
            #expect(u >= 0 && u < 1)
            sum += Double(u)
            buckets[rng.nextInt(below: 10)] += 1
        }
        #expect(abs(sum / Double(n) - 0.5) < 0.005)
        #expect(buckets.allSatisfy { abs($0 - n / 10) < n / 100 })
        var p = CounterRNG(seed: 2, purpose: .dataOrder)
        let perm = p.permutation(1000)
        #expect(perm.sorted() == Array(0..<1000) && perm != Array(0..<1000))
    }
}
