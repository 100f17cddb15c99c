/// Batch normalisation over the rows of `[M, C]` data (an NHWC tensor with `M = N*H*W`),
/// per channel, as Keras does it: biased batch variance, `y = gamma * xhat + beta` with
/// `xhat = (x - mean) / sqrt(var + eps)`. Statistics are fp32 column sums in row order
/// (``Reduce``), the variance in a second pass over `x - mean`.
public enum BatchNorm {
    /// What the backward pass needs from the forward one.
    public struct Cache: Sendable {
        public var xhat: [Float]
        public var rstd: [Float]
    }

    /// Training: normalises with this batch's statistics and returns them for the moving
    /// averages.
    public static func forwardTraining(x: [Float], rows: Int, channels: Int, gamma: [Float], beta: [Float],
                                       epsilon: Float) -> (y: [Float], mean: [Float], variance: [Float], cache: Cache) {
        let m = Float(rows)
        let mean = Reduce.columnSums(x, rows: rows, columns: channels).map { $0 / m }
        var centered = x
        for r in 0..<rows { for c in 0..<channels { centered[r * channels + c] -= mean[c] } }
        let variance = Reduce.columnSums(centered.map { $0 * $0 }, rows: rows, columns: channels).map { $0 / m }
        let rstd = variance.map { DeterministicMath.rsqrt($0 + epsilon) }
        var xhat = centered, y = centered
        for r in 0..<rows {
            for c in 0..<channels {
                let i = r * channels + c
                xhat[i] = centered[i] * rstd[c]
                y[i] = gamma[c] * xhat[i] + beta[c]
            }
        }
        return (y, mean, variance, Cache(xhat: xhat, rstd: rstd))
    }

    /// Inference: normalises with the moving statistics.
    public static func forwardInference(x: [Float], rows: Int, channels: Int, gamma: [Float], beta: [Float],
                                        movingMean: [Float], movingVariance: [Float], epsilon: Float) -> [Float] {
        let rstd = movingVariance.map { DeterministicMath.rsqrt($0 + epsilon) }
        var y = x
        for r in 0..<rows {
            for c in 0..<channels {
                let i = r * channels + c
                y[i] = gamma[c] * ((x[i] - movingMean[c]) * rstd[c]) + beta[c]
            }
        }
        return y
    }

    /// dL/dx, dL/dgamma, dL/dbeta through the batch statistics:
    /// `dx = rstd / M * (M * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat))`, `dxhat = dy * gamma`.
    public static func backward(dy: [Float], cache: Cache, rows: Int, channels: Int,
                                gamma: [Float]) -> (dx: [Float], dgamma: [Float], dbeta: [Float]) {
        let dbeta = Reduce.columnSums(dy, rows: rows, columns: channels)
        var dyXhat = dy
        for i in dy.indices { dyXhat[i] = dy[i] * cache.xhat[i] }
        let dgamma = Reduce.columnSums(dyXhat, rows: rows, columns: channels)
        let m = Float(rows)
        var dx = dy
        for r in 0..<rows {
            for c in 0..<channels {
                let i = r * channels + c
                // sum(dxhat) = gamma * dbeta, sum(dxhat * xhat) = gamma * dgamma.
                dx[i] = gamma[c] * cache.rstd[c] / m * (m * dy[i] - dbeta[c] - cache.xhat[i] * dgamma[c])
            }
        }
        return (dx, dgamma, dbeta)
    }

    /// Moving averages, Keras's convention: `moving = momentum * moving + (1 - momentum) * batch`.
    public static func updateMoving(_ moving: inout [Float], batch: [Float], momentum: Float) {
        for c in moving.indices { moving[c] = momentum * moving[c] + (1 - momentum) * batch[c] }
    }
}
