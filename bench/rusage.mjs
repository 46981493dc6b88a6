// Loaded with --import into every Node process the benchmark measures: at
// exit, writes the process's own CPU time (all threads, so the zlib thread
// pool is counted), the main thread's share of it, and peak RSS to the file
// named by S3SINK_BENCH_RUSAGE.
//
// The main thread's CPU comes from /proc/self/task/<pid>/stat (utime and
// stime, in clock ticks of 1/100 s on Linux): everything the sink does that
// is not compression or file reads runs there, one core at most.
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
    writeFileSync(file, JSON.stringify({ cpuSeconds: (u.userCPUTime + u.systemCPUTime) / 1e6, mainCpuSeconds: mainThreadCpu(), maxRssBytes: hwm ? Number(hwm[1]) * 1024 : null }));
  });
}

function mainThreadCpu() {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return null;
  }
}
