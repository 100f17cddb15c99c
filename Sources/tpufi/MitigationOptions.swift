import ArgumentParser
import Sim

/// `--mitigation DETECTORS` and its response, the same in `replay`, `campaign` and `detect`.
struct MitigationOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Detectors to run after every step, comma-separated, each NAME[@first|all][=BOUND]: "
                               + Detector.Kind.allCases.map { "\($0.rawValue): \($0.summary)" }.joined(separator: "; ") + ".",
                               valueName: "detectors"))
    var mitigation: String?

    @Option(help: "What a detection does: detect (record only), skip (drop the step's update, the reference's response) or restore (go back --restore-steps steps and re-execute).")
    var response: Mitigation.Response = .restore

    @Option(help: "Steps a restore re-executes, the detected one included (the reference's: 2).")
    var restoreSteps: Int = 2

    @Option(help: "Restores of one step before falling back to skipping its update.")
    var maxRetries: Int = 2

    /// The mitigation asked for, or nil without `--mitigation`.
    func settings() throws -> Mitigation? {
        guard let mitigation else {
            guard response == .restore, restoreSteps == 2, maxRetries == 2 else {
                throw ValidationError("--response, --restore-steps and --max-retries need --mitigation DETECTORS")
            }
            return nil
        }
        do {
            return try Mitigation(parsing: mitigation, response: response, restoreSteps: restoreSteps, maxRetries: maxRetries)
        } catch {
            throw ValidationError("--mitigation: \(error)")
        }
    }
}

extension Mitigation.Response: ExpressibleByArgument {}
