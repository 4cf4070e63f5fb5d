// Package dist holds what installs and runs weir as a service: the systemd
// unit, the example environment file, the nfpm package definition and the
// Grafana dashboard. Its test builds the .deb with `make package` and
// checks what is inside.
package dist

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// wantFiles are the files the package must install, with their modes.
var wantFiles = map[string]int64{
	"./usr/bin/weir":                                  0o755,
	"./usr/lib/systemd/system/weir.service":           0o644,
	"./etc/weir/agent.env":                            0o640,
	"./usr/share/man/man1/weir.1.gz":                  0o644,
	"./usr/share/man/man1/weir-agent.1.gz":            0o644,
	"./usr/share/man/man1/weir-diff.1.gz":             0o644,
	"./usr/share/bash-completion/completions/weir":    0o644,
	"./usr/share/zsh/vendor-completions/_weir":        0o644,
	"./usr/share/fish/vendor_completions.d/weir.fish": 0o644,
	"./usr/share/weir/grafana-dashboard.json":         0o644,
	"./usr/share/doc/weir/copyright":                  0o644,
	"./usr/share/doc/weir/memberlist-LICENSE":         0o644,
}

// TestPackage builds the .deb twice with `make package` (into a directory
// of its own, so the bin/weir other tests run is left alone), checks that
// both builds are byte-identical, reads the package as dpkg would (an ar
// archive of control and data tarballs), extracts it, checks that the
// binary is static and runs it, and verifies the unit with systemd-analyze
// where that exists.
func TestPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping in -short mode: builds the binary and the .deb")
	}
	for _, tool := range []string{"make", "go", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping: needs %s (scripts/setup-debian.sh installs it)", tool)
		}
	}
	out := t.TempDir()
	first := buildPackage(t, out)
	again := buildPackage(t, out)
	if !bytes.Equal(first, again) {
		t.Errorf("two `make package` runs gave different .deb files (%d and %d bytes); want the same bytes", len(first), len(again))
	}
	control, data := readDeb(t, first)
	if !strings.Contains(control["./control"], "Package: weir\n") || !strings.Contains(control["./control"], "Depends: iptables\n") {
		t.Errorf("control file:\n%s\nwant Package: weir and Depends: iptables", control["./control"])
	}
	if got := strings.TrimSpace(control["./conffiles"]); got != "/etc/weir/agent.env" {
		t.Errorf("conffiles = %q; want /etc/weir/agent.env", got)
	}
	root := extract(t, data)
	bin := filepath.Join(root, "usr/bin/weir")
	checkStatic(t, bin)
	checkVersion(t, bin)
	verifyUnit(t, root)
	dpkgAgrees(t, filepath.Join(out, "build"))
}

// buildPackage runs `make package` with its outputs in dir and returns the
// .deb.
func buildPackage(t *testing.T, dir string) []byte {
	t.Helper()
	cmd := exec.Command("make", "-C", "..", "package", "BIN="+filepath.Join(dir, "weir"), "BUILD="+filepath.Join(dir, "build"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make package: %v\n%s", err, b)
	}
	debs, _ := filepath.Glob(filepath.Join(dir, "build", "*.deb"))
	if len(debs) != 1 {
		t.Fatalf("make package made %v; want one .deb", debs)
	}
	b, err := os.ReadFile(debs[0])
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readDeb returns the control files (by name) and the data tarball of a
// .deb, checking the members an ar archive of a Debian package holds.
func readDeb(t *testing.T, deb []byte) (map[string]string, []byte) {
	t.Helper()
	members := readAr(t, deb)
	if got := string(members["debian-binary"]); got != "2.0\n" {
		t.Fatalf("debian-binary = %q; want 2.0", got)
	}
	control := map[string]string{}
	for name, body := range untar(t, members["control.tar.gz"]) {
		control[name] = string(body.data)
	}
	data := members["data.tar.gz"]
	if data == nil {
		t.Fatalf("no data.tar.gz in the package (members %v)", keys(members))
	}
	files := untar(t, data)
	for name, mode := range wantFiles {
		f, ok := files[name]
		switch {
		case !ok:
			t.Errorf("the package lacks %s", name)
		case f.mode != mode:
			t.Errorf("%s has mode %o; want %o", name, f.mode, mode)
		}
	}
	return control, data
}

// readAr splits an ar archive (the .deb container) into its members.
func readAr(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	const magic = "!<arch>\n"
	if !bytes.HasPrefix(b, []byte(magic)) {
		t.Fatalf("not an ar archive")
	}
	out := map[string][]byte{}
	for off := len(magic); off+60 <= len(b); {
		hdr := b[off : off+60]
		name := strings.TrimSuffix(strings.TrimSpace(string(hdr[0:16])), "/")
		var size int
		if _, err := fmt.Sscan(strings.TrimSpace(string(hdr[48:58])), &size); err != nil || off+60+size > len(b) {
			t.Fatalf("ar member %q: bad size %q", name, hdr[48:58])
		}
		out[name] = b[off+60 : off+60+size]
		off += 60 + size + size%2
	}
	return out
}

type tarFile struct {
	mode int64
	data []byte
}

// untar reads a gzipped tarball into its regular files, by name.
func untar(t *testing.T, tgz []byte) map[string]tarFile {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	out := map[string]tarFile{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = tarFile{mode: h.Mode & 0o7777, data: b}
	}
}

// extract writes the data tarball's files under a new directory.
func extract(t *testing.T, data []byte) string {
	t.Helper()
	root := t.TempDir()
	for name, f := range untar(t, data) {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.data, os.FileMode(f.mode)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// checkStatic fails unless bin is an ELF executable without an interpreter
// or shared libraries (what `file` calls "statically linked"), and without
// the build machine's paths (-trimpath).
func checkStatic(t *testing.T, bin string) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has a program interpreter; want a static binary (CGO_ENABLED=0)", bin)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("%s needs shared libraries %v; want none", bin, libs)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if wd, _ := filepath.Abs(".."); bytes.Contains(b, []byte(wd)) {
		t.Errorf("%s holds the build path %s; want -trimpath", bin, wd)
	}
}

// checkVersion runs the extracted binary: `weir version` names the commit
// and Go version it was built from.
func checkVersion(t *testing.T, bin string) {
	t.Helper()
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s version: %v\n%s", bin, err, out)
	}
	head, err := exec.Command("git", "-C", "..", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	describe, err := exec.Command("git", "-C", "..", "describe", "--tags", "--always", "--dirty").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"weir " + strings.TrimSpace(string(describe)) + "\n",
		"commit:    " + strings.TrimSpace(string(head)),
		"go:        " + runtime.Version() + "\n",
		"netfilter: ",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("weir version printed\n%s\nwant it to contain %q", out, want)
		}
	}
}

// verifyUnit runs `systemd-analyze verify` on the packaged unit, pointed at
// the extracted binary.
func verifyUnit(t *testing.T, root string) {
	t.Helper()
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Logf("not verifying weir.service: no systemd-analyze here (Debian's systemd package has it)")
		return
	}
	unit, err := os.ReadFile(filepath.Join(root, "usr/lib/systemd/system/weir.service"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "weir.service")
	text := strings.ReplaceAll(string(unit), "/usr/bin/weir", filepath.Join(root, "usr/bin/weir"))
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("systemd-analyze", "verify", "--man=no", p).CombinedOutput(); err != nil {
		t.Errorf("systemd-analyze verify weir.service: %v\n%s", err, out)
	}
	checkHardening(t, unit)
}

// checkHardening checks the unit's settings the README promises.
func checkHardening(t *testing.T, unit []byte) {
	t.Helper()
	set := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(unit))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && !strings.HasPrefix(k, "#") {
			set[k] = append(set[k], v)
		}
	}
	for k, v := range map[string]string{
		"Type": "notify", "WatchdogSec": "60s", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
		"ProtectHome": "yes", "PrivateTmp": "yes", "StateDirectory": "weir", "Restart": "on-failure",
		"EnvironmentFile": "/etc/weir/agent.env", "AmbientCapabilities": "CAP_NET_ADMIN CAP_NET_RAW",
		"CapabilityBoundingSet": "CAP_NET_ADMIN CAP_NET_RAW", "ExecStart": "/usr/bin/weir agent",
	} {
		if got := set[k]; len(got) != 1 || got[0] != v {
			t.Errorf("weir.service sets %s=%q; want %q", k, got, v)
		}
	}
}

// dpkgAgrees lists the package with dpkg-deb, where it exists, so dpkg
// itself accepts what the test read by hand.
func dpkgAgrees(t *testing.T, dir string) {
	t.Helper()
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Logf("not checking with dpkg-deb: not installed")
		return
	}
	debs, _ := filepath.Glob(filepath.Join(dir, "*.deb"))
	for _, args := range [][]string{{"-I", debs[0]}, {"-c", debs[0]}} {
		out, err := exec.Command("dpkg-deb", args...).CombinedOutput()
		if err != nil {
			t.Errorf("dpkg-deb %s: %v\n%s", args[0], err, out)
		}
		if args[0] == "-c" && !strings.Contains(string(out), "./usr/bin/weir\n") {
			t.Errorf("dpkg-deb -c does not list ./usr/bin/weir:\n%s", out)
		}
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
