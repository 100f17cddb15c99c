/// Softmax cross-entropy, averaged over the batch. Logits `[N, K]`, labels in `0..<K`.
public enum SoftmaxCrossEntropy {
    /// Mean loss, the number of rows whose largest logit is the label, and dL/dlogits
    /// `= (softmax - onehot) / N`. Exponentials and logarithms are ``DeterministicMath``'s.
    public static func forwardBackward(logits: [Float], labels: [Int32], classes: Int)
        -> (loss: Float, correct: Int, dlogits: [Float]) {
        let n = labels.count
        var losses = [Float](repeating: 0, count: n)
        var dlogits = logits
        var correct = 0
        for i in 0..<n {
            let row = i * classes
            var maxv = logits[row], arg = 0
            for j in 1..<classes where logits[row + j] > maxv || (logits[row + j].isNaN && !maxv.isNaN) {
                maxv = logits[row + j]
                arg = j
            }
            if arg == Int(labels[i]) && !maxv.isNaN { correct += 1 }
            var sum: Float = 0
            for j in 0..<classes {
                let e = DeterministicMath.exp(logits[row + j] - maxv)
                dlogits[row + j] = e
                sum += e
            }
            losses[i] = DeterministicMath.log(sum) + maxv - logits[row + Int(labels[i])]
            for j in 0..<classes { dlogits[row + j] = dlogits[row + j] / sum / Float(n) }
            dlogits[row + Int(labels[i])] -= 1 / Float(n)
        }
        return (Reduce.sum(losses) / Float(n), correct, dlogits)
    }
}
