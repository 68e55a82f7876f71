package agent

import (
	"os"
	"syscall"
)

// pipeSize is what output pipes are grown to: large pipes let a fast
// writer hand over more per read, which is most of the throughput.
const pipeSize = 1 << 20

// growPipe enlarges a pipe's kernel buffer; failure only costs speed.
func growPipe(f *os.File) {
	if rc, err := f.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_SETPIPE_SZ, pipeSize)
		})
	}
}
