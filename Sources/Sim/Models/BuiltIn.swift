extension Workloads {
    /// The reference study's workloads this simulator builds, in listing order.
    static var builtIn: [WorkloadDefinition] { ResNet18.workloads + [EfficientNetB0.definition] + DenseNet121.workloads + NFResNet.workloads + [Transformer.definition] }
}
