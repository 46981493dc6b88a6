// Loaded with --import into every Node process the benchmark measures: at
// exit, writes the process's own CPU time (all threads, so the zlib thread
// pool is counted) and peak RSS to the file named by S3SINK_BENCH_RUSAGE.
//
// Peak RSS is VmHWM from /proc/self/status, not resourceUsage().maxRSS:
// Linux carries ru_maxrss across fork and exec, so a child would report the
// benchmark runner's own peak.
import { readFileSync, writeFileSync } from 'node:fs';

const file = process.env.S3SINK_BENCH_RUSAGE;
if (file) {
  process.on('exit', () => {
    const u = process.resourceUsage();
    const hwm = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    writeFileSync(file, JSON.stringify({ cpuSeconds: (u.userCPUTime + u.systemCPUTime) / 1e6, maxRssBytes: hwm ? Number(hwm[1]) * 1024 : null }));
  });
}
