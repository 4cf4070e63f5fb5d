package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"weir/internal/testsupport"
)

// DefaultMarkerDir holds one marker per running lab, <prefix>.pid, naming the
// process that owns it; Sweep removes labs whose owner is gone.
const DefaultMarkerDir = "/run/weir-lab"

// marker content: "<pid> <start time in clock ticks>", so a recycled pid is not
// mistaken for the owner.
func writeMarker(dir, prefix string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating marker dir %s: %w", dir, err)
	}
	pid := os.Getpid()
	st, err := procStart(pid)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, prefix+".pid")
	if err := os.WriteFile(path, fmt.Appendf(nil, "%d %d\n", pid, st), 0o644); err != nil {
		return fmt.Errorf("writing lab marker %s: %w", path, err)
	}
	return nil
}

// procStart returns field 22 of /proc/PID/stat: the start time in clock ticks.
func procStart(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("reading start time of pid %d: %w", pid, err)
	}
	s := string(b)
	// The command name (field 2) may hold spaces and parentheses; fields after
	// the last ')' are plain.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("parsing /proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, fmt.Errorf("parsing /proc/%d/stat: %d fields", pid, len(f))
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// ownerAlive reports whether the process recorded in marker path still runs.
func ownerAlive(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	var pid int
	var start uint64
	if _, err := fmt.Sscanf(string(b), "%d %d", &pid, &start); err != nil {
		return false
	}
	got, err := procStart(pid)
	return err == nil && got == start
}

// ListNamespaces returns the names of all named network namespaces (ip netns).
func ListNamespaces() ([]string, error) {
	entries, err := os.ReadDir("/run/netns")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing namespaces: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, nil
}

// labNS matches the namespaces a lab with the given prefix creates.
func labNS(prefix string) *regexp.Regexp {
	return regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `(sw|git|h[0-9]+(g[0-9]+)?)$`)
}

// removeLab kills every process inside the lab's namespaces, deletes them and
// finally the marker (last, so an interrupted removal can be swept again).
func removeLab(prefix, markerDir string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	all, err := ListNamespaces()
	if err != nil {
		return err
	}
	re := labNS(prefix)
	var errs []error
	var mine []string
	for _, ns := range all {
		if re.MatchString(ns) {
			mine = append(mine, ns)
		}
	}
	for _, ns := range mine {
		killNSProcs(ctx, ns)
	}
	for _, ns := range mine {
		if err := testsupport.DelNetns(ctx, ns); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(filepath.Join(markerDir, prefix+".pid")); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("removing lab marker: %w", err))
	}
	return errors.Join(errs...)
}

// killNSProcs SIGKILLs every process in namespace ns: a namespace whose
// processes live on would outlast `ip netns del`.
func killNSProcs(ctx context.Context, ns string) {
	for range 20 {
		out, err := exec.CommandContext(ctx, "ip", "netns", "pids", ns).Output()
		if err != nil || strings.TrimSpace(string(out)) == "" {
			return
		}
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(50 * time.Millisecond) // let the kernel reap them before looking again
	}
}

// Sweep removes the labs of markerDir (DefaultMarkerDir when empty) whose owning
// process is gone, e.g. a test binary killed by a timeout, and returns their
// prefixes. Labs of live processes and namespaces without a marker are left
// alone: they belong to someone else.
func Sweep(markerDir string) ([]string, error) {
	return sweep(markerDir, func(path string) bool { return !ownerAlive(path) })
}

// SweepMine removes the labs owned by this process, for signal handlers that
// must tear down before exiting.
func SweepMine(markerDir string) ([]string, error) {
	pid := os.Getpid()
	return sweep(markerDir, func(path string) bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		var p int
		_, err = fmt.Sscanf(string(b), "%d", &p)
		return err == nil && p == pid
	})
}

func sweep(markerDir string, stale func(path string) bool) ([]string, error) {
	if markerDir == "" {
		markerDir = DefaultMarkerDir
	}
	markers, err := filepath.Glob(filepath.Join(markerDir, "*.pid"))
	if err != nil {
		return nil, fmt.Errorf("listing lab markers: %w", err)
	}
	var removed []string
	var errs []error
	for _, m := range markers {
		if !stale(m) {
			continue
		}
		prefix := strings.TrimSuffix(filepath.Base(m), ".pid")
		if err := removeLab(prefix, markerDir); err != nil {
			errs = append(errs, fmt.Errorf("sweeping lab %s: %w", prefix, err))
			continue
		}
		removed = append(removed, prefix)
	}
	return removed, errors.Join(errs...)
}
