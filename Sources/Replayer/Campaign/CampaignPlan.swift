import Foundation
import Recorder
import Sim

/// One experiment of a campaign, as drawn: what to inject where, before the injection has
/// seen the golden operand (the spec carries a seed; positions and values are drawn from it
/// and the operand when the experiment runs).
public struct Experiment: Sendable, Equatable {
    public var index: Int
    public var kind: ExperimentKind
    /// A seeded native spec (`.software`) or a hardware-fault spec (`.hardware`).
    public var spec: InjectionSpec
}

/// The candidates a campaign draws from, checked against the golden trace, and the draw.
///
/// Experiment `i` is a pure function of the campaign seed, `i` and the (normalised)
/// parameters: its own random stream, keyed by `(seed, i)`, picks the kind, global step,
/// site, fault model, replica and the experiment's seed, in that order (a hardware
/// experiment: step, site, replica, register, fault class, PE, bit, then the flip's cycle or
/// the stuck-at value; the PE and cycle among those the operation uses under
/// ``HardwareDraw/used``, over the whole array and operation under ``HardwareDraw/array``). Nothing depends on
/// the number of experiments, the shard or the workers, so shards, resumed campaigns and
/// parallel runs draw exactly what one serial run draws.
public struct CampaignPlan: Sendable {
    public let parameters: CampaignParameters
    public let workload: String
    /// Candidate sites (execution order: the sampling's, narrowed by `--layers` and
    /// `--phases`), fault models, replicas, global steps.
    public let sites: [SiteID]
    /// The candidate sites a hardware fault can strike: those on the MXU (not the vector unit's).
    public let hardwareSites: [SiteID]
    public let faultModels: [FaultModel]
    public let replicas: [Int]
    public let steps: StepRange
    /// The chip, operand precision and each site's operation (for hardware faults).
    let chip: ChipConfig
    let precision: OperandPrecision
    let schedules: [String: OperationSchedule]

    /// Whether hardware faults are drawn on an operation of several products in turn (whose
    /// draws depend on ``CampaignManifest/scheduleRules``).
    var drawsOnProductsInTurn: Bool { schedules.values.contains { $0.products > 1 } }
    /// Under ``HardwareDraw/used``: per site and register, the PEs that hold data of the
    /// operation.
    let usedPEs: [String: [HardwareFault.Register: UsedPEs]]
    /// The listed experiments (``CampaignParameters/specs``), checked; nil when drawn.
    let listed: [InjectionSpec]?

    /// The used PEs of one operation and register, to draw one uniformly.
    struct UsedPEs: Sendable {
        var rows: [UsedPERow]
        /// `rows`' PE counts summed up to and including each row.
        var cumulative: [Int]

        init(_ rows: [UsedPERow]) {
            self.rows = rows
            var total = 0
            cumulative = rows.map { total += $0.columns; return total }
        }

        var count: Int { cumulative.last ?? 0 }

        /// The `i`-th used PE, counting row by row (`i` below ``count``).
        func pe(_ i: Int) -> (mxu: Int, row: Int, column: Int) {
            // The first row whose running count passes i (binary search).
            var (lo, hi) = (0, cumulative.count - 1)
            while lo < hi {
                let mid = (lo + hi) / 2
                if cumulative[mid] > i { hi = mid } else { lo = mid + 1 }
            }
            let row = rows[lo]
            return (row.mxu, row.row, i - (cumulative[lo] - row.columns))
        }
    }

    public init(parameters p: CampaignParameters, golden: GoldenIdentity, specsFile: String? = nil) throws(CampaignError) {
        guard p.experiments > 0 else { throw .badParameter("--experiments must be positive (got \(p.experiments))") }
        guard !p.kinds.isEmpty else { throw .badParameter("no experiment kind to draw") }
        // A listed campaign's fault models are its specs' (none when all are hardware faults).
        guard p.specs != nil || !p.faultModels.isEmpty else { throw .badParameter("--fault-models: no fault model given") }
        guard !p.phases.isEmpty else { throw .badParameter("--phases: no phase given") }
        if let k = p.stepsAfterInjection, k < 0 { throw .badParameter("--steps-after-injection must be non-negative (got \(k))") }
        workload = golden.config.workload
        let model: any Model
        do {
            model = try golden.config.makeModel()
        } catch {
            throw .badParameter("the golden trace's model: \(error)")
        }
        if let specs = p.specs {
            guard specs.count == p.experiments else { throw .badParameter("\(p.experiments) experiments but \(specs.count) specs listed") }
            try Self.check(specs, file: specsFile ?? "--specs", stepsAfterInjection: p.stepsAfterInjection, golden: golden, model: model)
            listed = specs
            sites = model.sites
            hardwareSites = []
            faultModels = p.faultModels
            replicas = Array(0..<golden.config.replicas)
            steps = StepRange(first: 0, last: golden.completedSteps - 1)
            chip = golden.config.chip
            precision = golden.config.precision
            (schedules, usedPEs) = ([:], [:])
            parameters = p
            return
        }
        listed = nil
        // The sampling picks the sites, then --layers and --phases narrow them: a layer or
        // site name is checked against every site of the model, so one the sampling leaves
        // out is a contradiction, not an unknown name.
        let all = model.sites
        var candidates = try p.siteSampling.sites(of: model)
        if let layers = p.layers {
            guard !layers.isEmpty else { throw .badParameter("--layers: no layer given") }
            let layerNames = Set(all.map(\.layer)), siteNames = Set(all.map(\.name))
            for name in layers where !layerNames.contains(name) && !siteNames.contains(name) {
                throw .badParameter("unknown layer '\(name)' for \(workload) \(golden.config.scaleName) (layers: \(all.map(\.layer).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }.joined(separator: ", ")); or a site such as \(all.last?.name ?? "conv1_grad_wt"))")
            }
            let named = candidates.filter { layers.contains($0.layer) || layers.contains($0.name) }
            guard !named.isEmpty else {
                let sites = all.filter { layers.contains($0.layer) || layers.contains($0.name) }
                throw .badParameter("contradictory filters: --sampling \(p.siteSampling.rawValue) excludes every site of --layers \(layers.joined(separator: ",")) (\(sites.map(\.name).joined(separator: ", ")))")
            }
            candidates = named
        }
        let beforePhases = candidates
        candidates = candidates.filter { p.phases.contains(Phase($0)) }
        guard !candidates.isEmpty else {
            let among = p.layers.map { "--layers \($0.joined(separator: ","))" } ?? "--sampling \(p.siteSampling.rawValue)"
            throw .badParameter("contradictory filters: --phases \(p.phases.map(\.rawValue).joined(separator: ",")) excludes every site of \(among) (\(beforePhases.map(\.name).joined(separator: ", ")))")
        }
        sites = candidates
        let onMXU = Set(model.operations.filter(\.isOnMXU).map(\.site))
        hardwareSites = candidates.filter { onMXU.contains($0) }
        faultModels = p.faultModels
        let replicaCount = golden.config.replicas
        if let r = p.replicas {
            guard !r.isEmpty else { throw .badParameter("--replicas: no replica given") }
            if let bad = r.first(where: { $0 < 0 || $0 >= replicaCount }) {
                throw .badParameter("replica \(bad) does not exist; the golden run has \(replicaCount) replicas (0...\(replicaCount - 1))")
            }
        }
        replicas = p.replicas ?? Array(0..<replicaCount)
        // The injected step and the steps after it must lie within the golden trace.
        let after = p.stepsAfterInjection ?? 0
        let lastStart = golden.completedSteps - 1 - after
        guard lastStart >= 0 else {
            // Checked: --steps-after-injection may be Int.max.
            let needed = after == .max ? "more than \(after)" : "at least \(after + 1)"
            throw .goldenTooShort("the golden trace \(golden.directory) has \(golden.completedSteps) steps; --steps-after-injection \(after) needs \(needed)")
        }
        if let s = p.steps {
            guard s.first >= 0, s.first <= s.last else { throw .badParameter("--steps \(s): give A-B with 0 <= A <= B") }
            guard s.last <= lastStart else {
                throw .goldenTooShort("--steps \(s): the golden trace \(golden.directory) has steps 0...\(golden.completedSteps - 1), so with --steps-after-injection \(after) the last injectable step is \(lastStart)")
            }
        }
        steps = p.steps ?? StepRange(first: 0, last: lastStart)
        chip = golden.config.chip
        precision = golden.config.precision
        var schedules: [String: OperationSchedule] = [:]
        if p.kinds.contains(.hardware) {
            guard !(p.registers ?? []).isEmpty else { throw .badParameter("--registers: no register given") }
            guard !(p.hardwareFaults ?? []).isEmpty else { throw .badParameter("--hardware-faults: no fault class given") }
            guard !hardwareSites.isEmpty else {
                throw .badParameter("--kinds hardware: every candidate site runs on the vector unit, where no PE fault reaches (\(sites.map(\.name).prefix(4).joined(separator: ", ")))")
            }
            for layer in model.layers(phases: .training) where hardwareSites.contains(where: { $0.name == layer.name }) {
                do {
                    schedules[layer.name] = try OperationSchedule(shape: layer.gemm, products: layer.products, config: chip)
                } catch {
                    throw .badParameter("\(layer.name): \(error)")
                }
            }
        }
        self.schedules = schedules
        var used: [String: [HardwareFault.Register: UsedPEs]] = [:]
        if p.kinds.contains(.hardware) && p.hardwareDrawing == .used {
            for (name, schedule) in schedules {
                for register in p.registers ?? HardwareFault.Register.allCases {
                    let pes = UsedPEs(schedule.usedPEs(register))
                    // Every pass of an operation fills at least PE(0, 0) of its MXU.
                    guard pes.count > 0 else { throw .badParameter("\(name): its schedule uses no PE's \(register.rawValue) register") }
                    used[name, default: [:]][register] = pes
                }
            }
        }
        usedPEs = used
        parameters = p
    }

    /// Checks listed experiments against the golden run: each is a spec `tpufi replay` would
    /// run (workload, site, replica, positions, PE), and its step leaves room for
    /// `stepsAfterInjection` inside the golden trace. Errors name the experiment and its line.
    static func check(_ specs: [InjectionSpec], file: String, stepsAfterInjection: Int?, golden: GoldenIdentity, model: any Model) throws(CampaignError) {
        guard !specs.isEmpty else { throw .badParameter("\(file): no spec listed") }
        let after = stepsAfterInjection ?? 0
        let lastStart = golden.completedSteps - 1 - after
        for (i, spec) in specs.enumerated() {
            let name = "\(file):\(i + 1) (experiment \(i))"
            let step: Int
            do {
                _ = try FaultReplay.check(spec, specName: name, config: golden.config, model: model)
                step = try FaultReplay.globalStep(of: spec, specName: name, stepsPerEpoch: golden.stepsPerEpoch, completedSteps: golden.completedSteps)
            } catch {
                throw .badParameter("\(error)")
            }
            guard step <= lastStart else {
                let room = stepsAfterInjection.map { " with --steps-after-injection \($0)" } ?? ""
                throw .goldenTooShort("\(name): global step \(step) cannot be injected\(room): the golden trace \(golden.directory) has steps 0...\(golden.completedSteps - 1), the last injectable is \(lastStart)")
            }
        }
    }

    /// Experiment `index`: listed, or drawn from its own stream.
    public func experiment(_ index: Int) -> Experiment {
        if let listed {
            let spec = listed[index]
            return Experiment(index: index, kind: spec.hardware == nil ? .software : .hardware, spec: spec)
        }
        // `c` keeps this stream apart from the injection hook's (seed, step, replica, 0).
        var rng = CounterRNG(seed: parameters.seed, purpose: .faultSampling, index, 0, 0x4341_4D50)
        let kind = parameters.kinds[rng.nextInt(below: parameters.kinds.count)]
        switch kind {
        case .software:
            let step = steps.first + rng.nextInt(below: steps.last - steps.first + 1)
            let site = sites[rng.nextInt(below: sites.count)]
            let model = faultModels[rng.nextInt(below: faultModels.count)]
            let replica = replicas[rng.nextInt(below: replicas.count)]
            let seed = rng.next()
            return Experiment(index: index, kind: kind,
                              spec: InjectionSpec(workload: workload, site: site.name, faultModel: model, replica: replica, globalStep: step, seed: seed))
        case .hardware:
            let step = steps.first + rng.nextInt(below: steps.last - steps.first + 1)
            let site = hardwareSites[rng.nextInt(below: hardwareSites.count)]
            let replica = replicas[rng.nextInt(below: replicas.count)]
            let registers = parameters.registers ?? HardwareFault.Register.allCases
            let classes = parameters.hardwareFaults ?? HardwareFaultClass.allCases
            let register = registers[rng.nextInt(below: registers.count)]
            let faultClass = classes[rng.nextInt(below: classes.count)]
            // Every candidate site has a schedule (built in init for hardware campaigns), and
            // under `used` its used PEs per register.
            let schedule = schedules[site.name]
            let fault: HardwareFault
            if parameters.hardwareDrawing == .used, let schedule, let pes = usedPEs[site.name]?[register] {
                let pe = pes.pe(rng.nextInt(below: pes.count))
                let bit = rng.nextInt(below: HardwareFault.width(of: register, precision: precision))
                let kind: HardwareFault.Kind
                if faultClass == .flip {
                    let cycles = schedule.usedCycles(register, mxu: pe.mxu, row: pe.row, column: pe.column)
                    var i = rng.nextInt(below: max(1, cycles.reduce(0) { $0 + $1.count }))
                    var cycle = cycles.first?.lowerBound ?? 0
                    for range in cycles {
                        if i < range.count { cycle = range.lowerBound + i; break }
                        i -= range.count
                    }
                    kind = .transient(cycle: cycle)
                } else {
                    kind = .stuckAt(value: rng.nextInt(below: 2))
                }
                fault = HardwareFault(mxu: pe.mxu, row: pe.row, column: pe.column, register: register, bit: bit, kind: kind)
            } else {
                // `array`: the draw campaigns made before `used` existed, value for value.
                let mxu = rng.nextInt(below: chip.mxuCount)
                let row = rng.nextInt(below: chip.rows), column = rng.nextInt(below: chip.columns)
                let bit = rng.nextInt(below: HardwareFault.width(of: register, precision: precision))
                let cycles = schedule?.cycles ?? 1
                let kind: HardwareFault.Kind = faultClass == .flip ? .transient(cycle: rng.nextInt(below: cycles)) : .stuckAt(value: rng.nextInt(below: 2))
                fault = HardwareFault(mxu: mxu, row: row, column: column, register: register, bit: bit, kind: kind)
            }
            return Experiment(index: index, kind: .hardware,
                              spec: InjectionSpec(workload: workload, site: site.name, faultModel: nil, replica: replica, globalStep: step,
                                                  hardware: fault))
        }
    }
}
