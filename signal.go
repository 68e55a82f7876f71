package gantry

import (
	"fmt"
	"strconv"
	"strings"
)

// Signals are Linux's: containers run Linux, whatever the caller's host is.
var signalNumbers = map[string]int{
	"SIGHUP": 1, "SIGINT": 2, "SIGQUIT": 3, "SIGILL": 4, "SIGTRAP": 5,
	"SIGABRT": 6, "SIGIOT": 6, "SIGBUS": 7, "SIGFPE": 8, "SIGKILL": 9,
	"SIGUSR1": 10, "SIGSEGV": 11, "SIGUSR2": 12, "SIGPIPE": 13,
	"SIGALRM": 14, "SIGTERM": 15, "SIGSTKFLT": 16, "SIGCHLD": 17,
	"SIGCONT": 18, "SIGSTOP": 19, "SIGTSTP": 20, "SIGTTIN": 21,
	"SIGTTOU": 22, "SIGURG": 23, "SIGXCPU": 24, "SIGXFSZ": 25,
	"SIGVTALRM": 26, "SIGPROF": 27, "SIGWINCH": 28, "SIGIO": 29,
	"SIGPOLL": 29, "SIGPWR": 30, "SIGSYS": 31,
}

var signalNames = func() [32]string {
	var names [32]string
	for name, n := range signalNumbers {
		if names[n] == "" || name == "SIGABRT" || name == "SIGIO" {
			names[n] = name
		}
	}
	return names
}()

// ParseSignal returns the Linux number of a signal given as Docker accepts
// it: "SIGTERM", "TERM", "term" or "15". Real-time signals are accepted by
// number (34 to 64) or as "SIGRTMIN+N".
func ParseSignal(s string) (int, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 64 || n == 32 || n == 33 {
			return 0, fmt.Errorf("signal %q: %w: no such signal number", s, ErrInvalidArgument)
		}
		return n, nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if n, ok := signalNumbers[name]; ok {
		return n, nil
	}
	if rest, ok := strings.CutPrefix(name, "SIGRTMIN+"); ok {
		if k, err := strconv.Atoi(rest); err == nil && k >= 0 && k <= 30 {
			return 34 + k, nil
		}
	}
	return 0, fmt.Errorf("signal %q: %w: unknown signal name", s, ErrInvalidArgument)
}

// SignalName returns the conventional name of Linux signal n ("SIGTERM"
// for 15), or "SIGRTMIN+K" for a real-time signal, or "" if n is no signal.
func SignalName(n int) string {
	switch {
	case n >= 1 && n < len(signalNames):
		return signalNames[n]
	case n >= 34 && n <= 64:
		return "SIGRTMIN+" + strconv.Itoa(n-34)
	}
	return ""
}
