package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/gantryhq/gantry"
)

// spawner starts processes and collects their exit status. Without
// reaping it waits for each child through os.Process. With reaping (the
// agent is PID 1 or a child subreaper) one wait4(-1) loop owns every
// child, ours and re-parented orphans alike, and hands statuses to the
// processes it started; mixing the two would let the loop steal a status
// os.Process is waiting for.
type spawner struct {
	reap bool

	mu    sync.Mutex
	procs map[int]*proc
}

func newSpawner(reap bool) *spawner {
	s := &spawner{reap: reap, procs: make(map[int]*proc)}
	if reap {
		// Subscribing before the first child starts means no SIGCHLD is
		// missed.
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGCHLD)
		go s.reapLoop(ch)
	}
	return s
}

// proc is a started child process.
type proc struct {
	p    *os.Process
	done chan struct{}

	mu     sync.Mutex
	exited bool
	status syscall.WaitStatus
}

// start starts a process. The spawner's lock is held from before the fork
// until the child is registered, so the reap loop, which takes the lock to
// dispatch, cannot see the child's status before its waiter exists.
func (s *spawner) start(path string, argv []string, attr *os.ProcAttr) (*proc, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := os.StartProcess(path, argv, attr)
	if err != nil {
		return nil, err
	}
	pr := &proc{p: p, done: make(chan struct{})}
	if s.reap {
		s.procs[p.Pid] = pr
	} else {
		go func() {
			st, err := p.Wait()
			ws := syscall.WaitStatus(0x7f00) // exit status 127 if Wait itself failed
			if err == nil {
				ws = st.Sys().(syscall.WaitStatus)
			}
			pr.finish(ws)
		}()
	}
	return pr, nil
}

func (s *spawner) reapLoop(ch <-chan os.Signal) {
	for range ch {
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			if err != nil || pid <= 0 {
				break
			}
			s.mu.Lock()
			pr := s.procs[pid]
			delete(s.procs, pid)
			s.mu.Unlock()
			if pr != nil {
				pr.p.Release()
				pr.finish(ws)
			}
		}
	}
}

func (p *proc) finish(ws syscall.WaitStatus) {
	p.mu.Lock()
	p.exited = true
	p.status = ws
	p.mu.Unlock()
	close(p.done)
}

// result converts the wait status into Docker's terms: the exit code, or
// 128+N and the signal's name when signal N killed the process.
func (p *proc) result() gantry.ExecResult {
	p.mu.Lock()
	ws := p.status
	p.mu.Unlock()
	return waitResult(ws)
}

func waitResult(ws syscall.WaitStatus) gantry.ExecResult {
	if ws.Signaled() {
		n := int(ws.Signal())
		return gantry.ExecResult{ExitCode: 128 + n, Signal: gantry.SignalName(n)}
	}
	return gantry.ExecResult{ExitCode: ws.ExitStatus()}
}

// signal sends sig to the process itself.
func (p *proc) signal(sig syscall.Signal) error {
	err := p.p.Signal(sig)
	if errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	return err
}

// signalGroup sends sig to the process group the process leads. The
// process is not yet reaped when exited is false, so its ID (and group ID)
// cannot have been reused.
func (p *proc) signalGroup(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.exited {
		syscall.Kill(-p.p.Pid, sig)
	}
}

// startError is a failed start, classified for the ERROR frame.
type startError struct {
	kind errorKind
	msg  string
}

func (e *startError) Error() string { return e.msg }

func startErrorf(kind errorKind, format string, args ...any) *startError {
	return &startError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// classifyStart turns an os.StartProcess error into a startError with the
// reason a person can act on.
func classifyStart(name string, err error) *startError {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return startErrorf(errKindOther, "exec %q: %v", name, err)
	}
	switch errno {
	case syscall.ENOENT:
		return startErrorf(errKindNotFound, "exec %q: no such file or directory (or its interpreter is missing)", name)
	case syscall.EACCES, syscall.EPERM:
		return startErrorf(errKindPermissionDenied, "exec %q: permission denied", name)
	case syscall.ENOEXEC:
		return startErrorf(errKindInvalidArgument, "exec %q: exec format error", name)
	case syscall.ENOTDIR:
		return startErrorf(errKindNotFound, "exec %q: a path component is not a directory", name)
	case syscall.EAGAIN, syscall.ENOMEM:
		return startErrorf(errKindExhausted, "exec %q: %v", name, errno)
	}
	return startErrorf(errKindOther, "exec %q: %v", name, errno)
}

// lookPath resolves name against the PATH in env, as execvp does.
func lookPath(name string, env []string) (string, *startError) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := envValue(env, "PATH")
	if path == "" {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	denied := false
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		st, err := os.Stat(p)
		if err != nil || st.IsDir() {
			continue
		}
		if st.Mode()&0o111 == 0 {
			denied = true
			continue
		}
		return p, nil
	}
	if denied {
		return "", startErrorf(errKindPermissionDenied, "exec %q: found in $PATH but not executable: permission denied", name)
	}
	return "", startErrorf(errKindNotFound, "exec %q: executable file not found in $PATH", name)
}

func envValue(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v
		}
	}
	return ""
}

// mergeEnv returns base with extra applied on top; a key in extra replaces
// the same key in base. Order is kept, so the result is deterministic.
func mergeEnv(base, extra []string) []string {
	out := make([]string, 0, len(base)+len(extra))
	index := make(map[string]int, len(base)+len(extra))
	for _, list := range [][]string{base, extra} {
		for _, kv := range list {
			k, _, _ := strings.Cut(kv, "=")
			if i, ok := index[k]; ok {
				out[i] = kv
				continue
			}
			index[k] = len(out)
			out = append(out, kv)
		}
	}
	return out
}

// credentialFor resolves Docker's user syntax ("user", "uid", "user:group",
// "uid:gid") against the container's /etc/passwd and /etc/group.
func credentialFor(spec string) (*syscall.Credential, string, *startError) {
	name, group, hasGroup := strings.Cut(spec, ":")
	var uid, gid uint32
	home := "/"
	u, err := lookupUser(name)
	switch {
	case err == nil:
		uid, gid = parseID(u.Uid), parseID(u.Gid)
		if u.HomeDir != "" {
			home = u.HomeDir
		}
	case isNumeric(name):
		uid = parseID(name)
	default:
		return nil, "", startErrorf(errKindInvalidArgument, "user %q: no matching entry in /etc/passwd", name)
	}
	if hasGroup {
		g, err := lookupGroup(group)
		switch {
		case err == nil:
			gid = parseID(g.Gid)
		case isNumeric(group):
			gid = parseID(group)
		default:
			return nil, "", startErrorf(errKindInvalidArgument, "group %q: no matching entry in /etc/group", group)
		}
	}
	cred := &syscall.Credential{Uid: uid, Gid: gid}
	if os.Geteuid() != 0 {
		// Only root may set supplementary groups; anyone may ask for
		// their own IDs.
		cred.NoSetGroups = true
	}
	return cred, home, nil
}

func lookupUser(name string) (*user.User, error) {
	if isNumeric(name) {
		return user.LookupId(name)
	}
	return user.Lookup(name)
}

func lookupGroup(name string) (*user.Group, error) {
	if isNumeric(name) {
		return user.LookupGroupId(name)
	}
	return user.LookupGroup(name)
}

func isNumeric(s string) bool {
	_, err := strconv.ParseUint(s, 10, 32)
	return err == nil
}

func parseID(s string) uint32 {
	n, _ := strconv.ParseUint(s, 10, 32)
	return uint32(n)
}

// checkDir verifies a working directory before the fork, so that a bad
// directory is reported as such and not as a missing executable.
func checkDir(dir string) *startError {
	if dir == "" {
		return nil
	}
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return startErrorf(errKindInvalidArgument, "working directory %q: no such directory", dir)
	case errors.Is(err, fs.ErrPermission):
		return startErrorf(errKindPermissionDenied, "working directory %q: permission denied", dir)
	case err != nil:
		return startErrorf(errKindOther, "working directory %q: %v", dir, err)
	case !st.IsDir():
		return startErrorf(errKindInvalidArgument, "working directory %q: not a directory", dir)
	}
	return nil
}
