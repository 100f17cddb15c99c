/// A simulated TPU core: its matrix units, vector unit, memories and clocks.
///
/// Presets follow public figures (see `docs/architecture.md#hardware`):
/// - MXU geometry and counts: Jouppi et al., ISCA 2017 (TPUv1, 256x256) and Norrie et al.,
///   "The Design Process for Google's Training Chips: TPUv2 and TPUv3", IEEE Micro 2021
///   (128x128 bf16 MXUs; one per core on v2, two on v3); Jouppi et al., ISCA 2023 (TPU v4:
///   four MXUs per TensorCore).
/// - Clocks and HBM bandwidth: Google Cloud TPU system-architecture pages (v2: 700 MHz,
///   ~700 GB/s per chip; v3: 940 MHz, 900 GB/s; v4: 1050 MHz, 1200 GB/s), shared by the two
///   cores of a chip, so a core sees half.
/// - Vector unit: 8 sublanes x 128 lanes of 32-bit ALUs; 16 MiB vector memory per core
///   (IEEE Micro 2021).
public struct ChipConfig: Sendable, Equatable, Codable {
    public var name: String
    /// Systolic array rows (SCALE-Sim's ArrayHeight): the dimension partial sums flow along.
    public var rows: Int
    /// Systolic array columns (ArrayWidth).
    public var columns: Int
    /// Matrix units per core; passes of one operation are spread over them round-robin.
    public var mxuCount: Int
    public var dataflow: Dataflow
    /// Core clock in MHz.
    public var clockMHz: Double
    /// HBM bandwidth available to one core, in GB/s (1e9 bytes).
    public var hbmGBps: Double
    /// Vector unit: sublanes x lanes 32-bit ALUs, one operation per lane per cycle.
    public var vectorSublanes: Int
    public var vectorLanes: Int
    /// On-chip vector memory per core, bytes.
    public var vectorMemoryBytes: Int

    public init(name: String, rows: Int, columns: Int, mxuCount: Int = 1,
                dataflow: Dataflow = .weightStationary, clockMHz: Double = 940,
                hbmGBps: Double = 450, vectorSublanes: Int = 8, vectorLanes: Int = 128,
                vectorMemoryBytes: Int = 16 << 20) {
        self.name = name
        self.rows = rows
        self.columns = columns
        self.mxuCount = mxuCount
        self.dataflow = dataflow
        self.clockMHz = clockMHz
        self.hbmGBps = hbmGBps
        self.vectorSublanes = vectorSublanes
        self.vectorLanes = vectorLanes
        self.vectorMemoryBytes = vectorMemoryBytes
    }

    /// TPU v2 core: one 128x128 MXU, 700 MHz, half of the chip's ~700 GB/s HBM.
    public static let tpuV2 = ChipConfig(name: "tpu-v2", rows: 128, columns: 128, mxuCount: 1,
                                         clockMHz: 700, hbmGBps: 350)
    /// TPU v3 core: two 128x128 MXUs, 940 MHz, half of the chip's 900 GB/s HBM.
    public static let tpuV3 = ChipConfig(name: "tpu-v3", rows: 128, columns: 128, mxuCount: 2,
                                         clockMHz: 940, hbmGBps: 450)
    /// TPU v4 core: four 128x128 MXUs, 1050 MHz, half of the chip's 1200 GB/s HBM.
    public static let tpuV4 = ChipConfig(name: "tpu-v4", rows: 128, columns: 128, mxuCount: 4,
                                         clockMHz: 1050, hbmGBps: 600)
    /// A small core for tests: one 8x8 array, v3 clocks, a 1 x 8 vector unit, 1 MiB memory.
    public static let tiny = ChipConfig(name: "tiny", rows: 8, columns: 8, mxuCount: 1,
                                        clockMHz: 940, hbmGBps: 450, vectorSublanes: 1,
                                        vectorLanes: 8, vectorMemoryBytes: 1 << 20)

    public static let presets: [ChipConfig] = [.tpuV2, .tpuV3, .tpuV4, .tiny]

    /// The preset called `name` (`tpu-v2`, `tpu-v3`, `tpu-v4`, `tiny`).
    public static func preset(named name: String) -> ChipConfig? {
        presets.first { $0.name == name.lowercased() }
    }

    /// MACs the whole core can issue per cycle.
    public var macsPerCycle: Int { rows * columns * mxuCount }
    /// HBM bytes per core clock cycle.
    public var hbmBytesPerCycle: Double { hbmGBps * 1e3 / clockMHz }
    /// Vector-unit 32-bit lanes.
    public var vectorWidth: Int { vectorSublanes * vectorLanes }

    /// Largest sizes accepted (far beyond any real chip; they keep every product of sizes,
    /// and what is allocated per array, bounded).
    public static let limits: [String: Int] = ["rows": 1 << 14, "columns": 1 << 14, "mxuCount": 1 << 10,
                                               "vectorSublanes": 1 << 10, "vectorLanes": 1 << 12, "vectorMemoryBytes": 1 << 40]

    /// Checks that every size is positive and within ``limits``; the error names the field.
    public func validate() throws(HardwareError) {
        let ints: [(String, Int)] = [("rows", rows), ("columns", columns), ("mxuCount", mxuCount),
                                     ("vectorSublanes", vectorSublanes), ("vectorLanes", vectorLanes),
                                     ("vectorMemoryBytes", vectorMemoryBytes)]
        for (field, value) in ints where value <= 0 || value > (Self.limits[field] ?? Int.max) {
            throw .invalidConfig("\(name): \(field) must be 1...\(Self.limits[field] ?? Int.max), got \(value)")
        }
        for (field, value) in [("clockMHz", clockMHz), ("hbmGBps", hbmGBps)] where !(value > 0 && value.isFinite) {
            throw .invalidConfig("\(name): \(field) must be positive, got \(value)")
        }
    }
}

/// Errors of the hardware model: impossible shapes or configurations.
public enum HardwareError: Error, CustomStringConvertible, Equatable {
    case invalidConfig(String)
    case invalidShape(String)
    /// A hardware fault that names no register bit, PE, MXU or cycle of its operation.
    case invalidFault(String)

    public var description: String {
        switch self {
        case .invalidConfig(let m): return "invalid chip configuration: \(m)"
        case .invalidShape(let m): return "invalid operation shape: \(m)"
        case .invalidFault(let m): return "invalid hardware fault: \(m)"
        }
    }
}
