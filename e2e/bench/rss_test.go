package main

import (
	"os"
	"testing"
)

func TestParseProcStatus(t *testing.T) {
	text := "Name:\tweir\nVmPeak:\t 1300000 kB\nVmHWM:\t   65536 kB\nVmRSS:\t   32768 kB\nThreads:\t8\n"
	got, err := ParseProcStatus(text)
	if err != nil {
		t.Fatalf("ParseProcStatus: %v", err)
	}
	if want := (ProcMem{RSS: 32 << 20, HWM: 64 << 20}); got != want {
		t.Errorf("ParseProcStatus = %+v; want %+v", got, want)
	}
	if _, err := ParseProcStatus("Name:\tweir\nVmRSS:\t 1 kB\n"); err == nil {
		t.Errorf("ParseProcStatus without VmHWM: no error")
	}
	self, err := procMem(os.Getpid())
	if err != nil || self.RSS <= 0 || self.HWM < self.RSS {
		t.Errorf("procMem(self) = %+v, %v; want 0 < RSS <= HWM", self, err)
	}
}

func TestParseMetric(t *testing.T) {
	text := "# HELP go_memstats_heap_inuse_bytes x\n# TYPE go_memstats_heap_inuse_bytes gauge\ngo_memstats_heap_inuse_bytes 4.2e+06\ngo_memstats_heap_inuse_bytes_total 9\n"
	if v, ok := ParseMetric(text, "go_memstats_heap_inuse_bytes"); !ok || v != 4.2e6 {
		t.Errorf("ParseMetric = %v, %v; want 4.2e6, true", v, ok)
	}
	if _, ok := ParseMetric(text, "missing"); ok {
		t.Errorf("ParseMetric(missing) found a value")
	}
}
