package minio

import "syscall"

// sysProcAttr kills MinIO when the process that started it dies, and puts it
// in its own process group so a terminal's Ctrl-C reaches only the parent,
// which then stops it cleanly.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
