/// Batch normalisation over the rows of `[M, C]` data (an NHWC tensor with `M = N*H*W`),
/// per channel, as Keras does it: biased batch variance, `y = gamma * xhat + beta` with
/// `xhat = (x - mean) / sqrt(var + eps)`. Statistics are fp32 column sums in the caller's
/// ``ReductionOrder`` (``Reduce``), the variance in a second pass over `x - mean`.
public enum BatchNorm {
    /// What the backward pass needs from the forward one.
    public struct Cache: Sendable {
        public var xhat: [Float]
        public var rstd: [Float]
    }

    /// Training: normalises with this batch's statistics and returns them for the moving
    /// averages.
    public static func forwardTraining(x: [Float], rows: Int, channels: Int, gamma: [Float], beta: [Float],
                                       epsilon: Float, order: ReductionOrder) -> (y: [Float], mean: [Float], variance: [Float], cache: Cache) {
        precondition(rows > 0 && x.count == rows * channels && gamma.count == channels && beta.count == channels,
                     "batch norm: \(x.count) values are not \(rows) rows of \(channels) channels with their gamma and beta")
        let m = Float(rows)
        let mean = Reduce.columnSums(x, rows: rows, columns: channels, order: order).map { $0 / m }
        // Three passes over x: the sums, the sums of the centred squares (formed as they are
        // added), then xhat and y together; each value computed as the separate passes did.
        var xhat: [Float] = []
        var variance: [Float] = [], rstd: [Float] = []
        let y = x.withUnsafeBufferPointer { px in
            mean.withUnsafeBufferPointer { pm in
                guard let base = px.baseAddress else { return [Float]() }
                variance = Reduce.columnSums(rows: rows, columns: channels, order: order) { r, c in
                    // Row pointers, not `r * channels + c` per value: the checked index
                    // arithmetic would keep the loop from vectorising.
                    let d = (base + r * channels)[c] - pm[c]
                    return d * d
                }.map { $0 / m }
                rstd = variance.map { DeterministicMath.rsqrt($0 + epsilon) }
                return rstd.withUnsafeBufferPointer { pr in
                    gamma.withUnsafeBufferPointer { pg in
                        beta.withUnsafeBufferPointer { pb in
                            [Float](unsafeUninitializedCapacity: px.count) { py, writtenY in
                                xhat = [Float](unsafeUninitializedCapacity: px.count) { ph, writtenH in
                                    guard let yOut = py.baseAddress, let hOut = ph.baseAddress else { return }
                                    for r in 0..<rows {
                                        let (xr, hr, yr) = (base + r * channels, hOut + r * channels, yOut + r * channels)
                                        for c in 0..<channels {
                                            let h = (xr[c] - pm[c]) * pr[c]
                                            hr[c] = h
                                            yr[c] = pg[c] * h + pb[c]
                                        }
                                    }
                                    writtenH = px.count
                                }
                                writtenY = px.count
                            }
                        }
                    }
                }
            }
        }
        return (y, mean, variance, Cache(xhat: xhat, rstd: rstd))
    }

    /// Inference: normalises with the moving statistics.
    public static func forwardInference(x: [Float], rows: Int, channels: Int, gamma: [Float], beta: [Float],
                                        movingMean: [Float], movingVariance: [Float], epsilon: Float) -> [Float] {
        let rstd = movingVariance.map { DeterministicMath.rsqrt($0 + epsilon) }
        return gamma.withUnsafeBufferPointer { g in beta.withUnsafeBufferPointer { b in
            movingMean.withUnsafeBufferPointer { mean in rstd.withUnsafeBufferPointer { r in
                perChannel(x, channels: channels) { v, c in g[c] * ((v - mean[c]) * r[c]) + b[c] }
            } }
        } }
    }

    /// dL/dx, dL/dgamma, dL/dbeta through the batch statistics:
    /// `dx = rstd / M * (M * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat))`, `dxhat = dy * gamma`.
    public static func backward(dy: [Float], cache: Cache, rows: Int, channels: Int,
                                gamma: [Float], order: ReductionOrder) -> (dx: [Float], dgamma: [Float], dbeta: [Float]) {
        precondition(dy.count == rows * channels && cache.xhat.count == dy.count && cache.rstd.count == channels && gamma.count == channels,
                     "batch norm backward: shapes do not match")
        let dbeta = Reduce.columnSums(dy, rows: rows, columns: channels, order: order)
        let dgamma = dy.withUnsafeBufferPointer { pdy in
            cache.xhat.withUnsafeBufferPointer { px in
                guard let g = pdy.baseAddress, let h = px.baseAddress else { return [Float](repeating: 0, count: channels) }
                return Reduce.columnSums(rows: rows, columns: channels, order: order) { r, c in (g + r * channels)[c] * (h + r * channels)[c] }
            }
        }
        let m = Float(rows)
        // sum(dxhat) = gamma * dbeta, sum(dxhat * xhat) = gamma * dgamma.
        let scale = (0..<channels).map { gamma[$0] * cache.rstd[$0] / m }
        let dx = [Float](unsafeUninitializedCapacity: dy.count) { out, written in
            written = dy.count
            dy.withUnsafeBufferPointer { pdy in
                cache.xhat.withUnsafeBufferPointer { px in
                    scale.withUnsafeBufferPointer { ps in
                        dbeta.withUnsafeBufferPointer { pb in
                            dgamma.withUnsafeBufferPointer { pg in
                                guard let o = out.baseAddress, let g = pdy.baseAddress, let h = px.baseAddress,
                                      let sc = ps.baseAddress, let db = pb.baseAddress, let dg = pg.baseAddress else { return }
                                for r in 0..<rows {
                                    let (or, gr, hr) = (o + r * channels, g + r * channels, h + r * channels)
                                    for c in 0..<channels {
                                        or[c] = sc[c] * (m * gr[c] - db[c] - hr[c] * dg[c])
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return (dx, dgamma, dbeta)
    }

    /// `out[r, c] = f(x[r, c], c)` over `[rows, channels]` data.
    @inline(__always)
    static func perChannel(_ x: [Float], channels: Int, _ f: (Float, Int) -> Float) -> [Float] {
        precondition(channels > 0 && x.count % channels == 0, "per-channel data of \(x.count) values is not whole rows of \(channels)")
        var result = [Float].uninitialized(x.count)
        result.withUnsafeMutableBufferPointer { out in
            x.withUnsafeBufferPointer { px in
                guard let from = px.baseAddress, let to = out.baseAddress else { return }
                for r in 0 ..< px.count / channels {
                    let (xr, yr) = (from + r * channels, to + r * channels)
                    for c in 0..<channels { yr[c] = f(xr[c], c) }
                }
            }
        }
        return result
    }

    /// Moving averages, Keras's convention: `moving = momentum * moving + (1 - momentum) * batch`.
    public static func updateMoving(_ moving: inout [Float], batch: [Float], momentum: Float) {
        for c in moving.indices { moving[c] = momentum * moving[c] + (1 - momentum) * batch[c] }
    }
}
