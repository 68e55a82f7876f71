package fake

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/creack/pty"

	"github.com/gantryhq/gantry"
)

// Rename gives the container a new name under Docker's rules: a valid name
// not used by another container, and not the current one.
func (rt *Runtime) Rename(ctx context.Context, id, name string) (err error) {
	defer gantry.WrapOp(&err, "fake", "rename", id)
	if err := ctx.Err(); err != nil {
		return err
	}
	if !gantry.ValidName(name) {
		return fmt.Errorf("%w", &gantry.FieldError{Field: "Name", Value: name, Reason: "must match [a-zA-Z0-9][a-zA-Z0-9_.-]+ (Docker's rule)"})
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	c, err := rt.lookup(id)
	if err != nil {
		return err
	}
	if c.name == name {
		return fmt.Errorf("%w: the container is already called %q", gantry.ErrInvalidArgument, name)
	}
	if other, taken := rt.names[name]; taken {
		return fmt.Errorf("%w: the container name %q is already in use by container %s", gantry.ErrConflict, name, other.id)
	}
	delete(rt.names, c.name)
	rt.names[name] = c
	c.name = name
	c.spec.Name = name
	return nil
}

// Update replaces the container's resources after validating them as
// Create does. The fake records them; it does not enforce them.
func (rt *Runtime) Update(ctx context.Context, id string, res gantry.Resources) (err error) {
	defer gantry.WrapOp(&err, "fake", "update", id)
	if err := ctx.Err(); err != nil {
		return err
	}
	probe := gantry.Spec{Image: "probe", Resources: res}
	if err := probe.Validate(); err != nil {
		return err
	}
	if res.GPUs > 0 {
		return fmt.Errorf("Resources.GPUs: %w: %s", gantry.ErrNotSupported, noteGPU)
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	c, err := rt.lookup(id)
	if err != nil {
		return err
	}
	c.spec.Resources = res
	return nil
}

// Attach copies the main process's output from now on to opts.Stdout and
// opts.Stderr, and opts.Stdin to its input (which needs Spec.OpenStdin;
// the input is closed when opts.Stdin ends, as docker attach's stdin-once).
// It returns nil when the container stops and ctx's error when ctx ends.
// A container that is not running, or is paused, is an ErrConflict, as in
// moby.
// Output is passed on line by line, as the logs keep it.
func (rt *Runtime) Attach(ctx context.Context, id string, opts gantry.AttachOptions) (err error) {
	defer gantry.WrapOp(&err, "fake", "attach", id)
	if err := ctx.Err(); err != nil {
		return err
	}
	rt.mu.Lock()
	c, err := rt.lookup(id)
	if err != nil {
		rt.mu.Unlock()
		return err
	}
	r := c.run
	switch {
	case r == nil:
		rt.mu.Unlock()
		return fmt.Errorf("%w: you cannot attach to a stopped container, start it first", gantry.ErrConflict)
	case r.paused:
		rt.mu.Unlock()
		return fmt.Errorf("%w: container %s is paused, unpause it before attaching", gantry.ErrConflict, c.id)
	case opts.Stdin != nil && !c.spec.OpenStdin:
		rt.mu.Unlock()
		return &gantry.FieldError{Field: "Stdin", Value: "set", Reason: "the container was created without OpenStdin"}
	}
	logs := c.logs.reader(ctx, gantry.LogsOptions{Follow: true, Tail: gantry.TailNone})
	if opts.Stdin != nil && r.stdin != nil {
		in := r.stdin
		// This copy may block in the caller's Read for as long as the
		// caller likes; it ends at its next Write once the run is over.
		go func() {
			io.Copy(in, opts.Stdin)
			if r.h == nil || r.h.ptmx == nil {
				in.Close()
			} else {
				in.Write([]byte{4})
			}
		}()
	}
	if r.h != nil && r.h.ptmx != nil && opts.Resize != nil {
		ptmx := r.h.ptmx
		done := r.done
		go func() {
			for {
				select {
				case sz, ok := <-opts.Resize:
					if !ok {
						return
					}
					pty.Setsize(ptmx, &pty.Winsize{Rows: sz.Rows, Cols: sz.Cols})
				case <-done:
					return
				}
			}
		}()
	}
	rt.mu.Unlock()
	defer logs.Close()
	return gantry.CopyLogs(opts.Stdout, opts.Stderr, logs)
}

// Top lists the container's processes. In host-process mode these are the
// processes of its group (and of its terminal execs), read from /proc; in
// Go-function mode the one logical process of the image's Run function.
func (rt *Runtime) Top(ctx context.Context, id string) (_ gantry.TopResult, err error) {
	defer gantry.WrapOp(&err, "fake", "top", id)
	if err := ctx.Err(); err != nil {
		return gantry.TopResult{}, err
	}
	rt.mu.Lock()
	c, err := rt.lookup(id)
	if err != nil {
		rt.mu.Unlock()
		return gantry.TopResult{}, err
	}
	r := c.run
	if r == nil {
		rt.mu.Unlock()
		return gantry.TopResult{}, fmt.Errorf("%w: container %s is not running", gantry.ErrConflict, c.id)
	}
	if r.h == nil {
		stat := "R"
		if r.paused {
			stat = "T"
		}
		cmd := strings.Join(r.proc.Args, " ")
		rt.mu.Unlock()
		return gantry.TopResult{Titles: []string{"PID", "PPID", "STAT", "CMD"}, Processes: [][]string{{"1", "0", stat, cmd}}}, nil
	}
	groups := r.h.groups()
	rt.mu.Unlock()
	procs, err := readProcs(groups)
	if err != nil {
		return gantry.TopResult{}, fmt.Errorf("%w: %v", gantry.ErrUnavailable, err)
	}
	res := gantry.TopResult{Titles: []string{"PID", "PPID", "STAT", "TIME", "CMD"}}
	for _, p := range procs {
		t := time.Duration(p.ticks) * time.Second / clockTicks
		res.Processes = append(res.Processes, []string{
			strconv.Itoa(p.pid), strconv.Itoa(p.ppid), p.state,
			fmt.Sprintf("%02d:%02d:%02d", int(t.Hours()), int(t.Minutes())%60, int(t.Seconds())%60),
			p.cmd,
		})
	}
	return res, nil
}

// Stats samples the container's usage. In host-process mode it sums the
// CPU time, resident memory and count of its processes from /proc; in
// Go-function mode it reports one process and no CPU time or memory,
// which a goroutine does not have of its own. A container that is not
// running reports zeros, as docker stats does.
func (rt *Runtime) Stats(ctx context.Context, id string) (_ gantry.Stats, err error) {
	defer gantry.WrapOp(&err, "fake", "stats", id)
	if err := ctx.Err(); err != nil {
		return gantry.Stats{}, err
	}
	rt.mu.Lock()
	c, err := rt.lookup(id)
	if err != nil {
		rt.mu.Unlock()
		return gantry.Stats{}, err
	}
	r := c.run
	st := gantry.Stats{Time: time.Now()}
	switch {
	case r == nil:
		rt.mu.Unlock()
		return st, nil
	case r.h == nil:
		rt.mu.Unlock()
		st.PIDs = 1
		return st, nil
	}
	groups := r.h.groups()
	rt.mu.Unlock()
	procs, err := readProcs(groups)
	if err != nil {
		return gantry.Stats{}, fmt.Errorf("%w: %v", gantry.ErrUnavailable, err)
	}
	for _, p := range procs {
		st.CPUTime += time.Duration(p.ticks) * time.Second / clockTicks
		st.MemoryBytes += p.rss
		st.PIDs++
	}
	return st, nil
}

// clockTicks is USER_HZ, the unit of /proc's CPU times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// groups returns the process groups of the container: its own and its
// terminal execs'.
func (h *hostRun) groups() map[int]bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	g := map[int]bool{h.pid: true}
	for pid := range h.ttyExecs {
		g[pid] = true
	}
	return g
}

type procInfo struct {
	pid, ppid int
	state     string
	ticks     int64
	rss       int64
	cmd       string
}

// readProcs reads /proc for the processes whose group is in groups,
// ordered by PID.
func readProcs(groups map[int]bool) ([]procInfo, error) {
	dir, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []procInfo
	for _, e := range dir {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		p, ok := readProc(pid, groups)
		if ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// readProc parses /proc/<pid>/stat (fields after the command name:
// state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
// utime stime ...), statm and cmdline. A process that vanished meanwhile
// is skipped.
func readProc(pid int, groups map[int]bool) (procInfo, bool) {
	base := "/proc/" + strconv.Itoa(pid)
	stat, err := os.ReadFile(base + "/stat")
	if err != nil {
		return procInfo{}, false
	}
	open, end := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
	if open < 0 || end < open {
		return procInfo{}, false
	}
	f := strings.Fields(string(stat[end+1:]))
	if len(f) < 13 {
		return procInfo{}, false
	}
	pgrp, _ := strconv.Atoi(f[2])
	if !groups[pgrp] {
		return procInfo{}, false
	}
	p := procInfo{pid: pid, state: f[0]}
	p.ppid, _ = strconv.Atoi(f[1])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	p.ticks = utime + stime
	if statm, err := os.ReadFile(base + "/statm"); err == nil {
		if sf := strings.Fields(string(statm)); len(sf) > 1 {
			pages, _ := strconv.ParseInt(sf[1], 10, 64)
			p.rss = pages * int64(os.Getpagesize())
		}
	}
	cmdline, _ := os.ReadFile(base + "/cmdline")
	p.cmd = strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " "))
	if p.cmd == "" {
		p.cmd = "[" + string(stat[open+1:end]) + "]"
	}
	return p, true
}
