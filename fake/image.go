package fake

import (
	"context"
	"io"
	"os"
	"syscall"
)

// signalBuffer is how many undelivered signals a Go image's Signals
// channel holds; further ones are dropped, as Linux merges a pending
// signal with one already pending.
const signalBuffer = 16

// Image is a programmable image for Go-function mode. Register it with
// RegisterImage or WithImage.
type Image struct {
	// Run is the container's main process. Its result is the exit code
	// (taken modulo 256, as a process's). ctx is cancelled when the
	// container is killed with SIGKILL; by then the container has exited
	// with 137 and whatever Run writes afterwards is discarded. Run must
	// return once ctx is done, or Close waits for it.
	Run func(ctx context.Context, p *Process) int
	// Exec runs a command given to Exec in a running container. Nil means
	// the image refuses exec with ErrNotSupported. ctx is cancelled when
	// the exec's context ends or the container exits.
	Exec func(ctx context.Context, p *Process) int
}

// Process is what a Go image's function receives: a container's main
// process, or an exec. A Go image behaves as a container's PID 1: a
// signal it does not read from Signals has no effect, except SIGKILL,
// which is never delivered but ends the container at once.
type Process struct {
	// ContainerID is the full ID of the container.
	ContainerID string
	// Args is the argv: the spec's Entrypoint followed by its Cmd, or the
	// exec's Cmd.
	Args []string
	// Env is the container's KEY=VALUE environment (with its secrets),
	// followed for an exec by the exec's own entries.
	Env []string
	// WorkingDir and User are the spec's (or the exec's) settings.
	WorkingDir string
	User       string
	// Tty is set when the process has a terminal; Stdout and Stderr are
	// then the same stream.
	Tty bool
	// Stdin is the process's input: for the main process, what Attach
	// sends when the spec has OpenStdin (else it is at end of file at
	// once); for an exec, the ExecConfig's Stdin.
	Stdin io.Reader
	// Stdout and Stderr are the process's output. For the main process
	// each line becomes a log entry; writes block while the container is
	// paused.
	Stdout io.Writer
	Stderr io.Writer
	// Signals receives the signals sent by Stop, Kill and a Spec.Timeout,
	// with their Linux numbers (syscall.SIGTERM is 15 as everywhere;
	// compare others by number). It is nil for an exec.
	Signals <-chan syscall.Signal
}

// Getenv returns the value of the last entry of Env for key, as a shell
// sees it, or "".
func (p *Process) Getenv(key string) string {
	for i := len(p.Env) - 1; i >= 0; i-- {
		kv := p.Env[i]
		if len(kv) > len(key) && kv[len(key)] == '=' && kv[:len(key)] == key {
			return kv[len(key)+1:]
		}
	}
	return ""
}

// eofReader is the standard input of a process that has none.
type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// defaultPath is the PATH Docker gives a container whose image sets none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// containerEnv is the main process's environment. A host process gets a
// small base first (PATH, HOME and HOSTNAME, as a container has), so
// commands resolve as on the host. Call with rt.mu held.
func (rt *Runtime) containerEnv(c *container) []string {
	n := len(c.spec.Env) + len(c.spec.Secrets)
	if rt.host {
		n += 3
	}
	env := make([]string, 0, n)
	if rt.host {
		path := os.Getenv("PATH")
		if path == "" {
			path = defaultPath
		}
		env = append(env, "PATH="+path, "HOME="+os.Getenv("HOME"), "HOSTNAME="+c.id[:12])
	}
	env = append(env, c.spec.Env...)
	for _, s := range c.spec.Secrets {
		env = append(env, s.Env+"="+rt.secrets[s.Name])
	}
	return env
}
