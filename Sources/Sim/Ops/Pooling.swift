/// Max pooling over `k x k` windows of NHWC data (VALID, stride `stride`).
public enum MaxPool {
    /// y `[N, Ho, Wo, C]` and, per output, the flat input index it took (the first maximum
    /// in window order; NaN wins, so a fault's NaN propagates).
    public static func forward(x: [Float], batch: Int, height: Int, width: Int, channels: Int,
                               window k: Int, stride: Int) -> (y: [Float], argmax: [Int], outH: Int, outW: Int) {
        let outH = (height - k) / stride + 1, outW = (width - k) / stride + 1
        var y = [Float](repeating: 0, count: batch * outH * outW * channels)
        var arg = [Int](repeating: 0, count: y.count)
        for n in 0..<batch {
            for oh in 0..<outH {
                for ow in 0..<outW {
                    for c in 0..<channels {
                        var best = -Float.infinity, at = -1
                        for i in 0..<k {
                            for j in 0..<k {
                                let idx = ((n * height + oh * stride + i) * width + ow * stride + j) * channels + c
                                let v = x[idx]
                                if at < 0 || v > best || (v.isNaN && !best.isNaN) { best = v; at = idx }
                            }
                        }
                        let o = ((n * outH + oh) * outW + ow) * channels + c
                        y[o] = best
                        arg[o] = at
                    }
                }
            }
        }
        return (y, arg, outH, outW)
    }

    /// dL/dx: each output's gradient goes to the input it took (outputs in order).
    public static func backward(dy: [Float], argmax: [Int], inputCount: Int) -> [Float] {
        var dx = [Float](repeating: 0, count: inputCount)
        for (o, i) in argmax.enumerated() { dx[i] += dy[o] }
        return dx
    }
}

/// Global average pooling: `[N, H, W, C] -> [N, C]`.
public enum GlobalAveragePool {
    public static func forward(x: [Float], batch: Int, pixels: Int, channels: Int) -> [Float] {
        var y: [Float] = []
        y.reserveCapacity(batch * channels)
        let count = Float(pixels)
        for n in 0..<batch {
            let sums = x.withUnsafeBufferPointer { px in
                [Float](unsafeUninitializedCapacity: channels) { out, written in
                    Reduce.columnSums(px.baseAddress! + n * pixels * channels, rows: pixels, columns: channels, into: out.baseAddress!)
                    written = channels
                }
            }
            y.append(contentsOf: sums.map { $0 / count })
        }
        return y
    }

    /// dL/dx = dL/dy / (H * W), broadcast over the pixels.
    public static func backward(dy: [Float], batch: Int, pixels: Int, channels: Int) -> [Float] {
        var dx = [Float](repeating: 0, count: batch * pixels * channels)
        let count = Float(pixels)
        for n in 0..<batch {
            for p in 0..<pixels {
                for c in 0..<channels { dx[(n * pixels + p) * channels + c] = dy[n * channels + c] / count }
            }
        }
        return dx
    }
}
