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
        let m = Float(rows)
        let mean = Reduce.columnSums(x, rows: rows, columns: channels, order: order).map { $0 / m }
        // Three passes over x: the sums, the sums of the centred squares (formed as they are
        // added), then xhat and y together; each value computed as the separate passes did.
        var xhat: [Float] = []
        var variance: [Float] = [], rstd: [Float] = []
        let y = x.withUnsafeBufferPointer { px in
            mean.withUnsafeBufferPointer { pm in
                variance = Reduce.columnSums(rows: rows, columns: channels, order: order) { r, c in
                    let d = px[r * channels + c] - pm[c]
                    return d * d
                }.map { $0 / m }
                rstd = variance.map { DeterministicMath.rsqrt($0 + epsilon) }
                return rstd.withUnsafeBufferPointer { pr in
                    gamma.withUnsafeBufferPointer { pg in
                        beta.withUnsafeBufferPointer { pb in
                            [Float](unsafeUninitializedCapacity: px.count) { py, writtenY in
                                xhat = [Float](unsafeUninitializedCapacity: px.count) { ph, writtenH in
                                    var i = 0
                                    for _ in 0..<rows {
                                        for c in 0..<channels {
                                            let h = (px[i] - pm[c]) * pr[c]
                                            ph[i] = h
                                            py[i] = pg[c] * h + pb[c]
                                            i += 1
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
        return perChannel(x, channels: channels) { v, c in gamma[c] * ((v - movingMean[c]) * rstd[c]) + beta[c] }
    }

    /// dL/dx, dL/dgamma, dL/dbeta through the batch statistics:
    /// `dx = rstd / M * (M * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat))`, `dxhat = dy * gamma`.
    public static func backward(dy: [Float], cache: Cache, rows: Int, channels: Int,
                                gamma: [Float], order: ReductionOrder) -> (dx: [Float], dgamma: [Float], dbeta: [Float]) {
        let dbeta = Reduce.columnSums(dy, rows: rows, columns: channels, order: order)
        let dgamma = dy.withUnsafeBufferPointer { pdy in
            cache.xhat.withUnsafeBufferPointer { px in
                Reduce.columnSums(rows: rows, columns: channels, order: order) { r, c in pdy[r * channels + c] * px[r * channels + c] }
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
                                    let row = r * channels
                                    for c in 0..<channels {
                                        o[row + c] = sc[c] * (m * g[row + c] - db[c] - h[row + c] * dg[c])
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
        [Float](unsafeUninitializedCapacity: x.count) { out, written in
            x.withUnsafeBufferPointer { px in
                var i = 0
                while i < px.count {
                    for c in 0..<channels { out[i + c] = f(px[i + c], c) }
                    i += channels
                }
            }
            written = x.count
        }
    }

    /// Moving averages, Keras's convention: `moving = momentum * moving + (1 - momentum) * batch`.
    public static func updateMoving(_ moving: inout [Float], batch: [Float], momentum: Float) {
        for c in moving.indices { moving[c] = momentum * moving[c] + (1 - momentum) * batch[c] }
    }
}
