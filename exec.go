package gantry

import "io"

// ExecConfig describes a command to run inside a running container, as
// docker exec does.
type ExecConfig struct {
	// Cmd is the argv of the command. It must not be empty.
	Cmd []string
	// Env holds extra KEY=VALUE entries, added to the container's own
	// environment.
	Env []string
	// WorkingDir is the directory the command starts in; empty means the
	// container's working directory.
	WorkingDir string
	// User is "user", "uid", "user:group" or "uid:gid"; empty means the
	// container's user.
	User string
	// Tty allocates a pseudo-terminal. With a terminal, stdout and stderr
	// are one stream, delivered to Stdout.
	Tty bool
	// Stdin, when set, is copied to the command's standard input; the
	// command sees end of file when Stdin returns io.EOF.
	Stdin io.Reader
	// Stdout and Stderr receive the command's output. A nil writer
	// discards that stream.
	Stdout io.Writer
	Stderr io.Writer
	// Resize, when set with Tty, delivers terminal size changes. The first
	// value received sets the initial size.
	Resize <-chan TerminalSize
}

// TerminalSize is the size of a terminal in character cells.
type TerminalSize struct {
	Rows uint16
	Cols uint16
}

// ExecResult is the outcome of a finished exec.
type ExecResult struct {
	// ExitCode is the command's exact exit code; 128+N when signal N
	// killed it.
	ExitCode int
	// Signal names the signal that killed the command ("SIGKILL"), or is
	// empty when the command exited on its own.
	Signal string
}
