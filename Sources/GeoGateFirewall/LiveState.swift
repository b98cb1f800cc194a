import GeoGateCore
import GeoGatePolicy
#if canImport(Glibc)
import Glibc
#endif

/// The pieces every command that changes live state starts with: the run lock
/// (one writer at a time) and a set loader that knows which sets are geogate's.
public enum LiveState {
    /// Creates the runtime directory if needed and takes the run lock, waiting at
    /// most the config's lock-wait.
    public static func lock(_ config: GeoGateConfig, command: String, waiting: (String) -> Void) throws(RunLock.Failure) -> RunLock {
        do { try createDirectories(config.runtimeDirectory) } catch {
            throw RunLock.Failure(description: "cannot create the runtime directory: \(error)")
        }
        return try RunLock(path: config.lockFile, waitSeconds: config.lockWaitSeconds, command: command, waiting: waiting)
    }

    /// A libipset session with the record of geogate's sets; `adopt` adds to the
    /// config's adopt-sets.
    public static func loader(_ config: GeoGateConfig, adopt: [String] = []) throws(IPSetError) -> SetLoader {
        SetLoader(kernel: try IPSetKernel(), registry: try SetRegistry(path: config.setRecordFile),
                  adopt: Set(config.adoptSets + adopt))
    }
}
