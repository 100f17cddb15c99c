/// The optimizers of the reference study, with Keras's update rules and default constants.
/// Every operation is elementwise fp32 in a fixed order; powers of the step count are exact
/// products (``power(_:_:)``), square roots IEEE's, so updates are bit-reproducible.
public enum OptimizerKind: String, Sendable, Codable, CaseIterable {
    case adam, sgd, rmsprop, adagrad
}

public struct OptimizerConfig: Sendable, Equatable, Codable {
    public var kind: OptimizerKind
    /// SGD momentum (0: plain SGD, as `resnet18_sgd`).
    public var momentum: Float = 0
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    /// RMSProp's decay.
    public var rho: Float = 0.9
    public var epsilon: Float = 1e-7
    /// Adagrad's initial accumulator.
    public var initialAccumulator: Float = 0.1

    public init(kind: OptimizerKind, momentum: Float = 0) {
        self.kind = kind
        self.momentum = momentum
    }

    /// Per-parameter state tensors the optimizer keeps: Adam m and v; SGD with momentum its
    /// velocity; RMSProp and Adagrad their accumulator.
    public var slotNames: [String] {
        switch kind {
        case .adam: return ["m", "v"]
        case .sgd: return momentum == 0 ? [] : ["momentum"]
        case .rmsprop: return ["rms"]
        case .adagrad: return ["accumulator"]
        }
    }

    /// Initial value of every slot.
    public var slotInitialValue: Float { kind == .adagrad ? initialAccumulator : 0 }

    /// Applies one update in place. `step` counts updates from 0 (Adam's bias correction uses
    /// `step + 1`); `slots` holds ``slotNames`` in order for this tensor.
    public func apply(parameters p: inout [Float], gradients g: [Float], slots: inout [[Float]], learningRate lr: Float, step: Int) {
        precondition(g.count == p.count && slots.count == slotNames.count && slots.allSatisfy { $0.count == p.count },
                     "optimizer: parameter, gradient and slots differ in length")
        // The slots are moved out of `slots` while the loops run on raw pointers (element by
        // element through `slots[0][i]` every write checked bounds and uniqueness, and the
        // loops stayed scalar); each value's operations and their order are the same.
        var first: [Float] = [], second: [Float] = []
        if slots.count > 0 { swap(&first, &slots[0]) }
        if slots.count > 1 { swap(&second, &slots[1]) }
        defer {
            if slots.count > 0 { swap(&first, &slots[0]) }
            if slots.count > 1 { swap(&second, &slots[1]) }
        }
        p.withUnsafeMutableBufferPointer { pp in g.withUnsafeBufferPointer { pg in
        first.withUnsafeMutableBufferPointer { ps0 in second.withUnsafeMutableBufferPointer { ps1 in
            guard let p = pp.baseAddress, let g = pg.baseAddress else { return }
            let n = pp.count
            switch kind {
            case .adam:
                guard let m = ps0.baseAddress, let v = ps1.baseAddress else { return }
                let t = step + 1
                let correction = Float((1 - power(Double(beta2), t)).squareRoot() / (1 - power(Double(beta1), t)))
                let lrT = lr * correction
                for i in 0..<n {
                    m[i] = beta1 * m[i] + (1 - beta1) * g[i]
                    v[i] = beta2 * v[i] + (1 - beta2) * (g[i] * g[i])
                    p[i] -= lrT * m[i] / (v[i].squareRoot() + epsilon)
                }
            case .sgd:
                if momentum == 0 {
                    for i in 0..<n { p[i] -= lr * g[i] }
                } else {
                    guard let velocity = ps0.baseAddress else { return }
                    for i in 0..<n {
                        velocity[i] = momentum * velocity[i] - lr * g[i]
                        p[i] += velocity[i]
                    }
                }
            case .rmsprop:
                guard let rms = ps0.baseAddress else { return }
                for i in 0..<n {
                    rms[i] = rho * rms[i] + (1 - rho) * (g[i] * g[i])
                    p[i] -= lr * g[i] / (rms[i].squareRoot() + epsilon)
                }
            case .adagrad:
                guard let accumulator = ps0.baseAddress else { return }
                for i in 0..<n {
                    accumulator[i] += g[i] * g[i]
                    p[i] -= lr * g[i] / (accumulator[i].squareRoot() + epsilon)
                }
            }
        } } } }
    }
}

/// `x^n` by repeated squaring: IEEE multiplications only, the same bits everywhere.
public func power(_ x: Double, _ n: Int) -> Double {
    var result = 1.0, base = x, e = n
    while e > 0 {
        if e & 1 == 1 { result *= base }
        base *= base
        e >>= 1
    }
    return result
}

/// Linear polynomial decay, the reference's schedule: from `initial` to `final` over
/// `decaySteps` updates, then constant (Adam 1e-3 -> 1e-4 over 5000; SGD 0.1 -> 1e-3 over 2000).
public struct LearningRateSchedule: Sendable, Equatable, Codable {
    public var initial: Float
    public var final: Float
    public var decaySteps: Int

    public init(initial: Float, final: Float, decaySteps: Int) {
        self.initial = initial
        self.final = final
        self.decaySteps = decaySteps
    }

    /// The reference's schedule for an optimizer.
    public static func reference(for kind: OptimizerKind) -> LearningRateSchedule {
        switch kind {
        case .sgd: return LearningRateSchedule(initial: 0.1, final: 1e-3, decaySteps: 2000)
        default: return LearningRateSchedule(initial: 1e-3, final: 1e-4, decaySteps: 5000)
        }
    }

    public func rate(at step: Int) -> Float {
        let done = Float(min(max(step, 0), decaySteps)) / Float(max(decaySteps, 1))
        return (initial - final) * (1 - done) + final
    }
}
