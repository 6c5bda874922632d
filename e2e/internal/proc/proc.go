// Package proc reads what the tests and the benchmark need to know about
// a process from /proc: whether it has exited, its CPU time, its memory.
package proc

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// statFields returns the fields of /proc/PID/stat after the command name
// (which is in parentheses and may hold spaces): the state is [0], utime
// and stime are [11] and [12].
func statFields(pid int) ([]string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	s := string(data)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:]), nil
}

// WaitExit waits up to d for pid to exit, or to become a zombie (an
// exited daemon whose new parent does not reap it); it reports whether
// it did.
func WaitExit(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if err := syscall.Kill(pid, 0); err != nil {
			return true
		}
		if f, err := statFields(pid); err == nil && len(f) > 0 && f[0] == "Z" {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// CPUSeconds returns the CPU time (user + system) pid has used, or this
// process's for pid 0; NaN when it cannot be read.
func CPUSeconds(pid int) float64 {
	if pid == 0 {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			return math.NaN()
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	f, err := statFields(pid)
	if err != nil || len(f) < 13 {
		return math.NaN()
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return math.NaN()
	}
	return (ut + st) / 100 // clock ticks: USER_HZ
}

// StatusBytes reads a "Name: N kB" field of /proc/PID/status (VmRSS,
// VmHWM), in bytes.
func StatusBytes(pid int, field string) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				break
			}
			n, err := strconv.ParseInt(f[0], 10, 64)
			return n << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}
