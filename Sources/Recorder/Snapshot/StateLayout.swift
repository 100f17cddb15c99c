import Sim

/// Errors relating a ``TrainingState`` to a ``StateLayout``; each names the tensor or count
/// that does not fit.
public enum StateLayoutError: Error, CustomStringConvertible, Equatable {
    /// The names given for one group of tensors do not match the state's tensor count.
    case nameCountMismatch(group: String, names: Int, tensors: Int)
    /// A parameter tensor has a different number of optimizer slots than the layout's slot names.
    case slotCountMismatch(parameter: String, slots: Int, expected: Int)
    /// A tensor of the state has a different element count than the layout says.
    case tensorSizeMismatch(tensor: String, elements: Int, expected: Int)
    /// The state has a different number of tensors in a group than the layout.
    case tensorCountMismatch(group: String, tensors: Int, expected: Int)
    /// A flat buffer has a different length than the layout.
    case bufferSizeMismatch(elements: Int, expected: Int)
    /// A byte buffer's length is not the layout's byte count.
    case byteCountMismatch(bytes: Int, expected: Int)

    public var description: String {
        switch self {
        case .nameCountMismatch(let group, let names, let tensors):
            return "\(names) \(group) names given for \(tensors) \(group) tensors"
        case .slotCountMismatch(let parameter, let slots, let expected):
            return "parameter \(parameter) has \(slots) optimizer slots; the layout has \(expected)"
        case .tensorSizeMismatch(let tensor, let elements, let expected):
            return "tensor \(tensor) has \(elements) elements; the layout expects \(expected)"
        case .tensorCountMismatch(let group, let tensors, let expected):
            return "the state has \(tensors) \(group) tensors; the layout has \(expected)"
        case .bufferSizeMismatch(let elements, let expected):
            return "flat state has \(elements) elements; the layout has \(expected)"
        case .byteCountMismatch(let bytes, let expected):
            return "raw state has \(bytes) bytes; the layout has \(expected) (4 per fp32 element)"
        }
    }
}

/// How a ``TrainingState`` flattens into one contiguous fp32 buffer: the ordered tensors, each
/// with its kind, name, element offset and count.
///
/// Order: all parameters (``TrainingState/parameters`` order), then optimizer slot 0 of every
/// parameter, slot 1 of every parameter, ..., then the model state. Grouping
/// by kind keeps values of similar magnitude together (better for compression) and makes
/// each kind one contiguous range. The step count is not part of the buffer.
public struct StateLayout: Sendable, Equatable {
    /// What a tensor holds.
    public enum Kind: Sendable, Hashable, CustomStringConvertible {
        /// Trainable parameters (kernels, biases, batch-norm gamma and beta).
        case weights
        /// An optimizer slot, e.g. Adam's `m` or `v`.
        case optimizerSlot(String)
        /// The model's own state (``Sim/Model/modelState``), e.g. batch-norm moving statistics.
        case modelState

        public var description: String {
            switch self {
            case .weights: return "weights"
            case .optimizerSlot(let name): return "slot:\(name)"
            case .modelState: return "model-state"
            }
        }
    }

    /// One tensor of the flat buffer.
    public struct Tensor: Sendable, Equatable {
        public var name: String
        public var kind: Kind
        /// First element in the flat buffer.
        public var offset: Int
        public var count: Int

        public var range: Range<Int> { offset..<(offset + count) }
    }

    /// Every tensor, in flat-buffer order.
    public let tensors: [Tensor]
    public let parameterNames: [String]
    public let slotNames: [String]
    public let modelStateNames: [String]

    /// Total fp32 elements.
    public var elementCount: Int { tensors.last.map { $0.offset + $0.count } ?? 0 }
    /// Bytes of the raw little-endian buffer (4 per element).
    public var byteCount: Int { elementCount * 4 }

    /// The layout of `state`. Names default to `param<i>`, `slot<j>` and `state<k>`; given
    /// names must match the state's tensor counts, and every parameter must have
    /// `slotNames.count` slots (defaulting to the first parameter's slot count).
    public init(_ state: TrainingState, parameterNames: [String]? = nil, slotNames: [String]? = nil,
                modelStateNames: [String]? = nil) throws(StateLayoutError) {
        let pNames = parameterNames ?? state.parameters.indices.map { "param\($0)" }
        guard pNames.count == state.parameters.count else {
            throw .nameCountMismatch(group: "parameter", names: pNames.count, tensors: state.parameters.count)
        }
        guard state.slots.count == state.parameters.count else {
            throw .tensorCountMismatch(group: "slot-group", tensors: state.slots.count, expected: state.parameters.count)
        }
        let sNames = slotNames ?? (0..<(state.slots.first?.count ?? 0)).map { "slot\($0)" }
        let mNames = modelStateNames ?? state.modelState.indices.map { "state\($0)" }
        guard mNames.count == state.modelState.count else {
            throw .nameCountMismatch(group: "model-state", names: mNames.count, tensors: state.modelState.count)
        }
        for (i, s) in state.slots.enumerated() where s.count != sNames.count {
            throw .slotCountMismatch(parameter: pNames[i], slots: s.count, expected: sNames.count)
        }
        var tensors: [Tensor] = []
        var offset = 0
        func add(_ name: String, _ kind: Kind, _ count: Int) {
            tensors.append(Tensor(name: name, kind: kind, offset: offset, count: count))
            offset += count
        }
        for (i, p) in state.parameters.enumerated() { add(pNames[i], .weights, p.count) }
        for (j, slot) in sNames.enumerated() {
            for (i, s) in state.slots.enumerated() {
                // A slot's size follows its parameter's; a mismatch would misplace every later value.
                guard s[j].count == state.parameters[i].count else {
                    throw .tensorSizeMismatch(tensor: "\(pNames[i])/\(slot)", elements: s[j].count, expected: state.parameters[i].count)
                }
                add("\(pNames[i])/\(slot)", .optimizerSlot(slot), s[j].count)
            }
        }
        for (k, m) in state.modelState.enumerated() { add(mNames[k], .modelState, m.count) }
        self.tensors = tensors
        self.parameterNames = pNames
        self.slotNames = sNames
        self.modelStateNames = mNames
    }

    /// The layout of a model's state with the model's parameter and model-state names (e.g.
    /// `<bn layer>/moving_mean`) and the optimizer's slot names.
    public init(_ state: TrainingState, model: any Model, optimizer: OptimizerConfig) throws(StateLayoutError) {
        try self.init(state, parameterNames: model.parameterNames, slotNames: optimizer.slotNames, modelStateNames: model.modelStateNames)
    }

    /// The contiguous element range of each kind, in first-appearance order (kinds are
    /// contiguous by construction).
    public var kindRanges: [(kind: Kind, range: Range<Int>)] {
        var out: [(kind: Kind, range: Range<Int>)] = []
        for t in tensors {
            if let last = out.last, last.kind == t.kind {
                out[out.count - 1].range = last.range.lowerBound..<t.range.upperBound
            } else {
                out.append((t.kind, t.range))
            }
        }
        return out
    }

    /// `state`'s values in layout order (exact bits). Throws if any tensor's size or the
    /// tensor counts differ from the layout.
    public func flatten(_ state: TrainingState) throws(StateLayoutError) -> [Float] {
        var out = [Float]()
        try flatten(state, into: &out)
        return out
    }

    /// ``flatten(_:)`` into `out`, replacing its values; its storage is reused when nothing
    /// else refers to it (a trace writer's keyframe: the same pages every keyframe, not fresh
    /// megabytes).
    public func flatten(_ state: TrainingState, into out: inout [Float]) throws(StateLayoutError) {
        let tensors = try tensors(of: state)
        out.removeAll(keepingCapacity: true)
        out.reserveCapacity(elementCount)
        for t in tensors { out.append(contentsOf: t) }
    }

    /// The digest of ``flatten(_:)``'s values (`Digest.of`), read from the state's tensors
    /// where they lie.
    public func flatDigest(_ state: TrainingState) throws(StateLayoutError) -> Digest {
        var d = Digest()
        d.add(concatenationOf: try tensors(of: state))
        return d
    }

    /// `state`'s tensors in layout order: parameters, each optimizer slot of every
    /// parameter, model state (checked against the layout; the arrays are shared, not copied).
    private func tensors(of state: TrainingState) throws(StateLayoutError) -> [[Float]] {
        try check(state)
        var out: [[Float]] = state.parameters
        for j in slotNames.indices { for s in state.slots { out.append(s[j]) } }
        return out + state.modelState
    }

    /// The raw little-endian bytes of ``flatten(_:)``.
    public func rawBytes(_ state: TrainingState) throws(StateLayoutError) -> [UInt8] {
        StateLayout.littleEndianBytes(of: try flatten(state))
    }

    /// The state whose flat buffer is `flat`, with step count `step` (exact bits).
    public func state(from flat: [Float], step: Int) throws(StateLayoutError) -> TrainingState {
        guard flat.count == elementCount else { throw .bufferSizeMismatch(elements: flat.count, expected: elementCount) }
        let p = parameterNames.count, s = slotNames.count
        func slice(_ t: Tensor) -> [Float] { Array(flat[t.range]) }
        var state = TrainingState(parameters: tensors[0..<p].map(slice), slots: [], modelState: tensors[(p + p * s)...].map(slice), step: step)
        state.slots = (0..<p).map { i in (0..<s).map { j in slice(tensors[p + j * p + i]) } }
        return state
    }

    /// The state whose raw little-endian buffer is `bytes`.
    public func state(fromRawBytes bytes: [UInt8], step: Int) throws(StateLayoutError) -> TrainingState {
        guard bytes.count == byteCount else { throw .byteCountMismatch(bytes: bytes.count, expected: byteCount) }
        return try state(from: StateLayout.floats(fromLittleEndian: bytes), step: step)
    }

    private func check(_ state: TrainingState) throws(StateLayoutError) {
        let p = parameterNames.count, s = slotNames.count
        guard state.parameters.count == p else { throw .tensorCountMismatch(group: "parameter", tensors: state.parameters.count, expected: p) }
        guard state.slots.count == p else { throw .tensorCountMismatch(group: "slot-group", tensors: state.slots.count, expected: p) }
        guard state.modelState.count == modelStateNames.count else {
            throw .tensorCountMismatch(group: "model-state", tensors: state.modelState.count, expected: modelStateNames.count)
        }
        for i in 0..<p {
            let t = tensors[i]
            guard state.parameters[i].count == t.count else { throw .tensorSizeMismatch(tensor: t.name, elements: state.parameters[i].count, expected: t.count) }
            guard state.slots[i].count == s else { throw .slotCountMismatch(parameter: t.name, slots: state.slots[i].count, expected: s) }
            for j in 0..<s {
                let st = tensors[p + j * p + i]
                guard state.slots[i][j].count == st.count else { throw .tensorSizeMismatch(tensor: st.name, elements: state.slots[i][j].count, expected: st.count) }
            }
        }
        for (k, m) in state.modelState.enumerated() {
            let t = tensors[p + p * s + k]
            guard m.count == t.count else { throw .tensorSizeMismatch(tensor: t.name, elements: m.count, expected: t.count) }
        }
    }
}

extension StateLayout {
    /// The little-endian bytes of `values` (exact bits, NaN payloads included).
    public static func littleEndianBytes(of values: [Float]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: values.count * 4)
        out.withUnsafeMutableBytes { dst in
            values.withUnsafeBytes { src in
                #if _endian(little)
                dst.copyMemory(from: src)
                #else
                for i in 0..<values.count { dst.storeBytes(of: src.load(fromByteOffset: 4 * i, as: UInt32.self).littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
                #endif
            }
        }
        return out
    }

    /// The fp32 values of little-endian `bytes` (a trailing partial word is ignored; callers
    /// check the length).
    public static func floats(fromLittleEndian bytes: [UInt8]) -> [Float] {
        let n = bytes.count / 4
        return [Float](unsafeUninitializedCapacity: n) { dst, initialized in
            bytes.withUnsafeBytes { src in
                let d = UnsafeMutableRawBufferPointer(dst)
                #if _endian(little)
                d.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[0..<(4 * n)]))
                #else
                for i in 0..<n { d.storeBytes(of: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)), toByteOffset: 4 * i, as: UInt32.self) }
                #endif
            }
            initialized = n
        }
    }
}
