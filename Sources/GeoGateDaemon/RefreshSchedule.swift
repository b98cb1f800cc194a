import GeoGateCore
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// The daemon's own schedule for `geogate refresh` (daemon.refresh-interval), for
/// hosts without the systemd timer. Each refresh runs as a child process, the
/// same program with `refresh --config`: the same code, lock file and log lines
/// as the timer's run; the compile's memory is the child's and is given back
/// when it exits; and the child's RELOAD reaches this daemon like anyone's.
///
/// The schedule counts from `<state-dir>/last-run`, which every refresh touches
/// (the timer's, a hand-run one, ours), so a restart neither postpones a due
/// refresh nor repeats a recent one; each wait gets a random part of
/// refresh-jitter so a fleet of hosts does not ask the provider at one moment.
struct RefreshSchedule {
    /// The program and arguments of one refresh.
    let command: [String]
    let service: LookupService
    let logger: Logger

    /// Runs until the task is cancelled. Interval, jitter and state directory are
    /// read from the current config each time, so a reloaded config applies.
    func run() async {
        let started = now()
        var lastAttempt: Int64 = 0
        var jitter: Int64?
        while !Task.isCancelled {
            let config = service.snapshot.config
            let interval = Int64(config.daemon.refreshIntervalSeconds)
            guard interval > 0 else {
                try? await Task.sleep(for: .seconds(60))
                continue
            }
            let spread = jitter ?? Int64.random(in: 0...Int64(config.daemon.refreshJitterSeconds ?? Int(interval / 10)))
            jitter = spread
            // Never run: the first refresh is due now (plus the jitter), as with Persistent=true.
            let last = max(lastRun(config.refresh.lastRunStamp) ?? started - interval, lastAttempt)
            let due = last + interval + spread
            let wait = due - now()
            if wait > 0 {
                // Short sleeps, so a config reload that changes the interval is seen within a minute.
                try? await Task.sleep(for: .seconds(min(wait, 60)))
                continue
            }
            lastAttempt = now()
            jitter = nil
            await refreshOnce()
        }
    }

    func refreshOnce() async {
        guard let pid = ChildProcess.spawn(command[0], Array(command.dropFirst())) else {
            logger.error("scheduled refresh: cannot start \(command[0]): \(String(cString: strerror(errno)))")
            return
        }
        logger.info("scheduled refresh: started \(command.joined(separator: " ")) (pid \(pid))")
        var status = ChildProcess.poll(pid)
        while status == nil {
            // Cancelled (shutdown): stop looking; the child finishes its atomic swap
            // on its own (or systemd stops it with the service's cgroup).
            do { try await Task.sleep(for: .milliseconds(250)) } catch { return }
            status = ChildProcess.poll(pid)
        }
        switch status! {
        case 0: logger.info("scheduled refresh: the data changed")
        case 3: logger.info("scheduled refresh: no source changed")
        case let code: logger.error("scheduled refresh: failed (exit status \(code)); nothing changed, see its log above")
        }
    }

    func lastRun(_ path: String) -> Int64? {
        var s = stat()
        return stat(path, &s) == 0 ? Int64(s.st_mtim.tv_sec) : nil
    }

    func now() -> Int64 { Int64(time(nil)) }
}
