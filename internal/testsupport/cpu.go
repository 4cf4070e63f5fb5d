package testsupport

import (
	"syscall"
	"time"
)

// ProcessCPU returns the user and system CPU time this process has used. On a
// shared machine wall time swings with the neighbours' load; a benchmark's
// CPU time per operation (GC included) does not.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ProcessTreeCPU returns the user+system CPU used so far by this process and
// its waited-for children (such as the iptables binaries, whose netlink work
// the kernel accounts to them).
func ProcessTreeCPU() time.Duration {
	var self, kids syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self)     //nolint:errcheck // cannot fail for RUSAGE_SELF
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids) //nolint:errcheck // cannot fail for RUSAGE_CHILDREN
	tv := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return tv(self.Utime) + tv(self.Stime) + tv(kids.Utime) + tv(kids.Stime)
}

// Ms returns d in milliseconds, for benchmark metrics.
func Ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
