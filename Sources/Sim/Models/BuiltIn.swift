extension Workloads {
    /// The reference study's workloads this simulator builds, in listing order.
    static var builtIn: [WorkloadDefinition] { ResNet18.workloads + NFResNet.workloads }
}
