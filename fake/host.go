package fake

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"

	"github.com/gantryhq/gantry"
)

// outputGrace bounds how long the fake waits, after a host container's
// main process and its group are gone, for a process that escaped the
// group to close the output pipes.
const outputGrace = 2 * time.Second

// hostRun is the host-process side of a run.
type hostRun struct {
	cmd     *exec.Cmd
	pid     int // also the process group ID
	outputs []*os.File
	outDone chan struct{}
	ptmx    *os.File // the main process's terminal, with Spec.Tty
	mounts  mountTable
	tmpfs   []string // directories made for the run's tmpfs mounts

	mu       sync.Mutex
	ttyExecs map[int]bool // exec processes in sessions of their own
}

// signal sends sig to the container's process group, as the freezer and
// the end of a PID namespace reach every process.
func (h *hostRun) signal(sig int) {
	syscall.Kill(-h.pid, syscall.Signal(sig))
}

// signalMain sends sig to the container's main process only, as an init
// (docker run --init, gantry's semantics) forwards the signals it gets:
// the main process's children see none of them, and once it exits the
// rest of the group is killed (waitHost).
func (h *hostRun) signalMain(sig int) {
	syscall.Kill(h.pid, syscall.Signal(sig))
}

// settleLimit bounds how long Pause and Unpause wait for the processes of
// a host container to reach the state SIGSTOP or SIGCONT asks for.
const settleLimit = 2 * time.Second

// settle waits until the container's processes have all stopped (or, with
// stopped false, none is stopped), since a signal only marks its target:
// the kernel stops or resumes it when it next runs. A process that has
// exited counts as settled either way.
func (h *hostRun) settle(stopped bool) {
	deadline := time.Now().Add(settleLimit)
	for time.Now().Before(deadline) {
		procs, err := readProcs(h.groups())
		if err != nil {
			return
		}
		done := true
		for _, p := range procs {
			if p.state != "Z" && p.state != "X" && (p.state == "T") != stopped {
				done = false
				break
			}
		}
		if done {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// startHost starts the container's command as a host process in a process
// group of its own. Call with rt.mu held.
func (rt *Runtime) startHost(r *run) (err error) {
	c := r.c
	h := &hostRun{ttyExecs: map[int]bool{}}
	if h.mounts, h.tmpfs, err = hostMounts(c.spec.Mounts); err != nil {
		return rt.startFailed(c, err)
	}
	argv := h.mounts.args(append(slices.Clone(c.spec.Entrypoint), c.spec.Cmd...))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = rt.processEnv(c, h.mounts, nil)
	// Docker's default working directory is the image's, and "/" for an
	// image that names none; a host process has no image.
	cmd.Dir = h.mounts.path(c.spec.WorkingDir)
	if cmd.Dir == "" {
		cmd.Dir = "/"
	}
	var childSide []*os.File
	defer func() {
		for _, f := range childSide {
			f.Close()
		}
		if err != nil {
			removeAll(h.tmpfs)
			for _, f := range h.outputs {
				f.Close()
			}
			if r.stdin != nil {
				r.stdin.Close()
				r.stdin = nil
			}
		}
	}()
	attrs := &syscall.SysProcAttr{Setpgid: true}
	if attrs.Credential, err = credential(c.spec.User); err != nil {
		c.state.Error = err.Error()
		return fmt.Errorf("%w: %v", gantry.ErrInvalidArgument, err)
	}
	if c.spec.Tty {
		ptmx, tty, err := pty.Open()
		if err != nil {
			return rt.startFailed(c, err)
		}
		childSide = append(childSide, tty)
		h.ptmx = ptmx
		h.outputs = []*os.File{ptmx}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
		attrs = &syscall.SysProcAttr{Setsid: true, Setctty: true, Credential: attrs.Credential}
		if c.spec.OpenStdin {
			r.stdin = ptmx
		}
	} else {
		outR, outW, err := os.Pipe()
		if err != nil {
			return rt.startFailed(c, err)
		}
		h.outputs = append(h.outputs, outR)
		childSide = append(childSide, outW)
		errR, errW, err := os.Pipe()
		if err != nil {
			return rt.startFailed(c, err)
		}
		h.outputs = append(h.outputs, errR)
		childSide = append(childSide, errW)
		cmd.Stdout, cmd.Stderr = outW, errW
		if c.spec.OpenStdin {
			inR, inW, err := os.Pipe()
			if err != nil {
				return rt.startFailed(c, err)
			}
			childSide = append(childSide, inR)
			cmd.Stdin, r.stdin = inR, inW
		}
	}
	cmd.SysProcAttr = attrs
	if err := cmd.Start(); err != nil {
		return rt.startFailed(c, err)
	}
	h.cmd = cmd
	h.pid = cmd.Process.Pid
	h.outDone = make(chan struct{}, len(h.outputs))
	r.h = h
	c.logs.begin()
	rt.wg.Add(len(h.outputs) + 1)
	for i, f := range h.outputs {
		go rt.readOutput(r, f, gantry.Stream(i+1))
	}
	go rt.waitHost(r)
	return nil
}

// execFailure is a command that could not be executed: under an init the
// container starts and exits with code at once (see Runtime.start).
type execFailure struct {
	code int
	err  error
}

func (e *execFailure) Error() string { return e.err.Error() }

// startFailed classifies a failed start. A command that does not exist
// (127) or is not executable (126) is an execFailure, as an init reports
// it; anything else fails Start, the status stays and State.Error tells.
func (rt *Runtime) startFailed(c *container, err error) error {
	if code := cannotExec(err); code != 0 {
		return &execFailure{code: code, err: err}
	}
	c.state.Error = err.Error()
	return fmt.Errorf("%w: %v", gantry.ErrUnavailable, err)
}

// cannotExec returns the exit code an init gives a command that cannot be
// executed, 127 when it does not exist and 126 when it is not executable
// (a directory, no permission), or 0 when err, from exec.Cmd.Start, is
// about something else (a working directory that does not exist, say).
func cannotExec(err error) int {
	var ee *exec.Error
	var pe *fs.PathError
	if !errors.As(err, &ee) && !(errors.As(err, &pe) && pe.Op == "fork/exec") {
		return 0
	}
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		return 127
	}
	return 126
}

// readOutput turns one output of a host container into log lines.
func (rt *Runtime) readOutput(r *run, f *os.File, s gantry.Stream) {
	defer rt.wg.Done()
	buf := make([]byte, 32<<10)
	var partial []byte
	tty := r.h.ptmx != nil
	for {
		n, err := f.Read(buf)
		if n > 0 {
			r.c.logs.write(s, &partial, buf[:n], tty)
		}
		if err != nil {
			break
		}
	}
	r.c.logs.flush(s, &partial)
	r.h.outDone <- struct{}{}
}

// waitHost waits for the main process, ends the rest of its group (as the
// end of a container's PID namespace does), collects the last output and
// records the exit.
func (rt *Runtime) waitHost(r *run) {
	defer rt.wg.Done()
	h := r.h
	h.cmd.Wait()
	h.signal(sigKILL)
	h.mu.Lock()
	for pid := range h.ttyExecs {
		syscall.Kill(-pid, syscall.SIGKILL)
	}
	h.mu.Unlock()
	grace := time.NewTimer(outputGrace)
	for range h.outputs {
		select {
		case <-h.outDone:
		case <-grace.C:
			for _, f := range h.outputs {
				f.Close()
			}
			<-h.outDone
		}
	}
	for _, f := range h.outputs {
		f.Close()
	}
	// A container has exited once all its processes are gone, as when its
	// PID namespace ends: wait (within the grace) for the killed members
	// of the group to die. Orphans become zombies of init, which may reap
	// them late; they no longer run.
	for syscall.Kill(-h.pid, 0) == nil && h.groupRuns() {
		select {
		case <-grace.C:
		case <-time.After(time.Millisecond):
			continue
		}
		break
	}
	grace.Stop()
	removeAll(h.tmpfs)
	rt.mu.Lock()
	rt.finish(r, exitStatus(h.cmd.ProcessState))
	rt.mu.Unlock()
}

// groupRuns reports whether a process of the container's group is still
// alive (not a zombie).
func (h *hostRun) groupRuns() bool {
	procs, err := readProcs(map[int]bool{h.pid: true})
	if err != nil {
		return false
	}
	for _, p := range procs {
		if p.state != "Z" {
			return true
		}
	}
	return false
}

// exitStatus is Docker's reading of a wait status: the exit code, or
// 128+N for death by signal N.
func exitStatus(ps *os.ProcessState) gantry.ExitStatus {
	ws, ok := ps.Sys().(syscall.WaitStatus)
	if ok && ws.Signaled() {
		n := int(ws.Signal())
		return gantry.ExitStatus{ExitCode: 128 + n, Signal: gantry.SignalName(n)}
	}
	return gantry.ExitStatus{ExitCode: ps.ExitCode()}
}

// credential resolves a Spec or exec User ("user", "uid", "user:group",
// "uid:gid") against this host. It returns nil when the user is the
// current one, so that an unprivileged test can name itself.
func credential(spec string) (*syscall.Credential, error) {
	if spec == "" {
		return nil, nil
	}
	name, group, hasGroup := strings.Cut(spec, ":")
	uid, gid := -1, 0
	if n, err := strconv.Atoi(name); err == nil {
		uid = n
		if u, err := user.LookupId(name); err == nil {
			gid, _ = strconv.Atoi(u.Gid)
		}
	} else {
		u, err := user.Lookup(name)
		if err != nil {
			return nil, fmt.Errorf("unable to find user %s: %w", name, fs.ErrNotExist)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
	}
	if hasGroup {
		if n, err := strconv.Atoi(group); err == nil {
			gid = n
		} else {
			g, err := user.LookupGroup(group)
			if err != nil {
				return nil, fmt.Errorf("unable to find group %s: %w", group, fs.ErrNotExist)
			}
			gid, _ = strconv.Atoi(g.Gid)
		}
	}
	if uid == os.Getuid() && gid == os.Getgid() {
		return nil, nil
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}
